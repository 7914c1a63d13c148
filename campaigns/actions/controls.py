"""Operator controls and end-of-life of campaigns and tasks (docs/product.md §1, Statuses and Controls).

A campaign control answers at once and holds at once: its request locks the campaign row
(`SELECT ... FOR UPDATE`) and changes the campaign itself (status, settings). That alone gates the
dispatcher, which takes only scheduled and running campaigns and re-checks every candidate against
the campaign's settings in force: after a pause returns no call starts, after an archive none
ever, after an update none outside the new hours. A task whose call ends later takes its status
from the campaign's, read under the campaign's lock (`dialer.attempts.do_finish_attempt`).

The per-task work (status flips, re-timing) is a `CampaignControl` recorded in that same
transaction and done in batches by `campaigns.actions.control_jobs`: the first
`CONTROL_INLINE_TASKS` tasks in the request (a small campaign is done before the answer), the rest
by the job `campaigns.run_control`. A control arriving while another's job runs takes it over, so
the tasks end as if the controls had run one after the other (`control_jobs` says how). Given the
`actor`, a control records itself in the audit trail in the transaction that changes the campaign
(`campaigns.actions.audit`); a caller must not wrap it in a transaction of its own, which would
hold the campaign's `FOR UPDATE`, and so the organisation's dispatcher, through the first batch.
The end time works the same way (`do_finish_ended_campaigns`): the campaign completes at once and
its pending tasks are archived (`ended`) by the same job, taking over any control still running.
Actions return how many tasks they changed in the request; `tasks_changed` is sent on commit
whenever tasks became dialable, by the request and by each batch.
"""
from django.db import transaction
from django.utils import timezone

from campaigns.actions.audit import do_record_control
from campaigns.actions.control_jobs import announce, first_batch, hold_batches, take_over
from campaigns.models import Campaign, CampaignStatus, CampaignType, CompletionReason, ControlAction, Task, TaskStatus
from dialer.lifecycle import OPEN_CAMPAIGN_STATUSES, PENDING_TASK_STATUSES, UNFINISHED_TASK_STATUSES, can_transition_campaign
from telephony.models import Call


class ControlRefused(ValueError):
    """The action is not allowed in the campaign's or task's current status."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _lock_campaign(campaign_id):
    return (Campaign.objects.select_for_update(of=("self",)).select_related("workspace")
            .get(id=campaign_id))


def _lock_campaign_for_control(campaign_id):
    """The campaign FOR UPDATE, once its control's batches in flight are done (`hold_batches`)."""
    hold_batches(campaign_id)
    return _lock_campaign(campaign_id)


def _refuse_unless(campaign, new_status, action):
    if not can_transition_campaign(campaign.status, new_status):
        raise ControlRefused(f"cannot {action} a campaign that is {campaign.status}")


def _set_campaign_status(campaign, locked, status, now):
    """Set the campaign's status; returns the status it had. Any status change clears a pause's
    reason (a pause records its own after this; blank for a manual one)."""
    before = locked.status
    Campaign.objects.filter(id=locked.id).update(status=status, paused_reason="", updated_at=now)
    campaign.status = locked.status = status
    campaign.paused_reason = locked.paused_reason = ""
    return before


def _record(action, actor, campaign, fields=()):
    """The control's audit record, its tasks changed counted in by the first batch; none without an actor."""
    return do_record_control(action, actor, 0, campaign=campaign, fields=fields) if actor else None


def do_pause_campaign(campaign, actor=None):
    """Pause: the campaign stops dialing at once; every queued task becomes paused (the first
    CONTROL_INLINE_TASKS now, the rest by the control job); live calls finish and their tasks then
    go to paused. Taking over a running control: a resume's flip back to queued is dropped and
    every queued task is paused; a re-timing still to do continues afterwards."""
    with transaction.atomic():
        locked = _lock_campaign_for_control(campaign.id)
        _refuse_unless(locked, CampaignStatus.PAUSED, "pause")
        before = _set_campaign_status(campaign, locked, CampaignStatus.PAUSED, timezone.now())
        control_id = take_over(locked, ControlAction.PAUSE, before)
        record = _record("pause", actor, locked)
    return first_batch(control_id, locked, record=record)


