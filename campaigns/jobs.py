"""The Celery jobs the campaigns app publishes, by task name: it never imports a task module."""
from config.celery import app
from config.queues import Queue

RUN_CONTROL = "campaigns.run_control"


def enqueue_control(control_id):
    """Publish the job that runs a campaign control's remaining batches (call on commit)."""
    app.send_task(RUN_CONTROL, kwargs={"control_id": control_id}, queue=str(Queue.EVENTS))
