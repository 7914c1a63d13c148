"""The invariant checker sees each kind of violation in stored state, and nothing in a sound one."""
import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from campaigns.campaign_validation import validate_campaign_body
from campaigns.actions.controls import do_archive_campaign, do_pause_campaign, do_update_campaign
from campaigns.models import CampaignStatus, Task, TaskStatus
from dialer import keys, slots
from dialer.attempts import do_finish_attempt
from dialer.dispatcher import dispatch_pass
from dialer.invariants import Kind, check_invariants
from telephony.models import Call, CallStatus
from tests.factories import CallFactory, CampaignFactory, OrganisationFactory, TaskFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

# Yesterday noon: fixed hours for the window rules, and before the expiry of any lease taken now.
NOON = dt.datetime.combine(dt.date.today() - dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)


@pytest.fixture
def campaign():
    organisation = OrganisationFactory(total_slots=10)
    workspace = WorkspaceFactory(organisation=organisation, slots=6)
    return CampaignFactory(workspace=workspace, slots=3, max_retries=1, status=CampaignStatus.RUNNING,
                           start_at=NOON - dt.timedelta(days=1))


def org_of(campaign):
    return campaign.workspace.organisation_id


def live_call(task, attempt=1, lease=True, at=NOON):
    """A live attempt as the dispatcher records it: call row, task in progress, slot lease."""
    call = CallFactory(task=task, attempt=attempt, status=CallStatus.RINGING)
    if lease:
        slots.sync_allocations(org_of(task.campaign))
        granted = slots.acquire(org_of(task.campaign), task.campaign_id, call.id)
        assert granted.admitted, granted
        call.lease_token = granted.token
    Call.objects.filter(id=call.id).update(created_at=at, lease_token=call.lease_token)
    task.status, task.attempts_made, task.next_attempt_at = TaskStatus.IN_PROGRESS, attempt, None
    task.save(update_fields=["status", "attempts_made", "next_attempt_at"])
    return call


def ended_call(task, attempt=1, outcome="busy", at=NOON):
    call = CallFactory(task=task, attempt=attempt, status=CallStatus.ENDED, outcome=outcome)
    Call.objects.filter(id=call.id).update(created_at=at, ended_at=at)
    task.attempts_made = attempt
    task.save(update_fields=["attempts_made"])
    return call


def kinds(campaign, now=None):
    return sorted(v.kind for v in check_invariants(org_of(campaign), now=now or NOON))