def do_resume_campaign(campaign, actor=None):
    """Resume: paused tasks become queued with their retry timing kept (the first
    CONTROL_INLINE_TASKS now, the rest by the control job, each dialable as it flips); the campaign
    goes back to running if any attempt was ever placed, else to scheduled. Taking over a running
    pause: the tasks it had paused are flipped back; a re-timing still to do continues afterwards."""
    with transaction.atomic():
        locked = _lock_campaign_for_control(campaign.id)
        if locked.status != CampaignStatus.PAUSED:
            raise ControlRefused(f"cannot resume a campaign that is {locked.status}")
        started = Call.objects.filter(campaign_id=locked.id).exists()
        before = _set_campaign_status(campaign, locked, CampaignStatus.RUNNING if started else CampaignStatus.SCHEDULED,
                                      timezone.now())
        control_id = take_over(locked, ControlAction.RESUME, before)
        record = _record("resume", actor, locked)
    return first_batch(control_id, locked, with_announce=True, record=record)


def do_archive_campaign(campaign, actor=None):
    """Archive, permanently: the campaign is final at once (no call ever starts again); queued and
    paused tasks become archived (reason `archived`; the first CONTROL_INLINE_TASKS now, the rest
    by the control job); live calls finish and make no further attempts. Taking over a running
    control: its flip and any re-timing are dropped, everything pending is archived."""
    with transaction.atomic():
        locked = _lock_campaign_for_control(campaign.id)
        _refuse_unless(locked, CampaignStatus.ARCHIVED, "archive")
        before = _set_campaign_status(campaign, locked, CampaignStatus.ARCHIVED, timezone.now())
        control_id = take_over(locked, ControlAction.ARCHIVE, before)
        record = _record("archive", actor, locked)
    return first_batch(control_id, locked, record=record)


# The settings that decide when attempts are placed. An update that changes none of them (name,
# agent, calling number, priority, retry outcomes, slots) leaves every task's timing as it is,
# instead of re-reading every pending task of the campaign.
TIMING_FIELDS = frozenset({
    "timezone", "start_at", "end_at", "calling_start", "calling_end", "calling_days", "max_retries",
    "retry_interval_ms",
})


def do_update_campaign(campaign, fields, actor=None):
    """Apply validated model field values to a campaign that is not completed or archived, and
    re-time every attempt not yet placed under the new settings when a timing setting changed.

    The settings hold for every attempt the dispatcher places after this returns (it re-checks
    window, end and attempts against them). Queued and paused tasks get `next_attempt_at`
    recomputed (the first CONTROL_INLINE_TASKS now, the rest by the control job): first attempts
    from now and the new start, retries from their last attempt's end with the new intervals,
    pending callbacks at their requested time moved into the new window. Tasks whose next attempt
    would fall past the new end are archived (`ended`); tasks whose attempts the new limit has used
    up complete (`exhausted`). Taking over a running control: its status flip is finished first,
    then the re-timing runs (restarted if one was under way) under the settings now in force.
    With `actor`, recorded with the names of the settings that changed.
    """
    with transaction.atomic():
        locked = _lock_campaign_for_control(campaign.id)
        if locked.status not in OPEN_CAMPAIGN_STATUSES:
            raise ControlRefused(f"cannot update a campaign that is {locked.status}")
        changed = [name for name, value in fields.items() if getattr(locked, name) != value]
        for name, value in fields.items():
            setattr(locked, name, value)
            setattr(campaign, name, value)
        locked.save(update_fields=[*fields, "updated_at"])
        record = _record("update", actor, locked, fields=changed)
        if TIMING_FIELDS.isdisjoint(changed):
            # New slots or priority may make waiting work admissible: the dispatcher looks again.
            announce(locked)
            return 0
        control_id = take_over(locked, ControlAction.UPDATE, locked.status)
    return first_batch(control_id, locked, with_announce=True, record=record)


