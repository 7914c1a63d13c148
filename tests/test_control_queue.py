"""Control jobs have their own queue, consumed after `events`: a worker process that comes free
takes a waiting dispatcher run before the next batch of a campaign control."""
import json

import pytest
from kombu import Consumer, Queue as KombuQueue

from campaigns.actions.controls import do_pause_campaign
from config.celery import app
from config.jobs import Job, enqueue
from config.queues import Queue
from tests.factories import CampaignFactory, TaskFactory

pytestmark = pytest.mark.django_db


def jobs_in(redis_client, queue):
    return [json.loads(raw)["headers"]["task"] for raw in redis_client.lrange(str(queue), 0, -1)]


def test_a_controls_job_is_published_to_the_controls_queue_and_a_dispatch_run_to_events(
        settings, redis_client, django_capture_on_commit_callbacks):
    settings.CONTROL_INLINE_TASKS = 2
    campaign = CampaignFactory(status="running")
    TaskFactory.create_batch(5, campaign=campaign)
    with django_capture_on_commit_callbacks(execute=True):
        do_pause_campaign(campaign)
    assert jobs_in(redis_client, Queue.CONTROLS) == [str(Job.RUN_CONTROL)]
    assert str(Job.RUN_CONTROL) not in jobs_in(redis_client, Queue.EVENTS)


def test_a_worker_on_events_and_controls_takes_each_dispatch_run_before_control_batches_queued_earlier(
        redis_client):
    for part in range(3):
        enqueue(Job.RUN_CONTROL, 1, part_id=part)
    taken = []
    with app.connection_for_read() as connection:
        queues = [KombuQueue(str(queue), routing_key=str(queue)) for queue in (Queue.EVENTS, Queue.CONTROLS)]
        with Consumer(connection, queues, accept=["json"],
                      on_message=lambda message: (taken.append(message.headers["task"]), message.ack())):
            # Twice: a round-robin worker would take a control batch next, after its dispatch run.
            for _ in range(2):
                enqueue(Job.DISPATCH_ORGANISATION, 7)
                connection.drain_events(timeout=5)
    assert taken == [str(Job.DISPATCH_ORGANISATION)] * 2
