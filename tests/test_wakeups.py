"""The wake-up schedule: an organisation's dispatcher runs when its work comes due or an event asks.

Beat's tick nudges exactly the organisations `wakeups.take_due(now)` returns, so "the tick did no
work for it before T" is `take_due(t) == []` for every t before T. Times are explicit (a frozen
clock passed as `now`) wherever timing matters.
"""
import datetime as dt

import pytest
from django.utils import timezone

from campaigns.actions.controls import do_pause_campaign, do_resume_campaign, do_update_campaign
from campaigns.models import CampaignStatus, CampaignType, Task, TaskStatus
from campaigns.actions.realtime import do_create_tasks
from dialer import keys, maintenance, slots, wakeups
from dialer.attempts import do_finish_attempt
from dialer.dispatch_lock import DispatchLock, nudge_dispatcher_for
from dialer.dispatcher import dispatch_organisation
from dialer.windows import CallingWindow, next_opening
from telephony.models import Call, CallStatus
from tests.factories import CampaignFactory, TaskFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 3, 8, 0, tzinfo=dt.timezone.utc)  # a Wednesday, 08:00 UTC


def minutes(n, since=NOW):
    return since + dt.timedelta(minutes=n)


def open_campaign(**fields):
    fields.setdefault("status", CampaignStatus.RUNNING)
    fields.setdefault("start_at", NOW - dt.timedelta(days=1))
    fields.setdefault("retry_interval_ms", 10 * 60_000)
    workspace = fields.pop("workspace", None) or WorkspaceFactory()
    return CampaignFactory(workspace=workspace, **fields)


def org_of(campaign):
    return campaign.workspace.organisation_id


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """A dispatcher run as its Celery job makes it, commit hooks included."""
    def run_at(organisation_id, now):
        with django_capture_on_commit_callbacks(execute=True):
            return dispatch_organisation(organisation_id, now=now)
    return run_at


def never_due_before(instant, step_minutes=5):
    """True when no tick from NOW until just before `instant` would have nudged anyone."""
    t = NOW
    while t < instant:
        if wakeups.take_due(t):
            return False
        t += dt.timedelta(minutes=step_minutes)
    return not wakeups.take_due(instant - dt.timedelta(milliseconds=1))


def test_an_idle_organisation_is_woken_at_its_next_task_and_not_before(run):
    campaign = open_campaign(type=CampaignType.REALTIME)
    TaskFactory(campaign=campaign, next_attempt_at=minutes(60))
    assert run(org_of(campaign), NOW) == 0
    assert wakeups.scheduled(org_of(campaign)) == minutes(60)
    assert never_due_before(minutes(60))
    assert wakeups.take_due(minutes(60)) == [org_of(campaign)]
    assert wakeups.scheduled(org_of(campaign)) is None  # taken: the run it starts sets the next one


def test_an_organisation_with_nothing_pending_has_no_entry(run):
    campaign = open_campaign(type=CampaignType.REALTIME)
    wakeups.wake_no_later_than(org_of(campaign), NOW)
    run(org_of(campaign), NOW)
    assert wakeups.scheduled(org_of(campaign)) is None


def test_an_organisation_idle_for_an_hour_is_nudged_as_soon_as_a_task_is_created(
        run, redis_client, django_capture_on_commit_callbacks):
    campaign = open_campaign(type=CampaignType.REALTIME)
    TaskFactory(campaign=campaign, next_attempt_at=timezone.now() + dt.timedelta(hours=1))
    run(org_of(campaign), timezone.now())
    redis_client.delete(keys.dispatch_nudged(org_of(campaign)))

    with django_capture_on_commit_callbacks(execute=True):
        do_create_tasks(campaign.workspace, [{"phone": "+14155550123", "campaign": str(campaign.id)}])

    assert redis_client.exists(keys.dispatch_nudged(org_of(campaign)))  # its dispatch job is published
    assert run(org_of(campaign), timezone.now()) == 1