def _lock_task(task):
    _lock_campaign(task.campaign_id)
    return Task.objects.select_for_update().get(id=task.id)


def _set_task(task, locked, **values):
    Task.objects.filter(id=locked.id).update(**values)
    for name, value in values.items():
        setattr(task, name, value)


@transaction.atomic
def do_pause_task(task):
    """Pause one queued task; its retry timing is kept for resume."""
    locked = _lock_task(task)
    if locked.status != TaskStatus.QUEUED:
        raise ControlRefused(f"cannot pause a task that is {locked.status}")
    _set_task(task, locked, status=TaskStatus.PAUSED, updated_at=timezone.now())
    return 1


@transaction.atomic
def do_resume_task(task):
    """Resume one paused task, in a campaign that is scheduled or running."""
    locked = _lock_task(task)
    if locked.status != TaskStatus.PAUSED:
        raise ControlRefused(f"cannot resume a task that is {locked.status}")
    campaign = Campaign.objects.select_related("workspace").get(id=locked.campaign_id)
    if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        raise ControlRefused(f"cannot resume a task while its campaign is {campaign.status}; resume the campaign")
    _set_task(task, locked, status=TaskStatus.QUEUED, updated_at=timezone.now())
    announce(campaign)
    return 1


@transaction.atomic
def do_archive_task(task):
    """Archive one queued or paused task, permanently (reason `archived`)."""
    now = timezone.now()
    locked = _lock_task(task)
    if locked.status not in PENDING_TASK_STATUSES:
        raise ControlRefused(f"cannot archive a task that is {locked.status}")
    _set_task(task, locked, status=TaskStatus.ARCHIVED, completion_reason=CompletionReason.ARCHIVED,
              completed_at=now, next_attempt_at=None, callback_at=None, updated_at=now)
    return 1


def do_finish_ended_campaigns(now):
    """Campaigns whose end time has come: mark them completed (no call starts from then on) and
    archive their queued and paused tasks (reason `ended`) — the first CONTROL_INLINE_TASKS of each
    now, the rest by its control job, which takes over any control still running. Live calls
    finish; their tasks are then archived. Runs from beat.

    Campaigns another transaction holds are skipped and taken on the next run. Returns the number
    of tasks archived now.
    """
    with transaction.atomic():
        campaigns = list(Campaign.objects.select_for_update(skip_locked=True)
                         .filter(end_at__lte=now, status__in=OPEN_CAMPAIGN_STATUSES))
        Campaign.objects.filter(id__in=[c.id for c in campaigns]).update(
            status=CampaignStatus.COMPLETED, completed_at=now, updated_at=now)
        controls = [(take_over(campaign, ControlAction.END, campaign.status), campaign) for campaign in campaigns]
    return sum(first_batch(control_id, campaign) for control_id, campaign in controls)


@transaction.atomic
def do_complete_campaign_if_done(campaign_id, now):
    """Complete a scheduled or running batch campaign whose contacts were uploaded once no task is
    left queued, in progress or paused. A realtime campaign stays running (more tasks may come).
    Changes no task; returns whether the campaign completed.
    """
    campaign = _lock_campaign(campaign_id)
    if (campaign.type != CampaignType.BATCH or campaign.contacts_uploaded_at is None
            or campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING)):
        return False
    if Task.objects.filter(campaign_id=campaign_id, status__in=UNFINISHED_TASK_STATUSES).exists():
        return False
    Campaign.objects.filter(id=campaign_id).update(status=CampaignStatus.COMPLETED, completed_at=now, updated_at=now)
    return True
