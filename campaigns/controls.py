"""Operator controls and end-of-life of campaigns and tasks (DESIGN section 1, Statuses and Controls).

Every action locks its campaign row first (`SELECT ... FOR UPDATE`), so controls on one campaign
run one at a time, then changes tasks with conditional bulk UPDATEs (`WHERE status = 'queued'`,
one statement per status change, never a save per row). The dispatcher claims tasks with
`FOR UPDATE SKIP LOCKED` and marks them in_progress in its own transaction: our UPDATE waits for
such a row and then re-reads it, so a task being admitted is either admitted or paused/archived,
never both. Actions return how many tasks they changed; `tasks_changed` is sent on commit when
tasks became dialable.
"""
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, CampaignType, CompletionReason, Task, TaskStatus
from campaigns.signals import tasks_changed
from dialer.lifecycle import (
    OPEN_CAMPAIGN_STATUSES, PENDING_TASK_STATUSES, UNFINISHED_TASK_STATUSES, can_transition_campaign,
)
from dialer.scheduling import first_attempt_at, next_attempt_after, resolve_config
from dialer.windows import next_opening
from telephony.models import Call

RESCHEDULE_BATCH = 5000

# Moves pending tasks to recomputed times; `attempts_made` guards against a task that was admitted,
# finished and requeued between our read and this write (its time is then already right).
RESCHEDULE_SQL = """
UPDATE campaigns_task AS t
SET next_attempt_at = v.next_attempt_at, updated_at = %s
FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[]) AS v(id, next_attempt_at, attempts_made)
WHERE t.id = v.id AND t.attempts_made = v.attempts_made AND t.status IN ('queued', 'paused')
"""