def admitted_call(run, campaign):
    task = TaskFactory(campaign=campaign, next_attempt_at=NOW)
    assert run(org_of(campaign), NOW) == 1
    return task, Call.objects.get(task=task)


def test_a_retry_wakes_the_organisation_at_its_interval_with_no_tick_in_between(run):
    campaign = open_campaign(max_retries=1)
    task, call = admitted_call(run, campaign)
    do_finish_attempt(call.id, "no-answer", minutes(1))
    run(org_of(campaign), minutes(1))  # the run the call's end nudges
    assert Task.objects.get(id=task.id).next_attempt_at == minutes(11)
    assert wakeups.scheduled(org_of(campaign)) == minutes(11)
    assert never_due_before(minutes(11))
    assert wakeups.take_due(minutes(11)) == [org_of(campaign)]


def test_a_callback_wakes_the_organisation_at_the_requested_time(run):
    campaign = open_campaign(max_retries=2)
    _, call = admitted_call(run, campaign)
    do_finish_attempt(call.id, "callback", minutes(1), callback_at=minutes(45))
    run(org_of(campaign), minutes(1))
    assert wakeups.scheduled(org_of(campaign)) == minutes(45)
    assert never_due_before(minutes(45))
    assert wakeups.take_due(minutes(45)) == [org_of(campaign)]


def test_a_closed_calling_window_wakes_the_organisation_when_it_opens(run):
    campaign = open_campaign(calling_start=dt.time(10, 0), calling_end=dt.time(20, 0))
    TaskFactory(campaign=campaign, next_attempt_at=NOW - dt.timedelta(hours=1))
    assert run(org_of(campaign), NOW) == 0  # 08:00: closed, the task is moved to the opening
    assert wakeups.scheduled(org_of(campaign)) == NOW.replace(hour=10)
    assert never_due_before(NOW.replace(hour=10))


def test_a_campaign_start_wakes_the_organisation_at_the_start(run):
    campaign = open_campaign(status=CampaignStatus.SCHEDULED, start_at=minutes(120))
    TaskFactory(campaign=campaign, next_attempt_at=NOW)
    assert run(org_of(campaign), NOW) == 0
    assert wakeups.scheduled(org_of(campaign)) == minutes(120)
    assert never_due_before(minutes(120))
    assert run(org_of(campaign), minutes(120)) == 1


def test_after_redis_lost_its_data_the_first_tick_rebuilds_the_schedule_from_postgresql(run, redis_client):
    due = open_campaign()
    TaskFactory(campaign=due, next_attempt_at=NOW - dt.timedelta(minutes=1))
    later = open_campaign()
    TaskFactory(campaign=later, next_attempt_at=minutes(30))
    idle = open_campaign()
    redis_client.flushdb()

    assert wakeups.take_due(NOW) == [org_of(due)]
    assert wakeups.scheduled(org_of(later)) == minutes(30)
    assert wakeups.scheduled(org_of(idle)) is None


def test_reconciliation_restores_a_lost_wakeup_within_its_bound(run, redis_client):
    campaigns = [open_campaign() for _ in range(3)]
    for campaign in campaigns:
        TaskFactory(campaign=campaign, next_attempt_at=minutes(30))
        run(org_of(campaign), NOW)
    lost = org_of(campaigns[1])
    redis_client.zrem(keys.WAKEUPS, lost)  # a write that never reached Redis

    runs = 0
    while wakeups.scheduled(lost) is None:
        wakeups.reconcile(NOW)
        runs += 1
        assert runs <= wakeups.RECONCILE_SECONDS // wakeups.RECONCILE_RUN_SECONDS
    assert wakeups.scheduled(lost) == minutes(30)


