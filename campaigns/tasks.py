"""Celery jobs of the campaigns app. Each is thin: ids in, one call into the domain."""
from celery import shared_task

from campaigns.actions.compliance import release_held_tasks
from campaigns.actions.control_jobs import run_control
from config.jobs import Job

JOB_POLICY = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)


@shared_task(name=str(Job.RUN_CONTROL), **JOB_POLICY)
def run_control_job(control_id, part_id=None, **kwargs):
    """Finish a campaign control's per-task work in batches (one part's, given `part_id`); a
    redelivered or duplicate job resumes from the parts' cursors or finds them taken. A message
    without a part (a control's request, or a publisher of an earlier release) splits the control
    and publishes its parts' jobs; `part_id` comes by keyword (positionally in messages queued by
    the release before), and keywords this release does not know are ignored."""
    run_control(control_id, part_id)


@shared_task(name=str(Job.RELEASE_HELD_TASKS), **JOB_POLICY)
def release_held_tasks_job(workspace_id, changed_at, **kwargs):
    """Make due the rest of the tasks a compliance rule held before a policy change, in batches;
    a redelivered or duplicate job finds fewer or none left."""
    release_held_tasks(workspace_id, changed_at)
