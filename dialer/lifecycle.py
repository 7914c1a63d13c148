"""Task and campaign state machines: every allowed transition, in one place. Pure.

Task: queued → in_progress (admitted) → queued / paused (retry) or completed / archived (finished).
A queued task may also be paused, archived (archive, end time) or completed (do-not-call, attempts
used up, found at dial time); a paused one resumes to queued or is archived. Completed and archived
are final.

Campaign: scheduled → running (first task started) → completed (nothing left to call, or end time);
paused and back (to running if it had started, else scheduled); archived from anywhere but itself,
final. A completed campaign may still be archived to put it away.
"""
from campaigns.vocabulary import CampaignStatus, CompletionReason, TaskStatus

TASK_TRANSITIONS = {
    TaskStatus.QUEUED: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.PAUSED, TaskStatus.ARCHIVED, TaskStatus.COMPLETED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.QUEUED, TaskStatus.PAUSED, TaskStatus.COMPLETED, TaskStatus.ARCHIVED}),
    TaskStatus.PAUSED: frozenset({TaskStatus.QUEUED, TaskStatus.ARCHIVED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.ARCHIVED: frozenset(),
}

CAMPAIGN_TRANSITIONS = {
    CampaignStatus.SCHEDULED: frozenset({CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.COMPLETED,
                                         CampaignStatus.ARCHIVED}),
    CampaignStatus.RUNNING: frozenset({CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED}),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.RUNNING, CampaignStatus.SCHEDULED, CampaignStatus.COMPLETED,
                                      CampaignStatus.ARCHIVED}),
    CampaignStatus.COMPLETED: frozenset({CampaignStatus.ARCHIVED}),
    CampaignStatus.ARCHIVED: frozenset(),
}

# Tasks that may still be called: what pause, archive, update and the end time act on.
PENDING_TASK_STATUSES = (TaskStatus.QUEUED, TaskStatus.PAUSED)
# Tasks that keep a campaign from being done.
UNFINISHED_TASK_STATUSES = (TaskStatus.QUEUED, TaskStatus.IN_PROGRESS, TaskStatus.PAUSED)
# Campaigns whose settings and tasks may still change.
OPEN_CAMPAIGN_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)


class IllegalTransition(ValueError):
    """A status change the state machine does not allow."""


def can_transition_task(current, new):
    """Whether a task may go from `current` to `new`. E.g. paused → queued: True; completed → queued: False."""
    return new in TASK_TRANSITIONS[current]


def can_transition_campaign(current, new):
    """Whether a campaign may go from `current` to `new`. E.g. running → paused: True; archived → running: False."""
    return new in CAMPAIGN_TRANSITIONS[current]


def task_statuses_leading_to(new, among=tuple(TaskStatus)):
    """The statuses, of `among`, from which a task may go to `new`: the WHERE of every UPDATE that
    moves tasks, so a write can only make a transition the state machine allows.

    >>> task_statuses_leading_to(TaskStatus.PAUSED, among=PENDING_TASK_STATUSES)
    ('queued',)
    >>> task_statuses_leading_to(TaskStatus.QUEUED, among=(TaskStatus.COMPLETED,))
    Traceback (most recent call last):
    ...
    dialer.lifecycle.IllegalTransition: no task can go to queued from completed
    """
    allowed = tuple(str(status) for status in among if can_transition_task(status, new))
    if not allowed:
        raise IllegalTransition(f"no task can go to {new} from {', '.join(map(str, among))}")
    return allowed


def check_task_transition(current, new):
    """Raise `IllegalTransition` unless a task may go from `current` to `new`."""
    if not can_transition_task(current, new):
        raise IllegalTransition(f"a task cannot go from {current} to {new}")


def check_campaign_transition(current, new):
    """Raise `IllegalTransition` unless a campaign may go from `current` to `new`."""
    if not can_transition_campaign(current, new):
        raise IllegalTransition(f"a campaign cannot go from {current} to {new}")


def task_status_after_attempt(campaign_status, decision):
    """The status of a task whose attempt just ended, given its campaign's status now.

    A finished task takes the decision's terminal status (a task whose call connected completes
    even if its campaign was archived meanwhile). A retry is queued in a scheduled or running
    campaign, paused in a paused one, and archived in an archived or completed (ended) one.
    E.g. (paused, retry) → paused; (archived, retry) → archived; (running, connected) → completed.
    """
    if not decision.retry:
        return decision.terminal_status
    if campaign_status == CampaignStatus.PAUSED:
        return TaskStatus.PAUSED
    if campaign_status in (CampaignStatus.ARCHIVED, CampaignStatus.COMPLETED):
        return TaskStatus.ARCHIVED
    return TaskStatus.QUEUED


def completion_reason_after_attempt(campaign_status, decision):
    """The completion reason to record with `task_status_after_attempt`, blank while the task lives.

    E.g. (running, connected) → connected; (archived, retry) → archived; (completed, retry) → ended.
    """
    if not decision.retry:
        return decision.completion_reason
    if campaign_status == CampaignStatus.ARCHIVED:
        return CompletionReason.ARCHIVED
    if campaign_status == CampaignStatus.COMPLETED:
        return CompletionReason.ENDED
    return ""