def test_reconciliation_never_postpones_what_a_run_scheduled(run):
    campaign = open_campaign()
    TaskFactory(campaign=campaign, next_attempt_at=minutes(30))
    wakeups.wake_no_later_than(org_of(campaign), minutes(5))
    for _ in range(wakeups.RECONCILE_SECONDS // wakeups.RECONCILE_RUN_SECONDS):
        wakeups.reconcile(NOW)
    assert wakeups.scheduled(org_of(campaign)) == minutes(5)


def test_a_reconcile_page_covers_every_organisation_within_the_bound():
    assert wakeups.reconcile_page_size(10_000) == 1667
    assert wakeups.reconcile_page_size(0) == 1


def test_a_paused_campaign_is_not_dialed_when_its_wakeup_comes_and_leaves_no_entry(run):
    campaign = open_campaign()
    TaskFactory(campaign=campaign, next_attempt_at=minutes(60))
    run(org_of(campaign), NOW)
    do_pause_campaign(campaign)
    assert wakeups.take_due(minutes(60)) == [org_of(campaign)]
    assert run(org_of(campaign), minutes(60)) == 0
    assert not Call.objects.exists()
    assert wakeups.scheduled(org_of(campaign)) is None


def test_updating_calling_hours_re_times_the_wakeup(run, django_capture_on_commit_callbacks):
    now = timezone.now()
    opens_in_two_hours = CallingWindow((now + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0),
                                       (now + dt.timedelta(hours=3)).time().replace(second=0, microsecond=0), "UTC")
    campaign = open_campaign(calling_start=opens_in_two_hours.start, calling_end=opens_in_two_hours.end,
                             start_at=now - dt.timedelta(days=1))
    TaskFactory(campaign=campaign, next_attempt_at=next_opening(opens_in_two_hours, now))
    run(org_of(campaign), now)
    assert wakeups.scheduled(org_of(campaign)) == next_opening(opens_in_two_hours, now)

    sooner = (now + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        do_update_campaign(campaign, {"calling_start": sooner})
    run(org_of(campaign), timezone.now())
    expected = next_opening(CallingWindow(sooner, opens_in_two_hours.end, "UTC"), timezone.now())
    assert wakeups.scheduled(org_of(campaign)) == expected


class TestControlsWakeRatherThanRun:
    """A control's batch that makes tasks dialable only later moves the wake-up to the first of them
    and asks for no run now; tasks due at once still get a run at once."""

    def resumed(self, campaign, django_capture_on_commit_callbacks, redis_client):
        do_pause_campaign(campaign)
        redis_client.delete(keys.dispatch_nudged(org_of(campaign)), keys.WAKEUPS)
        with django_capture_on_commit_callbacks(execute=True):
            do_resume_campaign(campaign)

    def test_a_resume_of_tasks_due_in_an_hour_wakes_the_organisation_then(
            self, django_capture_on_commit_callbacks, redis_client):
        campaign = open_campaign()
        first = timezone.now() + dt.timedelta(hours=1)
        TaskFactory(campaign=campaign, next_attempt_at=first + dt.timedelta(minutes=5))
        TaskFactory(campaign=campaign, next_attempt_at=first)
        self.resumed(campaign, django_capture_on_commit_callbacks, redis_client)
        assert not redis_client.exists(keys.dispatch_nudged(org_of(campaign)))  # no dispatch job published
        assert wakeups.scheduled(org_of(campaign)) == first.replace(microsecond=first.microsecond // 1000 * 1000)

    def test_a_resume_with_a_task_due_now_asks_for_a_run(self, django_capture_on_commit_callbacks, redis_client):
        campaign = open_campaign()
        TaskFactory(campaign=campaign, next_attempt_at=timezone.now() + dt.timedelta(hours=1))
        TaskFactory(campaign=campaign, next_attempt_at=timezone.now() - dt.timedelta(minutes=1))
        self.resumed(campaign, django_capture_on_commit_callbacks, redis_client)
        assert redis_client.exists(keys.dispatch_nudged(org_of(campaign)))

    def test_an_update_moving_tasks_to_a_later_opening_wakes_the_organisation_at_it(
            self, django_capture_on_commit_callbacks, redis_client):
        now = timezone.now()
        campaign = open_campaign(start_at=now - dt.timedelta(days=1))
        TaskFactory(campaign=campaign, next_attempt_at=now - dt.timedelta(minutes=1))
        later = CallingWindow((now + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0),
                              (now + dt.timedelta(hours=3)).time().replace(second=0, microsecond=0), "UTC")
        redis_client.delete(keys.dispatch_nudged(org_of(campaign)), keys.WAKEUPS)
        with django_capture_on_commit_callbacks(execute=True):
            do_update_campaign(campaign, {"calling_start": later.start, "calling_end": later.end})
        assert not redis_client.exists(keys.dispatch_nudged(org_of(campaign)))
        assert wakeups.scheduled(org_of(campaign)) == Task.objects.get().next_attempt_at
        assert Task.objects.get().next_attempt_at == next_opening(later, Task.objects.get().updated_at)

    def test_a_run_under_way_makes_one_more_pass_to_see_them(self, redis_client):
        campaign = open_campaign()
        organisation_id = org_of(campaign)
        later = timezone.now() + dt.timedelta(hours=1)
        with DispatchLock(organisation_id) as held:
            assert held
            nudge_dispatcher_for(organisation_id, later, timezone.now())
            assert redis_client.exists(keys.dispatch_rerun(organisation_id))
        assert wakeups.scheduled(organisation_id) is not None


def test_a_failed_run_asks_to_be_woken_again_soon(monkeypatch):
    campaign = open_campaign()
    TaskFactory(campaign=campaign, next_attempt_at=NOW)

    def database_gone(*args, **kwargs):
        raise ConnectionError("database gone")

    monkeypatch.setattr("dialer.dispatcher._dispatch_pass", database_gone)
    with pytest.raises(ConnectionError):
        dispatch_organisation(org_of(campaign), now=NOW)
    assert wakeups.scheduled(org_of(campaign)) <= timezone.now() + wakeups.RETRY_FAILED_RUN


class TestUpkeepFollowsLeases:
    def test_the_reaper_visits_only_organisations_that_hold_leases_or_live_calls(self, run, monkeypatch):
        busy = open_campaign()
        admitted_call(run, busy)
        idle = [open_campaign() for _ in range(3)]
        for campaign in idle:
            TaskFactory(campaign=campaign, next_attempt_at=minutes(60))
        visited = []
        monkeypatch.setattr(maintenance, "reap_leases", lambda organisation_id, now=None: visited.append(organisation_id))
        maintenance.run_maintenance(NOW)
        assert visited == [org_of(busy)]

    def test_an_organisation_whose_leases_are_all_gone_is_no_longer_visited(self, run):
        campaign = open_campaign()
        _, call = admitted_call(run, campaign)
        assert maintenance.organisations_to_reap() == [org_of(campaign)]
        Call.objects.filter(id=call.id).update(status=CallStatus.ENDED, outcome="connected")
        assert slots.release(org_of(campaign), str(call.id), call.lease_token)
        maintenance.reap_leases(org_of(campaign), NOW)
        assert maintenance.organisations_to_reap() == []

    def test_an_orphan_lease_keeps_its_organisation_visited_until_it_is_freed(self, run, redis_client):
        campaign = open_campaign()
        _, call = admitted_call(run, campaign)
        Call.objects.filter(id=call.id).update(status=CallStatus.ENDED, outcome="connected")  # ended, its release lost
        assert maintenance.organisations_to_reap() == [org_of(campaign)]
        maintenance.reap_leases(org_of(campaign), timezone.now() + dt.timedelta(minutes=2))
        assert maintenance.organisations_to_reap() == []
        assert redis_client.exists(keys.dispatch_nudged(org_of(campaign)))  # the freed slot is offered

    def test_ended_campaigns_are_found_by_their_end_time(self):
        ended = open_campaign(end_at=NOW - dt.timedelta(minutes=1))
        TaskFactory(campaign=ended, next_attempt_at=minutes(5))
        running = open_campaign(end_at=minutes(60))
        maintenance.run_maintenance(NOW)
        ended.refresh_from_db()
        running.refresh_from_db()
        assert ended.status == CampaignStatus.COMPLETED and running.status == CampaignStatus.RUNNING
        assert Task.objects.get(campaign=ended).status == TaskStatus.ARCHIVED
