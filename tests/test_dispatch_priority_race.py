"""Slots freed while a dispatcher pass runs go to the highest-ranked work, not to what was claimed.

A pass sizes its claim from the headroom it reads first and admits a moment later. These tests end
live calls in that moment, through the pass's own seam (the headroom read), with no sleeps.
"""
import datetime as dt

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.models import CampaignStatus, Task, TaskStatus
from dialer import dispatcher, slots
from dialer.ordering import PRIORITY_LEVELS
from telephony.models import LIVE_CALL_STATUSES, Call, CallStatus
from tests.factories import CampaignFactory, OrganisationFactory, TaskFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def running_campaign(workspace, priority, slot_count, slot_mode="soft", **fields):
    return CampaignFactory(workspace=workspace, priority=priority, slots=slot_count, slot_mode=slot_mode,
                           status=CampaignStatus.RUNNING, retry_interval_ms=0, **fields)


def due_tasks(campaign, count, minutes_ago=5):
    return TaskFactory.create_batch(count, campaign=campaign,
                                    next_attempt_at=timezone.now() - dt.timedelta(minutes=minutes_ago))


def end_call(call):
    """What ending a call does to the rows and the lease, without the nudge (the test runs passes)."""
    Call.objects.filter(id=call.id).update(status=CallStatus.ENDED, outcome="connected", ended_at=timezone.now())
    Task.objects.filter(id=call.task_id).update(status=TaskStatus.COMPLETED, completion_reason="connected",
                                                final_outcome="connected", completed_at=timezone.now())
    assert slots.release(call.organisation_id, str(call.id), call.lease_token)


def live(organisation_id):
    return list(Call.objects.filter(organisation_id=organisation_id, status__in=LIVE_CALL_STATUSES)
                .select_related("campaign"))


def admitted_by_pass(organisation_id):
    before = set(Call.objects.values_list("id", flat=True))
    dispatcher.dispatch_pass(organisation_id, timezone.now())
    return list(Call.objects.filter(organisation_id=organisation_id).exclude(id__in=before).select_related("campaign"))


def ending_calls_after_the_headroom_read(monkeypatch, calls):
    real_headroom = slots.headroom

    def headroom_then_calls_end(organisation_id, *args, **kwargs):
        room = real_headroom(organisation_id, *args, **kwargs)
        while calls:
            end_call(calls.pop())
        return room

    monkeypatch.setattr(dispatcher.slots, "headroom", headroom_then_calls_end)


def test_both_slots_freed_during_a_pass_go_to_the_high_campaign(monkeypatch):
    workspace = WorkspaceFactory(slots=2, slot_mode="soft", organisation=OrganisationFactory(total_slots=2))
    high = running_campaign(workspace, "high", 2)
    normal = running_campaign(workspace, "normal", 2)
    due_tasks(high, 8)
    due_tasks(normal, 8, minutes_ago=60)  # waited longer: only priority puts high first
    org = workspace.organisation_id
    first, second = admitted_by_pass(org)
    assert {first.campaign_id, second.campaign_id} == {high.id}

    end_call(first)  # one slot free when the pass reads its headroom …
    ending_calls_after_the_headroom_read(monkeypatch, [second])  # … two by the time it admits
    admitted = admitted_by_pass(org)
    admitted += admitted_by_pass(org)  # the pass the second call's end asks for

    assert [call.campaign_id for call in admitted] == [high.id, high.id]
    assert {call.campaign_id for call in live(org)} == {high.id}


def test_a_normal_candidate_is_held_back_while_the_high_campaign_lost_its_claim_to_the_re_check():
    workspace = WorkspaceFactory(slots=2, slot_mode="soft", organisation=OrganisationFactory(total_slots=2))
    high = running_campaign(workspace, "high", 2)
    normal = running_campaign(workspace, "normal", 2)
    earliest = due_tasks(high, 1, minutes_ago=30)[0]
    due_tasks(high, 2, minutes_ago=10)
    due_tasks(normal, 4)
    org = workspace.organisation_id
    # The first claimed high task's own end has passed: the re-check archives it.
    Task.objects.filter(id=earliest.id).update(end_after=timezone.now() - dt.timedelta(seconds=1))

    admitted = admitted_by_pass(org)
    admitted += admitted_by_pass(org)

    assert [call.campaign_id for call in admitted] == [high.id, high.id]
    assert Task.objects.get(id=earliest.id).status == TaskStatus.ARCHIVED


campaign_shapes = st.lists(st.tuples(st.sampled_from(sorted(PRIORITY_LEVELS)), st.integers(1, 3),
                                     st.sampled_from([0, 1])), min_size=2, max_size=4)


@given(total=st.integers(2, 5), shapes=campaign_shapes, ended_before=st.integers(0, 5),
       ended_during=st.integers(0, 5))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_lower_ranked_task_is_admitted_while_a_higher_ranked_one_waits_for_a_freed_slot(
        monkeypatch, redis_client, total, shapes, ended_before, ended_during):
    redis_client.flushdb()
    # Every campaign may take every slot of the organisation, so any freed slot could serve any
    # of them and only the order decides who gets it.
    workspace = WorkspaceFactory(slots=total, slot_mode="soft", organisation=OrganisationFactory(total_slots=total))
    org = workspace.organisation_id
    campaigns = []
    for priority, tasks, with_second_attempts in shapes:
        campaign = running_campaign(workspace, priority, total, max_retries=1)
        due_tasks(campaign, tasks)
        if with_second_attempts:
            for task in due_tasks(campaign, tasks, minutes_ago=50):
                Task.objects.filter(id=task.id).update(attempts_made=1, dispatch_rank=1)
        campaigns.append(campaign)
    admitted_by_pass(org)
    calls = live(org)
    for call in calls[:ended_before]:
        end_call(call)
    during = calls[ended_before:ended_before + ended_during]
    with monkeypatch.context() as patch:
        ending_calls_after_the_headroom_read(patch, list(during))
        admitted = admitted_by_pass(org)

    assert len(live(org)) <= total
    waiting = Task.objects.filter(campaign__workspace=workspace, status=TaskStatus.QUEUED).select_related("campaign")
    for call in admitted:
        level = PRIORITY_LEVELS[call.campaign.priority]
        for task in waiting:
            assert PRIORITY_LEVELS[task.campaign.priority] >= level, "a higher-priority task was passed over"
            if task.campaign_id == call.campaign_id:
                assert task.attempts_made >= call.attempt - 1, "a later attempt went before an earlier one"
