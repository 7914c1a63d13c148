"""End to end with real processes: Celery workers with beat, and the simulated carrier.

Everything runs as in production (`Procfile`), against the test database and Redis db, at a
hundredth of real time. The tests sample live state while the system works.
"""
import threading
import time

import pytest
from django.db import connections
from django.db.models import Max, Min
from django.utils import timezone

from campaigns.models import CampaignStatus, Task, TaskStatus
from config import jobs
from config.queues import Queue
from dialer import slots
from dialer.dispatcher import dispatch_pass
from telephony.models import LIVE_CALL_STATUSES, Call, CallEvent
from tests.factories import CampaignFactory, OrganisationFactory, TaskFactory, WorkspaceFactory
from tests.live_system import LiveSystem, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def script(*outcomes, ring_ms=300, talk_ms=500):
    return {"_sim": [{"outcome": o, "ring_ms": ring_ms, "talk_ms": talk_ms} for o in outcomes]}


class LiveSampler(threading.Thread):
    """Samples live calls per campaign from PostgreSQL until stopped; keeps the maxima."""

    def __init__(self, interval=0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.stopped = threading.Event()
        self.max_total = 0
        self.max_by_campaign = {}
        self.samples = 0

    def run(self):
        try:
            while not self.stopped.is_set():
                counts = {}
                for campaign_id in Call.objects.filter(status__in=LIVE_CALL_STATUSES).values_list("campaign_id", flat=True):
                    counts[campaign_id] = counts.get(campaign_id, 0) + 1
                self.max_total = max(self.max_total, sum(counts.values()))
                for campaign_id, count in counts.items():
                    self.max_by_campaign[campaign_id] = max(self.max_by_campaign.get(campaign_id, 0), count)
                self.samples += 1
                time.sleep(self.interval)
        finally:
            connections.close_all()

    def stop(self):
        self.stopped.set()
        self.join()


def all_tasks_terminal():
    return not Task.objects.filter(status__in=[TaskStatus.QUEUED, TaskStatus.IN_PROGRESS]).exists()


def assert_no_lease_left(organisation_id):
    usage = slots.usage(organisation_id)
    assert usage["organisation"]["used"] == 0, usage


def test_worked_example_hundred_numbers_five_slots(redis_client):
    campaign = CampaignFactory(slots=5, max_retries=1, retry_interval_ms=0, status=CampaignStatus.RUNNING,
                               contacts_uploaded_at=timezone.now())
    TaskFactory.create_batch(100, campaign=campaign, context=script("no-answer", "connected"))
    sampler = LiveSampler()
    with LiveSystem(time_scale=0.01):
        sampler.start()
        wait_until(all_tasks_terminal, timeout=120, message="every task to finish")
        sampler.stop()
    assert sampler.max_total <= 5 and sampler.samples > 10
    assert sampler.max_total == 5  # and the slots were actually used
    first = Call.objects.filter(attempt=1).aggregate(last=Max("created_at"))["last"]
    second = Call.objects.filter(attempt=2).aggregate(first=Min("created_at"))["first"]
    assert first <= second
    assert Call.objects.count() == 200
    assert Task.objects.filter(completion_reason="connected").count() == 100
    assert_no_lease_left(campaign.workspace.organisation_id)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED


def test_hard_and_soft_workspaces_share_an_organisation_within_their_caps(redis_client):
    organisation = OrganisationFactory(total_slots=8)
    hard = WorkspaceFactory(organisation=organisation, slots=3, slot_mode="hard")
    soft = WorkspaceFactory(organisation=organisation, slots=3, slot_mode="soft")
    hard_campaign = CampaignFactory(workspace=hard, slots=3, status=CampaignStatus.RUNNING)
    soft_campaign = CampaignFactory(workspace=soft, slots=3, slot_mode="soft", status=CampaignStatus.RUNNING)
    TaskFactory.create_batch(30, campaign=hard_campaign, context=script("connected"))
    TaskFactory.create_batch(30, campaign=soft_campaign, context=script("connected"))
    sampler = LiveSampler()
    with LiveSystem(time_scale=0.01):
        sampler.start()
        wait_until(all_tasks_terminal, timeout=120, message="every task to finish")
        sampler.stop()
    assert sampler.max_by_campaign[hard_campaign.id] <= 3
    assert sampler.max_total <= 8
    assert sampler.max_by_campaign[soft_campaign.id] > 3  # borrowed the unallocated capacity
    assert_no_lease_left(organisation.id)


def test_killing_a_worker_mid_run_loses_no_task_and_leaks_no_slot(redis_client):
    campaign = CampaignFactory(slots=6, max_retries=1, retry_interval_ms=0, status=CampaignStatus.RUNNING)
    TaskFactory.create_batch(60, campaign=campaign, context=script("busy", "connected", ring_ms=200, talk_ms=300))
    with LiveSystem(workers=2, time_scale=0.01, REDIAL_ADMITTED_AFTER_SECONDS=2) as system:
        wait_until(lambda: Call.objects.count() >= 20, timeout=60, message="calls to flow")
        system.kill_worker(system.worker_processes[1])
        wait_until(all_tasks_terminal, timeout=150, message="every task to finish after the kill")
    assert Task.objects.filter(status=TaskStatus.COMPLETED).count() == 60
    assert not Call.objects.filter(status__in=LIVE_CALL_STATUSES).exists()
    assert_no_lease_left(campaign.workspace.organisation_id)


def test_the_same_dial_job_delivered_twice_places_one_call(redis_client, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(slots=1, status=CampaignStatus.RUNNING)
    task = TaskFactory(campaign=campaign, context=script("connected"))
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_pass(campaign.workspace.organisation_id, task.next_attempt_at)
    call = Call.objects.get()
    for _ in range(2):
        jobs.enqueue(jobs.Job.DIAL_CALLS, [str(call.id)], queue=Queue.DIAL_NORMAL)
    with LiveSystem(time_scale=0.01, beat=False):
        wait_until(lambda: Task.objects.get(id=task.id).status == TaskStatus.COMPLETED, timeout=60,
                   message="the task to complete")
    assert Call.objects.count() == 1
    carrier_ids = set(CallEvent.objects.filter(call=call).values_list("carrier_call_id", flat=True)) - {""}
    assert len(carrier_ids) == 1
    assert CallEvent.objects.filter(call=call, kind="completed", applied=True).count() == 1
    assert redis_client.zcard("sim:due") == 0
