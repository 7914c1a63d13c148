"""Publishing Celery jobs by name: the one way domain code enqueues work.

Domain modules never import a Celery task module (which would import them back); they name the
job here and the worker that registered it runs it. Every job name is the `name=` of its task.
"""
from contextlib import contextmanager
from enum import StrEnum

from config.celery import app
from config.queues import Queue


class Job(StrEnum):
    DISPATCH_ORGANISATION = "dialer.dispatch_organisation"
    DIAL_CALLS = "dialer.dial_calls"
    RUN_CONTROL = "campaigns.run_control"
    RELEASE_HELD_TASKS = "campaigns.release_held_tasks"


# Where a job goes unless its caller names a queue; every other job goes to `events`. The jobs that
# walk a campaign's or workspace's tasks in batches (a control's, a policy change's release of held
# tasks) have their own queue, which workers consume after `events`: a batch never comes before a
# dispatcher run waiting for a free process.
JOB_QUEUES = {Job.RUN_CONTROL: Queue.CONTROLS, Job.RELEASE_HELD_TASKS: Queue.CONTROLS}


def enqueue(job, *args, queue=None, producer=None, countdown=None, **kwargs):
    """Publish `job` with positional `args` and keyword `kwargs` to `queue` (by default its queue in
    JOB_QUEUES, else `events`); `producer` shares one broker connection. An argument added to a
    job goes by keyword: a worker of the previous release still running in a rolling deploy takes
    it in its task's `**kwargs` and ignores it, where one more positional argument would fail its
    signature.

    `countdown` (seconds) is only for instants shorter than beat's tick; anything later belongs
    in the database's schedule (`next_attempt_at`) and the wake-up schedule, never in the broker.
    """
    queue = queue or JOB_QUEUES.get(job, Queue.EVENTS)
    app.send_task(str(job), args=list(args), kwargs=kwargs, queue=str(queue), producer=producer,
                  countdown=countdown)


@contextmanager
def one_connection():
    """A producer for publishing many jobs over one broker connection."""
    with app.producer_or_acquire() as producer:
        yield producer