def drop_index(name):
    """Lets a test store what a constraint forbids; rolled back with the test's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {name}")


def test_a_sound_organisation_reports_nothing(campaign):
    live_call(TaskFactory(campaign=campaign))
    retried = TaskFactory(campaign=campaign, next_attempt_at=NOON)
    ended_call(retried)
    finished = TaskFactory(campaign=campaign, status=TaskStatus.COMPLETED, completion_reason="connected",
                           next_attempt_at=None)
    ended_call(finished, outcome="connected")
    TaskFactory(campaign=campaign, next_attempt_at=NOON)
    assert check_invariants(now=NOON) == []


def test_live_calls_over_a_hard_campaign_cap_are_reported_from_calls_and_leases(campaign):
    for _ in range(3):
        live_call(TaskFactory(campaign=campaign))
    campaign.slots = 2
    campaign.save(update_fields=["slots"])
    violations = [v for v in check_invariants(org_of(campaign), now=NOON) if v.kind == Kind.OVER_HARD_CAP]
    assert {v.subject for v in violations} == {f"campaign {campaign.id}"}
    assert {"live calls" in v.detail for v in violations} == {True, False}  # once per source


def test_live_calls_over_the_organisation_total_are_reported(campaign):
    campaign.slot_mode = "soft"
    campaign.save(update_fields=["slot_mode"])
    for _ in range(3):
        live_call(TaskFactory(campaign=campaign))
    workspace, organisation = campaign.workspace, campaign.workspace.organisation
    workspace.slots, workspace.slot_mode = 2, "soft"
    workspace.save(update_fields=["slots", "slot_mode"])
    organisation.total_slots = 2
    organisation.save(update_fields=["total_slots"])
    assert kinds(campaign) == [Kind.OVER_ORGANISATION_TOTAL] * 2  # counted from calls and from leases


def test_live_calls_over_a_hard_workspace_cap_are_reported(campaign):
    campaign.slot_mode = "soft"
    campaign.save(update_fields=["slot_mode"])
    for _ in range(3):
        live_call(TaskFactory(campaign=campaign))
    campaign.workspace.slots = 2
    campaign.workspace.save(update_fields=["slots"])
    subjects = {v.subject for v in check_invariants(org_of(campaign), now=NOON) if v.kind == Kind.OVER_HARD_CAP}
    assert subjects == {f"workspace {campaign.workspace_id}"}


def test_two_live_calls_for_one_task_are_reported(campaign):
    drop_index("call_one_open_per_task")
    drop_index("call_one_open_per_number_in_org")
    task = TaskFactory(campaign=campaign)
    live_call(task, attempt=1)
    live_call(task, attempt=2)
    assert {Kind.TWO_LIVE_CALLS_FOR_TASK, Kind.TWO_LIVE_CALLS_FOR_NUMBER} <= set(kinds(campaign))


def test_two_live_calls_to_one_number_in_an_organisation_are_reported(campaign):
    drop_index("call_one_open_per_number_in_org")
    other = CampaignFactory(workspace=campaign.workspace, slots=2, status=CampaignStatus.RUNNING,
                            start_at=campaign.start_at)
    live_call(TaskFactory(campaign=campaign, phone="+442071234567"))
    live_call(TaskFactory(campaign=other, phone="+442071234567"))
    assert kinds(campaign) == [Kind.TWO_LIVE_CALLS_FOR_NUMBER]


def test_a_call_outside_the_calling_window_is_reported(campaign):
    campaign.calling_start, campaign.calling_end, campaign.timezone = dt.time(9), dt.time(11), "Europe/London"
    campaign.save(update_fields=["calling_start", "calling_end", "timezone"])
    ended_call(TaskFactory(campaign=campaign), at=NOON)
    assert kinds(campaign) == [Kind.OUTSIDE_WINDOW]


def admit_at(campaign, now):
    """The calls one real dispatcher pass admits at `now` (dial jobs are not published)."""
    before = set(Call.objects.values_list("id", flat=True))
    dispatch_pass(org_of(campaign), now)
    return list(Call.objects.exclude(id__in=before))


def update(campaign, body):
    do_update_campaign(campaign, validate_campaign_body(campaign.workspace, body, instance=campaign))


def end_call(call, outcome, at, django_capture_on_commit_callbacks):
    """The carrier's terminal event, as telephony applies it: the call ends, then its attempt finishes."""
    Call.objects.filter(id=call.id).update(status=CallStatus.ENDED, outcome=outcome, ended_at=at)
    with django_capture_on_commit_callbacks(execute=True):  # releases the lease
        do_finish_attempt(call.id, outcome, at)


@pytest.fixture
def office_hours(campaign, django_capture_on_commit_callbacks):
    """Calling 09:00–17:00 UTC: two calls admitted at noon, one of them again after a busy first attempt."""
    campaign.calling_start, campaign.calling_end, campaign.retry_interval_ms = dt.time(9), dt.time(17), 0
    campaign.save(update_fields=["calling_start", "calling_end", "retry_interval_ms"])
    retried, once = TaskFactory(campaign=campaign, next_attempt_at=NOON), TaskFactory(campaign=campaign,
                                                                                       next_attempt_at=NOON)
    first = admit_at(campaign, NOON)
    assert {call.task_id for call in first} == {retried.id, once.id}
    end_call(next(c for c in first if c.task_id == retried.id), "busy", NOON + dt.timedelta(minutes=1),
             django_capture_on_commit_callbacks)
    assert [call.attempt for call in admit_at(campaign, NOON + dt.timedelta(minutes=2))] == [2]
    return campaign


def test_calls_are_judged_by_the_rules_they_were_admitted_under_not_later_updates(office_hours):
    campaign = office_hours
    assert kinds(campaign, now=NOON + dt.timedelta(minutes=3)) == []
    # New hours and zone that exclude noon UTC, a later start, and no retries any more.
    update(campaign, {"callingHours": {"start": 1800, "end": 2000}, "timezone": "Asia/Kolkata",
                      "startAt": (timezone.now() + dt.timedelta(hours=1)).isoformat(), "maxRetries": 0})
    do_pause_campaign(campaign)
    do_archive_campaign(campaign)
    assert kinds(campaign, now=NOON + dt.timedelta(minutes=3)) == []


def test_a_call_dialed_outside_the_window_it_was_admitted_under_is_still_reported(office_hours):
    campaign = office_hours
    # Hours that now include the evening, so only the call's own recorded window can tell.
    update(campaign, {"callingHours": {"start": 900, "end": 2300}})
    late = Call.objects.filter(attempt=2).get()
    Call.objects.filter(id=late.id).update(created_at=NOON + dt.timedelta(hours=8))
    violations = check_invariants(org_of(campaign), now=NOON + dt.timedelta(hours=9))
    assert [(v.kind, v.subject) for v in violations] == [(Kind.OUTSIDE_WINDOW, f"call {late.id}")]
    assert "09:00–17:00 UTC" in violations[0].detail


