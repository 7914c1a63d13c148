"""Wrap-up: the carrier's end of an answered call frees its slot at once; the analysis ends the attempt.

The dispatcher admits with real slot leases (Redis); carrier events and the agent's analysis go
through `telephony.events.handle_event`, as the webhooks send them, with the commit hooks run.
"""
import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import CampaignStatus, Task, TaskStatus
from config.redis_client import get_redis
from dialer import dispatch_lock, keys, slots
from dialer.dispatcher import dispatch_pass
from dialer.invariants import check_invariants
from dialer.maintenance import lease_still_needed, release_orphan_leases
from telephony.calls import check_call_with_carrier
from telephony.events import finalise_overdue_calls, handle_event
from telephony.models import Call, CallStatus
from telephony.rules import EventKind, NormalizedEvent
from tests.factories import CampaignFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def commit_hooks(django_capture_on_commit_callbacks):
    """Run `action` with its on-commit hooks (lease release, nudge) executed, as a real commit does."""
    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)
    return run


@pytest.fixture
def campaign():
    return CampaignFactory(slots=1, status=CampaignStatus.RUNNING, max_retries=0, retry_interval_ms=0)


def org_of(campaign):
    return campaign.workspace.organisation_id


def used(campaign):
    return slots.usage(org_of(campaign))["organisation"]["used"]


def admit(commit_hooks, campaign):
    before = set(Call.objects.values_list("id", flat=True))
    commit_hooks(dispatch_pass, org_of(campaign), timezone.now())
    return list(Call.objects.exclude(id__in=before))


def event(call, kind, **fields):
    return NormalizedEvent(carrier=call.carrier, kind=kind, call_id=str(call.id), carrier_call_id=f"CA-{call.id.hex}",
                           occurred_at=timezone.now(), raw={"kind": str(kind)}, **fields)


def answer_and_complete(commit_hooks, call):
    for kind in (EventKind.INITIATED, EventKind.ANSWERED):
        commit_hooks(handle_event, event(call, kind))
    commit_hooks(handle_event, event(call, EventKind.COMPLETED, carrier_status="completed", duration_seconds=30))
    call.refresh_from_db()


def test_the_carriers_end_frees_the_slot_for_other_work_while_the_analysis_is_due(commit_hooks, campaign):
    first_task, second_task = (TaskFactory(campaign=campaign, phone=f"+44207123456{n}") for n in (1, 2))
    [first] = admit(commit_hooks, campaign)
    assert used(campaign) == 1 and admit(commit_hooks, campaign) == []  # one slot, taken

    answer_and_complete(commit_hooks, first)
    assert (first.status, first.outcome) == (CallStatus.WRAP_UP, "")
    assert Task.objects.get(id=first.task_id).status == TaskStatus.IN_PROGRESS  # its outcome is not known yet
    assert used(campaign) == 0
    assert check_invariants(org_of(campaign)) == []

    [second] = admit(commit_hooks, campaign)
    assert {first.task_id, second.task_id} == {first_task.id, second_task.id}
    assert used(campaign) == 1

    commit_hooks(handle_event, event(first, EventKind.ANALYSIS, analysis={"outcome": "opt-out"}))
    first.refresh_from_db()
    assert (first.status, first.outcome) == (CallStatus.ENDED, "opt-out")
    assert Task.objects.get(id=first.task_id).status == TaskStatus.COMPLETED
    # The analysis released nothing: the slot is the second call's, and its lease stands.
    assert used(campaign) == 1
    assert set(slots.lease_records(org_of(campaign))) == {str(second.id)}
    assert check_invariants(org_of(campaign)) == []


