"""Task and campaign state machines: every allowed transition and the forbidden ones (invariant 8)."""
import datetime as dt
import itertools

import pytest

from campaigns.models import CampaignStatus, CompletionReason, TaskStatus
from dialer.lifecycle import (
    IllegalTransition, can_transition_campaign, can_transition_task, check_campaign_transition, check_task_transition,
    completion_reason_after_attempt, task_status_after_attempt,
)
from dialer.retry_policy import AttemptDecision

T, C = TaskStatus, CampaignStatus

ALLOWED_TASK = {
    (T.QUEUED, T.IN_PROGRESS), (T.QUEUED, T.PAUSED), (T.QUEUED, T.ARCHIVED), (T.QUEUED, T.COMPLETED),
    (T.IN_PROGRESS, T.QUEUED), (T.IN_PROGRESS, T.PAUSED), (T.IN_PROGRESS, T.COMPLETED), (T.IN_PROGRESS, T.ARCHIVED),
    (T.PAUSED, T.QUEUED), (T.PAUSED, T.ARCHIVED),
}
ALLOWED_CAMPAIGN = {
    (C.SCHEDULED, C.RUNNING), (C.SCHEDULED, C.PAUSED), (C.SCHEDULED, C.COMPLETED), (C.SCHEDULED, C.ARCHIVED),
    (C.RUNNING, C.PAUSED), (C.RUNNING, C.COMPLETED), (C.RUNNING, C.ARCHIVED),
    (C.PAUSED, C.RUNNING), (C.PAUSED, C.SCHEDULED), (C.PAUSED, C.COMPLETED), (C.PAUSED, C.ARCHIVED),
    (C.COMPLETED, C.ARCHIVED),
}


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED_TASK))
def test_allowed_task_transitions(current, new):
    assert can_transition_task(current, new)
    check_task_transition(current, new)


@pytest.mark.parametrize(("current", "new"), sorted(set(itertools.product(T, T)) - ALLOWED_TASK))
def test_forbidden_task_transitions(current, new):
    assert not can_transition_task(current, new)
    with pytest.raises(IllegalTransition):
        check_task_transition(current, new)


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED_CAMPAIGN))
def test_allowed_campaign_transitions(current, new):
    assert can_transition_campaign(current, new)
    check_campaign_transition(current, new)


@pytest.mark.parametrize(("current", "new"), sorted(set(itertools.product(C, C)) - ALLOWED_CAMPAIGN))
def test_forbidden_campaign_transitions(current, new):
    assert not can_transition_campaign(current, new)
    with pytest.raises(IllegalTransition):
        check_campaign_transition(current, new)


def test_terminal_states_are_final():
    assert not any(can_transition_task(final, new) for final in (T.COMPLETED, T.ARCHIVED) for new in T)
    assert not any(can_transition_campaign(C.ARCHIVED, new) for new in C)


RETRY = AttemptDecision(retry=True, next_attempt_at=dt.datetime(2024, 6, 3, tzinfo=dt.timezone.utc), final_outcome="",
                        completion_reason="", is_callback=False, terminal_status=None)
CONNECTED = AttemptDecision(retry=False, next_attempt_at=None, final_outcome="connected",
                            completion_reason=CompletionReason.CONNECTED, is_callback=False, terminal_status=T.COMPLETED)
ENDED = AttemptDecision(retry=False, next_attempt_at=None, final_outcome="busy",
                        completion_reason=CompletionReason.ENDED, is_callback=False, terminal_status=T.ARCHIVED)


@pytest.mark.parametrize(("campaign_status", "decision", "status", "reason"), [
    (C.RUNNING, RETRY, T.QUEUED, ""),
    (C.SCHEDULED, RETRY, T.QUEUED, ""),
    (C.PAUSED, RETRY, T.PAUSED, ""),
    (C.ARCHIVED, RETRY, T.ARCHIVED, CompletionReason.ARCHIVED),
    (C.COMPLETED, RETRY, T.ARCHIVED, CompletionReason.ENDED),
    (C.RUNNING, CONNECTED, T.COMPLETED, CompletionReason.CONNECTED),
    (C.PAUSED, CONNECTED, T.COMPLETED, CompletionReason.CONNECTED),
    (C.ARCHIVED, CONNECTED, T.COMPLETED, CompletionReason.CONNECTED),
    (C.RUNNING, ENDED, T.ARCHIVED, CompletionReason.ENDED),
    (C.PAUSED, ENDED, T.ARCHIVED, CompletionReason.ENDED),
])
def test_a_task_whose_call_ended_goes_where_its_campaign_allows(campaign_status, decision, status, reason):
    assert task_status_after_attempt(campaign_status, decision) == status
    assert completion_reason_after_attempt(campaign_status, decision) == reason
    assert can_transition_task(T.IN_PROGRESS, status)
