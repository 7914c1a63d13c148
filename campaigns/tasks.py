"""Celery jobs of the campaigns app. Each is thin: ids in, one call into the domain."""
from celery import shared_task

from campaigns.actions.control_jobs import run_control
from config.jobs import Job

JOB_POLICY = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)


@shared_task(name=str(Job.RUN_CONTROL), **JOB_POLICY)
def run_control_job(control_id, **kwargs):
    """Finish a campaign control's per-task work in batches; a redelivered or duplicate job resumes
    from the control's cursor or finds it taken."""
    run_control(control_id)
