"""Celery jobs of the campaigns app. Each is thin: ids in, one call into the domain."""
from celery import shared_task

from campaigns.jobs import RUN_CONTROL

JOB_POLICY = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)


@shared_task(name=RUN_CONTROL, **JOB_POLICY)
def run_control_job(control_id, **kwargs):
    """Finish a campaign control's per-task work in batches; a redelivered or duplicate job resumes
    from the control's cursor or finds it taken."""
    from campaigns.controls import run_control

    run_control(control_id)