class ControlRefused(ValueError):
    """The action is not allowed in the campaign's or task's current status."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _lock_campaign(campaign_id):
    return (Campaign.objects.select_for_update(of=("self",)).select_related("workspace")
            .get(id=campaign_id))


def _refuse_unless(campaign, new_status, action):
    if not can_transition_campaign(campaign.status, new_status):
        raise ControlRefused(f"cannot {action} a campaign that is {campaign.status}")


def _set_campaign_status(campaign, locked, status, now):
    Campaign.objects.filter(id=locked.id).update(status=status, updated_at=now)
    campaign.status = locked.status = status


def _announce(campaign):
    organisation_id = campaign.workspace.organisation_id
    transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))


def _archive_pending(tasks, reason, now):
    return tasks.filter(status__in=PENDING_TASK_STATUSES).update(
        status=TaskStatus.ARCHIVED, completion_reason=reason, completed_at=now, next_attempt_at=None,
        callback_at=None, updated_at=now)


@transaction.atomic
def do_pause_campaign(campaign):
    """Pause: every queued task becomes paused; live calls finish (their tasks then go to paused)."""
    now = timezone.now()
    locked = _lock_campaign(campaign.id)
    _refuse_unless(locked, CampaignStatus.PAUSED, "pause")
    changed = Task.objects.filter(campaign_id=locked.id, status=TaskStatus.QUEUED).update(
        status=TaskStatus.PAUSED, updated_at=now)
    _set_campaign_status(campaign, locked, CampaignStatus.PAUSED, now)
    return changed


@transaction.atomic
def do_resume_campaign(campaign):
    """Resume: paused tasks become queued with their retry timing kept; the campaign goes back to
    running if any attempt was ever placed, else to scheduled."""
    now = timezone.now()
    locked = _lock_campaign(campaign.id)
    if locked.status != CampaignStatus.PAUSED:
        raise ControlRefused(f"cannot resume a campaign that is {locked.status}")
    changed = Task.objects.filter(campaign_id=locked.id, status=TaskStatus.PAUSED).update(
        status=TaskStatus.QUEUED, updated_at=now)
    started = Call.objects.filter(campaign_id=locked.id).exists()
    _set_campaign_status(campaign, locked, CampaignStatus.RUNNING if started else CampaignStatus.SCHEDULED, now)
    _announce(locked)
    return changed


@transaction.atomic
def do_archive_campaign(campaign):
    """Archive, permanently: queued and paused tasks become archived (reason `archived`); live
    calls finish and make no further attempts."""
    now = timezone.now()
    locked = _lock_campaign(campaign.id)
    _refuse_unless(locked, CampaignStatus.ARCHIVED, "archive")
    changed = _archive_pending(Task.objects.filter(campaign_id=locked.id), CompletionReason.ARCHIVED, now)
    _set_campaign_status(campaign, locked, CampaignStatus.ARCHIVED, now)
    return changed


# The settings that decide when attempts are placed. An update that changes none of them (name,
# agent, calling number, priority, retry outcomes, slots) leaves every task's timing as it is,
# instead of re-reading every pending task of the campaign.
TIMING_FIELDS = frozenset({
    "timezone", "start_at", "end_at", "calling_start", "calling_end", "calling_days", "max_retries",
    "retry_interval_ms",
})


@transaction.atomic
def do_update_campaign(campaign, fields):
    """Apply validated model field values to a campaign that is not completed or archived, and
    re-time every attempt not yet placed under the new settings when a timing setting changed.

    Queued and paused tasks get `next_attempt_at` recomputed: first attempts from now and the new
    start, retries from their last attempt's end with the new intervals, pending callbacks at their
    requested time moved into the new window. Tasks whose next attempt would fall past the new end
    are archived (`ended`); tasks whose attempts the new limit has used up complete (`exhausted`).
    """
    now = timezone.now()
    locked = _lock_campaign(campaign.id)
    if locked.status not in OPEN_CAMPAIGN_STATUSES:
        raise ControlRefused(f"cannot update a campaign that is {locked.status}")
    timing_changed = any(getattr(locked, name) != value for name, value in fields.items() if name in TIMING_FIELDS)
    for name, value in fields.items():
        setattr(locked, name, value)
        setattr(campaign, name, value)
    locked.save(update_fields=[*fields, "updated_at"])
    changed = _retime_pending_tasks(locked, now) if timing_changed else 0
    _announce(locked)
    return changed


def _last_attempt_ends(task_ids):
    return dict(Call.objects.filter(task_id__in=task_ids, attempt=F("task__attempts_made"))
                .values_list("task_id", "ended_at"))


def _next_time(task, config, last_ended_at, now, first_attempts):
    if task.callback_at is not None:
        opening = next_opening(config.window, max(task.callback_at, config.start_after))
        return opening if config.end_at is None or opening < config.end_at else None
    if task.attempts_made == 0:
        if config not in first_attempts:
            first_attempts[config] = first_attempt_at(config, now)
        return first_attempts[config]
    return next_attempt_after(config, task.attempts_made, last_ended_at or now)


def _retime_pending_tasks(campaign, now):
    pending = Task.objects.filter(campaign_id=campaign.id, status__in=PENDING_TASK_STATUSES).order_by("id")
    reschedule, ended, exhausted = [], [], []
    first_attempts = {}
    chunk = []
    for task in pending.iterator(chunk_size=RESCHEDULE_BATCH):
        chunk.append(task)
        if len(chunk) == RESCHEDULE_BATCH:
            _sort_chunk(chunk, campaign, now, first_attempts, reschedule, ended, exhausted)
            chunk = []
    _sort_chunk(chunk, campaign, now, first_attempts, reschedule, ended, exhausted)
    changed = _archive_pending(Task.objects.filter(id__in=ended), CompletionReason.ENDED, now) if ended else 0
    if exhausted:
        changed += Task.objects.filter(id__in=exhausted, status__in=PENDING_TASK_STATUSES).update(
            status=TaskStatus.COMPLETED, completion_reason=CompletionReason.EXHAUSTED, final_outcome=F("last_outcome"),
            completed_at=now, next_attempt_at=None, callback_at=None, updated_at=now)
    with connection.cursor() as cursor:
        for start in range(0, len(reschedule), RESCHEDULE_BATCH):
            ids, times, attempts = zip(*reschedule[start:start + RESCHEDULE_BATCH])
            cursor.execute(RESCHEDULE_SQL, [now, list(ids), list(times), list(attempts)])
            changed += cursor.rowcount
    return changed


def _sort_chunk(chunk, campaign, now, first_attempts, reschedule, ended, exhausted):
    if not chunk:
        return
    ends = _last_attempt_ends([task.id for task in chunk if task.attempts_made])
    for task in chunk:
        config = resolve_config(task, campaign)
        if task.attempts_made >= config.max_attempts:
            exhausted.append(task.id)
            continue
        next_at = _next_time(task, config, ends.get(task.id), now, first_attempts)
        if next_at is None:
            ended.append(task.id)
        elif next_at != task.next_attempt_at:
            reschedule.append((task.id, next_at, task.attempts_made))


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
    _announce(campaign)
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


@transaction.atomic
def do_finish_ended_campaigns(now):
    """Campaigns whose end time has come: archive their queued and paused tasks (reason `ended`)
    and mark them completed. Live calls finish; their tasks are then archived. Runs from beat.

    Campaigns another transaction holds are skipped and taken on the next run. Returns the number
    of tasks archived.
    """
    ids = list(Campaign.objects.select_for_update(skip_locked=True)
               .filter(end_at__lte=now, status__in=OPEN_CAMPAIGN_STATUSES).values_list("id", flat=True))
    if not ids:
        return 0
    changed = _archive_pending(Task.objects.filter(campaign_id__in=ids), CompletionReason.ENDED, now)
    Campaign.objects.filter(id__in=ids).update(status=CampaignStatus.COMPLETED, completed_at=now, updated_at=now)
    return changed


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