def test_the_analysis_ends_its_call_and_finishes_its_task_in_seven_statements(
        commit_hooks, campaign, django_assert_num_queries):
    campaign.slots = 2
    campaign.save(update_fields=["slots"])
    TaskFactory(campaign=campaign, phone="+442071234561")
    TaskFactory(campaign=campaign, phone="+442071234562")
    first, second = admit(commit_hooks, campaign)
    for call in (first, second):
        answer_and_complete(commit_hooks, call)
    # The first prepares the statements this connection has not run yet; the second is counted.
    handle_event(event(first, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    # Savepoint, the call locked, its UPDATE, its campaign and task locked in one statement, the
    # task's UPDATE, the event stored, savepoint released.
    with django_assert_num_queries(7):
        handle_event(event(second, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    assert Task.objects.get(id=second.task_id).status == TaskStatus.COMPLETED


def test_a_number_in_wrap_up_is_not_dialed_again_before_its_analysis(commit_hooks, campaign):
    campaign.slots = 2
    campaign.save(update_fields=["slots"])
    other = CampaignFactory(workspace=campaign.workspace, slots=2, status=CampaignStatus.RUNNING,
                            start_at=campaign.start_at)
    TaskFactory(campaign=campaign, phone="+442071234567")
    [first] = admit(commit_hooks, campaign)
    TaskFactory(campaign=other, phone="+442071234567")
    answer_and_complete(commit_hooks, first)
    assert first.status == CallStatus.WRAP_UP and used(campaign) == 0

    assert admit(commit_hooks, campaign) == []  # the analysis may still say the person opted out

    commit_hooks(handle_event, event(first, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    [second] = admit(commit_hooks, campaign)
    assert (second.campaign_id, second.to_number) == (other.id, "+442071234567")


def test_a_wrap_up_without_analysis_ends_connected_after_the_wait(commit_hooks, campaign, settings):
    settings.ANALYSIS_WAIT_SECONDS = 30
    TaskFactory(campaign=campaign)
    [call] = admit(commit_hooks, campaign)
    answer_and_complete(commit_hooks, call)
    assert commit_hooks(finalise_overdue_calls, now=call.carrier_ended_at + dt.timedelta(seconds=29)) == 0
    assert commit_hooks(finalise_overdue_calls, now=call.carrier_ended_at + dt.timedelta(seconds=30)) == 1
    call.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "connected")
    assert Task.objects.get(id=call.task_id).status == TaskStatus.COMPLETED
    assert used(campaign) == 0 and check_invariants(org_of(campaign)) == []


def test_a_wrap_up_calls_lease_is_not_kept_by_the_reaper(commit_hooks, campaign, monkeypatch):
    TaskFactory(campaign=campaign)
    [call] = admit(commit_hooks, campaign)
    # The release after the wrap-up's commit is lost (Redis unreachable at that moment) …
    monkeypatch.setattr(slots, "release", lambda *args: None)
    answer_and_complete(commit_hooks, call)
    monkeypatch.undo()
    assert used(campaign) == 1 and call.status == CallStatus.WRAP_UP
    # … so the reaper's checks find the call not live, and its orphan lease goes.
    assert lease_still_needed(str(call.id)) is False
    assert check_call_with_carrier(str(call.id)) is False
    assert release_orphan_leases(org_of(campaign), timezone.now() + dt.timedelta(minutes=5)) == [str(call.id)]
    assert used(campaign) == 0
    call.refresh_from_db()
    assert call.status == CallStatus.WRAP_UP  # still waiting for its analysis


def test_an_analysis_before_the_carriers_end_ends_the_call_without_wrap_up(commit_hooks, campaign):
    TaskFactory(campaign=campaign)
    [call] = admit(commit_hooks, campaign)
    for kind in (EventKind.INITIATED, EventKind.ANSWERED):
        commit_hooks(handle_event, event(call, kind))
    commit_hooks(handle_event, event(call, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    assert used(campaign) == 1  # the line is still up
    commit_hooks(handle_event, event(call, EventKind.COMPLETED, carrier_status="completed"))
    call.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "connected")
    assert used(campaign) == 0


@pytest.fixture
def published(monkeypatch):
    """The dispatch jobs nudges publish (no worker runs them here)."""
    jobs = []
    monkeypatch.setattr(dispatch_lock, "enqueue", lambda job, *args, **kwargs: jobs.append((str(job), args)))
    return jobs


def test_the_analysis_of_a_call_in_wrap_up_asks_for_no_run_when_nothing_waits_for_it(commit_hooks, campaign,
                                                                                        published):
    TaskFactory(campaign=campaign)
    [call] = admit(commit_hooks, campaign)
    answer_and_complete(commit_hooks, call)
    assert published == [("dialer.dispatch_organisation", (org_of(campaign),))]  # the freed slot's
    published.clear()
    get_redis().delete(keys.dispatch_nudged(org_of(campaign)))
    commit_hooks(handle_event, event(call, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    assert Task.objects.get(id=call.task_id).status == TaskStatus.COMPLETED
    assert published == []


def test_the_analysis_asks_for_a_run_for_a_task_held_back_for_its_number(commit_hooks, campaign, published):
    other = CampaignFactory(workspace=campaign.workspace, slots=2, status=CampaignStatus.RUNNING,
                            start_at=campaign.start_at)
    TaskFactory(campaign=campaign, phone="+442071234567")
    [call] = admit(commit_hooks, campaign)
    answer_and_complete(commit_hooks, call)
    TaskFactory(campaign=other, phone="+442071234567")
    assert admit(commit_hooks, campaign) == []  # held back: the number's call is in wrap-up
    published.clear()
    get_redis().delete(keys.dispatch_nudged(org_of(campaign)))
    commit_hooks(handle_event, event(call, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    assert published == [("dialer.dispatch_organisation", (org_of(campaign),))]


def test_the_analysis_asks_for_a_run_when_its_task_is_due_again(commit_hooks, campaign, published):
    campaign.max_retries = 1
    campaign.save(update_fields=["max_retries"])
    TaskFactory(campaign=campaign)
    [call] = admit(commit_hooks, campaign)
    answer_and_complete(commit_hooks, call)
    published.clear()
    get_redis().delete(keys.dispatch_nudged(org_of(campaign)))
    commit_hooks(handle_event, event(call, EventKind.ANALYSIS,
                                     analysis={"outcome": "callback", "callback_at": timezone.now().isoformat()}))
    assert Task.objects.get(id=call.task_id).status == TaskStatus.QUEUED
    assert published == [("dialer.dispatch_organisation", (org_of(campaign),))]


def test_the_analysis_during_a_run_marks_it_for_one_more_pass(commit_hooks, campaign, published):
    TaskFactory(campaign=campaign)
    [call] = admit(commit_hooks, campaign)
    answer_and_complete(commit_hooks, call)
    published.clear()
    redis = get_redis()
    redis.set(keys.dispatch_lock(org_of(campaign)), "another run")  # its pass may have read the call as open
    commit_hooks(handle_event, event(call, EventKind.ANALYSIS, analysis={"outcome": "connected"}))
    assert published == [] and redis.exists(keys.dispatch_rerun(org_of(campaign)))


def test_a_number_is_recorded_as_held_only_while_its_call_is_in_wrap_up(commit_hooks, campaign, published):
    other = CampaignFactory(workspace=campaign.workspace, slots=2, status=CampaignStatus.RUNNING,
                            start_at=campaign.start_at)
    TaskFactory(campaign=campaign, phone="+442071234567")
    [call] = admit(commit_hooks, campaign)
    TaskFactory(campaign=other, phone="+442071234567")
    held = keys.held_numbers(org_of(campaign))
    assert admit(commit_hooks, campaign) == [] and not get_redis().exists(held)  # live: its end nudges anyway
    answer_and_complete(commit_hooks, call)  # the freed slot's nudge: a pass that holds it again
    assert admit(commit_hooks, campaign) == []
    assert get_redis().smembers(held) == {"+442071234567"}
