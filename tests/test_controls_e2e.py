"""A campaign control survives the death of the worker running its batches: real processes.

The Celery worker (with beat) runs as in production, against the test database and Redis db. A
row lock held by the test stops one batch in the middle of its UPDATE, inside its transaction;
the worker is killed with SIGKILL there, as a crashed machine or the OOM killer would.
"""
import datetime as dt

import pytest
from django.utils import timezone

from bench.live_system import LiveSystem, wait_until
from campaigns.actions.controls import do_pause_campaign, do_update_campaign
from campaigns.models import CampaignControl, CampaignStatus, Task, TaskStatus
from tests.db_sessions import another_session
from tests.factories import CampaignFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

TASKS = 12_000
BATCH = 2_000


def batch_waits_on_lock(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND query LIKE '%%UPDATE campaigns_task%%'")
        return cursor.fetchone()[0] > 0


def shut_hours(now):
    """Calling hours (UTC) that open two hours from now: every re-timed task is due at that opening."""
    opening = (now + dt.timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    return {"calling_start": opening.time(), "calling_end": (opening + dt.timedelta(hours=1)).time()}, opening


def pause(campaign, now):
    do_pause_campaign(campaign)
    return CampaignStatus.PAUSED, TaskStatus.PAUSED, None


def update(campaign, now):
    hours, opening = shut_hours(now)
    do_update_campaign(campaign, hours)
    return CampaignStatus.RUNNING, TaskStatus.QUEUED, opening


@pytest.mark.parametrize("control", [pause, update])
def test_a_control_whose_worker_dies_mid_batch_is_resumed_and_ends_as_without_the_crash(control, redis_client):
    now = timezone.now()
    later = now + dt.timedelta(days=1)
    campaign = CampaignFactory(workspace=WorkspaceFactory(slots=50), slots=50, status=CampaignStatus.RUNNING)
    Task.objects.bulk_create([Task(campaign=campaign, phone=f"+4420{n:08d}", context={}, next_attempt_at=later)
                              for n in range(TASKS)], batch_size=BATCH)
    ids = list(campaign.tasks.order_by("id").values_list("id", flat=True))
    blocker = another_session()
    with blocker.cursor() as cursor:
        # Past the request's own batch and the first job's: a batch of a job stops on this row.
        cursor.execute("SELECT id FROM campaigns_task WHERE id = %s FOR UPDATE", [ids[TASKS // 2 + BATCH // 2]])
    watcher = another_session()
    watcher.autocommit = True  # pg_stat_activity is read afresh only outside a transaction
    with LiveSystem(time_scale=0.01, simulator=False, CONTROL_BATCH_TASKS=BATCH, CONTROL_STALLED_SECONDS=1) as system:
        campaign_status, status, due_at = control(campaign, now)
        wait_until(lambda: batch_waits_on_lock(watcher), timeout=60, message="a batch to stop on the locked row")
        system.kill_worker(system.worker_processes[0])
        blocker.rollback()  # the dead worker's batch now fails to commit: its transaction is lost
        control = CampaignControl.objects.get(campaign=campaign)
        assert control.finished_at is None
        assert campaign.tasks.filter(status=TaskStatus.QUEUED, next_attempt_at=later).count() > 0  # work left
        system.start_worker(0)  # with beat, whose upkeep re-publishes the stalled part
        wait_until(lambda: CampaignControl.objects.get(id=control.id).finished_at is not None, timeout=90,
                   message="the control to finish after the crash")
    blocker.close()
    watcher.close()
    assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {(status, due_at or later)}
    assert campaign.tasks.count() == TASKS
    campaign.refresh_from_db()
    assert campaign.status == campaign_status
    parts = list(control.parts.values_list("done", "total"))
    assert parts and all(total is None or done <= total for done, total in parts)