def test_a_call_before_the_start_or_after_the_end_is_reported(campaign):
    campaign.end_at = NOON - dt.timedelta(hours=1)
    campaign.save(update_fields=["end_at"])
    ended_call(TaskFactory(campaign=campaign), at=NOON)
    ended_call(TaskFactory(campaign=campaign), at=campaign.start_at - dt.timedelta(minutes=1))
    assert kinds(campaign) == [Kind.AFTER_END, Kind.BEFORE_START]


def test_an_attempt_past_the_limit_is_reported(campaign):
    task = TaskFactory(campaign=campaign, next_attempt_at=NOON)
    for attempt in (1, 2, 3):
        ended_call(task, attempt=attempt)
    assert kinds(campaign) == [Kind.ATTEMPT_OVER_LIMIT]


def test_attempts_made_that_disagree_with_the_calls_are_reported(campaign):
    task = TaskFactory(campaign=campaign, next_attempt_at=NOON)
    ended_call(task)
    task.attempts_made = 2
    task.save(update_fields=["attempts_made"])
    assert kinds(campaign) == [Kind.ATTEMPTS_MISMATCH]


def test_a_lease_without_a_live_call_is_reported(campaign):
    call = live_call(TaskFactory(campaign=campaign))
    Call.objects.filter(id=call.id).update(status=CallStatus.ENDED, outcome="busy")
    Task.objects.filter(id=call.task_id).update(status=TaskStatus.QUEUED, next_attempt_at=NOON)
    assert kinds(campaign) == [Kind.LEASE_WITHOUT_LIVE_CALL]


def test_a_live_call_without_a_lease_is_reported(campaign):
    slots.sync_allocations(org_of(campaign))
    live_call(TaskFactory(campaign=campaign), lease=False)
    assert kinds(campaign) == [Kind.LIVE_CALL_WITHOUT_LEASE]


def test_a_lease_fenced_by_another_token_is_reported(campaign):
    call = live_call(TaskFactory(campaign=campaign))
    Call.objects.filter(id=call.id).update(lease_token=call.lease_token + 1000)
    assert kinds(campaign) == [Kind.LEASE_TOKEN_MISMATCH]


def test_leases_are_not_judged_while_redis_awaits_their_rebuild(campaign, redis_client):
    live_call(TaskFactory(campaign=campaign))
    redis_client.delete(*redis_client.keys(f"{keys.slots_namespace(org_of(campaign))}*"))
    assert check_invariants(org_of(campaign), now=NOON) == []


@pytest.mark.parametrize("status, fields, detail", [
    (TaskStatus.IN_PROGRESS, {}, "in progress without a live or wrap-up call"),
    (TaskStatus.QUEUED, {"next_attempt_at": None}, "queued without a next attempt time"),
])
def test_a_task_in_no_valid_state_is_reported(campaign, status, fields, detail):
    task = TaskFactory(campaign=campaign, status=status, **fields)
    violations = check_invariants(org_of(campaign), now=NOON)
    assert [(v.kind, v.subject, v.detail) for v in violations] == [(Kind.INVALID_TASK_STATE, f"task {task.id}", detail)]


def test_a_finished_task_without_a_reason_is_reported(campaign):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE campaigns_task DROP CONSTRAINT task_terminal_has_reason")
    TaskFactory(campaign=campaign, status=TaskStatus.ARCHIVED, next_attempt_at=None)
    assert kinds(campaign) == [Kind.INVALID_TASK_STATE]


def test_a_live_call_whose_task_is_not_in_progress_is_reported(campaign):
    call = live_call(TaskFactory(campaign=campaign))
    Task.objects.filter(id=call.task_id).update(status=TaskStatus.PAUSED, next_attempt_at=NOON)
    violations = check_invariants(org_of(campaign), now=NOON)
    assert [v.kind for v in violations] == [Kind.INVALID_TASK_STATE]
    assert "paused while its call" in violations[0].detail


def test_the_command_prints_violations_and_exits_non_zero(campaign, capsys):
    TaskFactory(campaign=campaign, status=TaskStatus.IN_PROGRESS)
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_invariants", organisation=org_of(campaign))
    assert exit_info.value.code == 1
    assert "in progress without a live or wrap-up call" in capsys.readouterr().out


def test_the_command_reports_a_sound_state_and_exits_zero(campaign, capsys):
    TaskFactory(campaign=campaign, next_attempt_at=timezone.now())
    call_command("check_invariants")
    assert "No invariant violations." in capsys.readouterr().out
