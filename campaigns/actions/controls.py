"""Operator controls and end-of-life of campaigns and tasks (docs/product.md §1, Statuses and Controls).

A campaign control answers at once and holds at once: its request locks the campaign row
(`SELECT ... FOR UPDATE`), changes the campaign itself (status, settings) and commits. That alone
gates the dispatcher, which takes only scheduled and running campaigns and re-checks every
candidate against the campaign's settings in force: after a pause returns no call starts, after
an archive none ever, after an update none outside the new hours. A task whose call ends later
takes its status from the campaign's (`dialer.lifecycle.task_status_after_attempt`).

The per-task work (status flips, re-timing) is a `CampaignControl`, recorded in that same
transaction. Once it has committed, the request does the first `CONTROL_INLINE_TASKS` tasks as one
batch of its own — a small campaign is done before the answer — and a job (`campaigns.run_control`,
published on commit) does the rest in batches of `CONTROL_BATCH_TASKS`, one short transaction
each, in task id order from a cursor kept on the control, so a lost job resumes where it stopped
(its message is redelivered, and beat re-publishes a control that made no progress for
`CONTROL_STALLED_SECONDS`). A batch holds the campaign row `FOR SHARE`: the dispatcher's
`FOR SHARE` passes through, a new control's `FOR UPDATE` waits at most one batch. Flips are
conditional UPDATEs (`WHERE status = 'queued'`); the dispatcher claims tasks `FOR UPDATE SKIP
LOCKED`, so a task being admitted is either admitted or flipped, never both.
Re-timing is set-based: per calling window in the batch (there are few), one UPDATE computes every
task's next attempt in SQL from the window's openings (`dialer.windows.occurrences`).

A control arriving while another's job runs takes the job over (one unfinished control per
campaign), so the tasks end as if the controls had run one after the other to completion:
- pause, resume or archive replaces the status flip still to do (a resume after a pause flips
  back to queued every task the pause had paused, an archive archives everything pending);
- an update adds re-timing under the settings now in force (restarting it if one was under way);
  a status flip still to do is finished first;
- an archive drops a re-timing still to do (every pending task is archived anyway).
The end time works the same way (`do_finish_ended_campaigns`): the campaign completes at once and
its pending tasks are archived (`ended`) by the same job, taking over any control still running.
Actions return how many tasks they changed in the request; `tasks_changed` is sent on commit
whenever tasks became dialable, by the request and by each batch.
"""
import datetime as dt

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import (
    Campaign, CampaignControl, CampaignStatus, CampaignType, CompletionReason, ControlAction, Task, TaskStatus,
)
from campaigns.signals import tasks_changed
from config.jobs import Job, enqueue
from dialer.lifecycle import (
    OPEN_CAMPAIGN_STATUSES, PENDING_TASK_STATUSES, UNFINISHED_TASK_STATUSES, can_transition_campaign,
    task_statuses_leading_to,
)
from dialer.windows import CallingWindow, occurrences
from telephony.models import Call

# Each status flip: the task statuses it takes tasks from (as the state machine allows them to
# reach the new status), the campaign statuses under which it still applies (an end time or a
# later control may have moved the campaign on), and the columns it sets.
FLIPS = {
    ControlAction.PAUSE: (task_statuses_leading_to(TaskStatus.PAUSED, among=[TaskStatus.QUEUED]),
                          (CampaignStatus.PAUSED,), "status = 'paused'"),
    ControlAction.RESUME: (task_statuses_leading_to(TaskStatus.QUEUED, among=[TaskStatus.PAUSED]),
                           (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING), "status = 'queued'"),
    ControlAction.ARCHIVE: (task_statuses_leading_to(TaskStatus.ARCHIVED, among=PENDING_TASK_STATUSES),
                            (CampaignStatus.ARCHIVED,),
                            "status = 'archived', completion_reason = 'archived', completed_at = %(now)s, "
                            "next_attempt_at = NULL, callback_at = NULL"),
    ControlAction.END: (task_statuses_leading_to(TaskStatus.ARCHIVED, among=PENDING_TASK_STATUSES),
                        (CampaignStatus.COMPLETED,),
                        "status = 'archived', completion_reason = 'ended', completed_at = %(now)s, "
                        "next_attempt_at = NULL, callback_at = NULL"),
}
DIALABLE_AFTER = frozenset({ControlAction.RESUME, ControlAction.UPDATE})
# What a batch holds of its campaign: SHARE lets the dispatcher's own FOR SHARE through and makes
# a new control's FOR UPDATE wait for the batch.
BATCH_CAMPAIGN_LOCK_SQL = "SELECT * FROM campaigns_campaign WHERE id = %s FOR SHARE"


def _next_ids_sql(statuses):
    """The next `limit` task ids after the cursor among `statuses`, one ordered index range scan
    per status on (campaign, status, id): an `IN` list would read every row past the cursor."""
    ranges = " UNION ALL ".join(
        f"(SELECT id FROM campaigns_task WHERE campaign_id = %(campaign_id)s AND status = '{status}' "
        f"AND id > %(after)s ORDER BY id LIMIT %(limit)s)" for status in statuses)
    return f"SELECT id FROM ({ranges}) ids ORDER BY id LIMIT %(limit)s"


def _flip_sql(action):
    statuses, _, assignments = FLIPS[action]
    # `= ANY(ARRAY(...))` keeps the UPDATE on the primary key: joined to the batch instead, the
    # planner may hash-join it against a scan of every task of the status.
    return f"""
WITH batch AS MATERIALIZED ({_next_ids_sql(statuses)}),
changed AS (
    UPDATE campaigns_task AS t SET {assignments}, updated_at = %(now)s
    WHERE t.id = ANY(ARRAY(SELECT id FROM batch)) AND t.status IN ({", ".join(f"'{s}'" for s in statuses)})
    RETURNING 1
)
SELECT (SELECT max(id) FROM batch), (SELECT count(*) FROM batch), (SELECT count(*) FROM changed)
"""


# A pending task's next attempt under the campaign's settings, as `dialer.scheduling` defines it
# (resolve_config, first_attempt_at, next_attempt_after), in SQL: a pending callback at its time,
# a first attempt from now, a retry from its last attempt's end plus the interval; never before
# the start. The calling window is applied by the caller from the window's openings.
PENDING_TIMES_SQL = """
SELECT t.id, t.attempts_made, t.next_attempt_at,
       COALESCE(NULLIF(t.timezone, ''), %(timezone)s) AS tz,
       COALESCE(t.calling_start, %(calling_start)s) AS window_start,
       COALESCE(t.calling_end, %(calling_end)s) AS window_end,
       LEAST(t.end_after, %(end_at)s) AS end_at,
       t.attempts_made >= {max_attempts} AS exhausted,
       CASE WHEN t.callback_at IS NOT NULL THEN GREATEST(t.callback_at, t.start_after, %(start_at)s)
            WHEN t.attempts_made = 0 THEN GREATEST(%(now)s, t.start_after, %(start_at)s)
            ELSE GREATEST(t.start_after, %(start_at)s,
                          COALESCE(last.ended_at, %(now)s) + ({interval_ms}) * interval '1 millisecond')
       END AS earliest
FROM campaigns_task t
LEFT JOIN LATERAL (
    SELECT c.ended_at FROM telephony_call c
    WHERE c.task_id = t.id AND c.attempt = t.attempts_made AND t.attempts_made > 0 AND t.callback_at IS NULL
    LIMIT 1
) last ON true
WHERE t.campaign_id = %(campaign_id)s AND t.status IN ('queued', 'paused') AND t.id > %(after)s AND t.id <= %(upto)s
"""
# Batch campaigns: the campaign's retries for every task; realtime: the task's own where set.
BATCH_RULES = {"max_attempts": "%(max_attempts)s", "interval_ms": "%(interval_ms)s"}
REALTIME_RULES = {
    "max_attempts": "COALESCE(t.max_attempts, %(max_attempts)s)",
    "interval_ms": "CASE WHEN t.intervals_ms IS NULL THEN "
                   "(CASE WHEN COALESCE(t.max_attempts, %(max_attempts)s) > 1 THEN %(retry_interval_ms)s ELSE 0 END) "
                   "WHEN cardinality(t.intervals_ms) = 0 THEN 0 "
                   "ELSE t.intervals_ms[GREATEST(LEAST(t.attempts_made, cardinality(t.intervals_ms)), 1)] END",
}

# Per calling window among the batch's tasks, the range of instants their next attempts start
# from: the window's openings the UPDATE needs.
RETIME_PLAN_SQL = """
WITH pending AS ({pending})
SELECT tz, window_start, window_end, min(earliest), max(earliest) FROM pending GROUP BY tz, window_start, window_end
"""

# One window's tasks of the batch: next attempt = max(earliest, opening of the first occurrence
# closing after it) — `next_opening` — found by binary search (width_bucket) in the occurrences'
# closing instants. Tasks whose attempts the settings used up complete (`exhausted`), tasks whose
# next attempt falls at or past their end are archived (`ended`); `attempts_made` guards against
# a task admitted, finished and requeued since it was read (its time is then already right).
RETIME_WINDOW_SQL = """
WITH pending AS ({pending}),
timed AS (
    SELECT p.*, GREATEST(p.earliest, (%(opens)s::timestamptz[])[width_bucket(p.earliest, %(closes)s::timestamptz[]) + 1])
        AS next_at
    FROM pending p WHERE p.tz = %(window_tz)s AND p.window_start = %(window_start)s AND p.window_end = %(window_end)s
),
decided AS (
    SELECT id, attempts_made, exhausted, NOT exhausted AND end_at IS NOT NULL AND next_at >= end_at AS ended, next_at,
           next_attempt_at
    FROM timed
)
UPDATE campaigns_task AS t
SET status = CASE WHEN d.exhausted THEN 'completed' WHEN d.ended THEN 'archived' ELSE t.status END,
    completion_reason = CASE WHEN d.exhausted THEN 'exhausted' WHEN d.ended THEN 'ended' ELSE t.completion_reason END,
    final_outcome = CASE WHEN d.exhausted THEN t.last_outcome ELSE t.final_outcome END,
    completed_at = CASE WHEN d.exhausted OR d.ended THEN %(now)s ELSE t.completed_at END,
    callback_at = CASE WHEN d.exhausted OR d.ended THEN NULL ELSE t.callback_at END,
    next_attempt_at = CASE WHEN d.exhausted OR d.ended THEN NULL ELSE d.next_at END,
    updated_at = %(now)s
FROM decided d
WHERE t.id = d.id AND t.attempts_made = d.attempts_made AND t.status IN ('queued', 'paused')
  AND (d.exhausted OR d.ended OR d.next_at IS DISTINCT FROM d.next_attempt_at)
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
    # A pause records its reason after this (blank for a manual one); any status change clears it.
    Campaign.objects.filter(id=locked.id).update(status=status, paused_reason="", updated_at=now)
    campaign.status = locked.status = status
    campaign.paused_reason = locked.paused_reason = ""


def _announce(campaign):
    organisation_id = campaign.workspace.organisation_id
    transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))


def _take_over(locked, action):
    """Record `action` on the campaign's control, creating it or taking over the one still running.

    Runs in the control's transaction, with the campaign locked FOR UPDATE (so no batch of a job
    runs meanwhile). Returns the control's id, for `_first_batch` once that transaction is over.
    """
    control = CampaignControl.objects.select_for_update().filter(campaign_id=locked.id, finished_at=None).first()
    control = control or CampaignControl(campaign_id=locked.id)
    control.action = action
    if action == ControlAction.UPDATE:
        control.retime, control.retime_cursor = True, 0
        if control.phase == ControlAction.UPDATE:
            control.phase = ""
    else:
        control.flip, control.flip_cursor, control.phase = action, 0, ""
        if action in (ControlAction.ARCHIVE, ControlAction.END):
            control.retime = False
    control.save()
    return control.id


def _first_batch(control_id, campaign, announce=False):
    """The control's first CONTROL_INLINE_TASKS tasks, still in the request but in a transaction of
    their own that holds the campaign FOR SHARE, as a job's batch does: the organisation's
    dispatcher never waits for them (the campaign's FOR UPDATE was held only to change it).
    Publishes the job when work is left, and with `announce` nudges the dispatcher once, after the
    batch. Returns the tasks changed."""
    changed, work_left = _batch(control_id, campaign.id, settings.CONTROL_INLINE_TASKS, count_total=False,
                                announce=False)
    if announce:
        _announce(campaign)
    if work_left:
        transaction.on_commit(lambda: enqueue(Job.RUN_CONTROL, control_id))
    return changed


def _batch(control_id, campaign_id, limit, count_total=True, announce=True):
    """One batch of the control, in its own transaction: (tasks changed, work left). The campaign
    row is held FOR SHARE (a new control waits for the batch; the dispatcher does not), the control
    row FOR UPDATE SKIP LOCKED (a duplicate job finds it taken: nothing done, no work left for it)."""
    with transaction.atomic():
        now = timezone.now()
        campaign = next(iter(Campaign.objects.raw(BATCH_CAMPAIGN_LOCK_SQL, [campaign_id])))
        control = (CampaignControl.objects.select_for_update(skip_locked=True)
                   .filter(id=control_id, finished_at=None).first())
        if control is None:
            return 0, False
        changed, dialable = _step(control, campaign, now, limit, count_total)
        control.save()
        if dialable and announce:
            _announce(campaign)
        return changed, control.finished_at is None


def _start_phase(control, phase, count_total, statuses, cursor):
    if control.phase != phase:
        control.phase, control.done, control.total = phase, 0, None
    if count_total and control.total is None:
        control.total = control.done + _remaining(control.campaign_id, statuses, cursor)


def _remaining(campaign_id, statuses, cursor):
    return Task.objects.filter(campaign_id=campaign_id, status__in=statuses, id__gt=cursor).count()


def _step(control, campaign, now, limit, count_total=True):
    """One batch of `control`'s work on `campaign` (locked): up to `limit` tasks of its status flip,
    else of its re-timing. Marks the control finished when nothing is left. Returns (tasks changed,
    whether they may have become dialable)."""
    if control.flip:
        statuses, applies_under, _ = FLIPS[control.flip]
        if campaign.status in applies_under:
            _start_phase(control, control.flip, count_total, statuses, control.flip_cursor)
            upto, visited, changed = _run(_flip_sql(control.flip), {
                "campaign_id": campaign.id, "after": control.flip_cursor, "limit": limit, "now": now})
            dialable = control.flip in DIALABLE_AFTER and changed > 0
            _advance(control, visited)
            if visited == limit:
                control.flip_cursor = upto
                return changed, dialable
            control.flip = ""
            if visited or not control.retime:
                _finish_if_done(control, now)
                return changed, dialable
        else:
            control.flip = ""
    if control.retime:
        if campaign.status in OPEN_CAMPAIGN_STATUSES:
            _start_phase(control, ControlAction.UPDATE, count_total, PENDING_TASK_STATUSES, control.retime_cursor)
            visited, upto, changed = _retime_batch(campaign, control.retime_cursor, limit, now)
            _advance(control, visited)
            if visited == limit:
                control.retime_cursor = upto
                return changed, changed > 0
            control.retime = False
            _finish_if_done(control, now)
            return changed, changed > 0
        control.retime = False
    _finish_if_done(control, now)
    return 0, False


def _advance(control, visited):
    control.done += visited
    if control.total is not None:
        # Tasks may join a phase behind its count (calls ending meanwhile): the figures stay consistent.
        control.total = max(control.total, control.done)


def _finish_if_done(control, now):
    if not control.flip and not control.retime:
        control.finished_at = now
        control.phase = ""


def _run(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _retime_params(campaign, after, limit, now):
    batch = campaign.type == CampaignType.BATCH
    params = {
        "campaign_id": campaign.id, "after": after, "limit": limit, "now": now, "timezone": campaign.timezone,
        "calling_start": campaign.calling_start, "calling_end": campaign.calling_end, "start_at": campaign.start_at,
        "end_at": campaign.end_at, "max_attempts": campaign.max_retries + 1,
        "retry_interval_ms": campaign.retry_interval_ms,
        "interval_ms": campaign.retry_interval_ms if campaign.max_retries else 0,
    }
    pending = PENDING_TIMES_SQL.format(**(BATCH_RULES if batch else REALTIME_RULES))
    return params, pending


def _retime_batch(campaign, after, limit, now):
    """Re-time the next `limit` pending tasks after task id `after`. Returns (tasks visited, the
    last id visited, tasks changed)."""
    params, pending = _retime_params(campaign, after, limit, now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max(id), count(*) FROM ({_next_ids_sql(PENDING_TASK_STATUSES)}) batch", params)
        upto, visited = cursor.fetchone()
        if not visited:
            return 0, after, 0
        params["upto"] = upto
        cursor.execute(RETIME_PLAN_SQL.format(pending=pending), params)
        windows = cursor.fetchall()
        changed = 0
        for tz, window_start, window_end, earliest, latest in windows:
            window = CallingWindow(window_start, window_end, tz, frozenset(campaign.calling_days))
            spans = occurrences(window, earliest, latest)
            cursor.execute(RETIME_WINDOW_SQL.format(pending=pending), {
                **params, "window_tz": tz, "window_start": window_start, "window_end": window_end,
                "opens": [opens for opens, _ in spans], "closes": [closes for _, closes in spans]})
            changed += cursor.rowcount
    return visited, upto, changed


def do_pause_campaign(campaign):
    """Pause: the campaign stops dialing at once; every queued task becomes paused (the first
    CONTROL_INLINE_TASKS now, the rest by the control job); live calls finish and their tasks then
    go to paused. Taking over a running control: a resume's flip back to queued is dropped and
    every queued task is paused; a re-timing still to do continues afterwards."""
    with transaction.atomic():
        locked = _lock_campaign(campaign.id)
        _refuse_unless(locked, CampaignStatus.PAUSED, "pause")
        _set_campaign_status(campaign, locked, CampaignStatus.PAUSED, timezone.now())
        control_id = _take_over(locked, ControlAction.PAUSE)
    return _first_batch(control_id, locked)


def do_resume_campaign(campaign):
    """Resume: paused tasks become queued with their retry timing kept (the first
    CONTROL_INLINE_TASKS now, the rest by the control job, each dialable as it flips); the campaign
    goes back to running if any attempt was ever placed, else to scheduled. Taking over a running
    pause: the tasks it had paused are flipped back; a re-timing still to do continues afterwards."""
    with transaction.atomic():
        locked = _lock_campaign(campaign.id)
        if locked.status != CampaignStatus.PAUSED:
            raise ControlRefused(f"cannot resume a campaign that is {locked.status}")
        started = Call.objects.filter(campaign_id=locked.id).exists()
        _set_campaign_status(campaign, locked, CampaignStatus.RUNNING if started else CampaignStatus.SCHEDULED,
                             timezone.now())
        control_id = _take_over(locked, ControlAction.RESUME)
    return _first_batch(control_id, locked, announce=True)


def do_archive_campaign(campaign):
    """Archive, permanently: the campaign is final at once (no call ever starts again); queued and
    paused tasks become archived (reason `archived`; the first CONTROL_INLINE_TASKS now, the rest
    by the control job); live calls finish and make no further attempts. Taking over a running
    control: its flip and any re-timing are dropped, everything pending is archived."""
    with transaction.atomic():
        locked = _lock_campaign(campaign.id)
        _refuse_unless(locked, CampaignStatus.ARCHIVED, "archive")
        _set_campaign_status(campaign, locked, CampaignStatus.ARCHIVED, timezone.now())
        control_id = _take_over(locked, ControlAction.ARCHIVE)
    return _first_batch(control_id, locked)


# The settings that decide when attempts are placed. An update that changes none of them (name,
# agent, calling number, priority, retry outcomes, slots) leaves every task's timing as it is,
# instead of re-reading every pending task of the campaign.
TIMING_FIELDS = frozenset({
    "timezone", "start_at", "end_at", "calling_start", "calling_end", "calling_days", "max_retries",
    "retry_interval_ms",
})


def do_update_campaign(campaign, fields):
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
    """
    with transaction.atomic():
        locked = _lock_campaign(campaign.id)
        if locked.status not in OPEN_CAMPAIGN_STATUSES:
            raise ControlRefused(f"cannot update a campaign that is {locked.status}")
        timing_changed = any(getattr(locked, name) != value for name, value in fields.items()
                             if name in TIMING_FIELDS)
        for name, value in fields.items():
            setattr(locked, name, value)
            setattr(campaign, name, value)
        locked.save(update_fields=[*fields, "updated_at"])
        if not timing_changed:
            # New slots or priority may make waiting work admissible: the dispatcher looks again.
            _announce(locked)
            return 0
        control_id = _take_over(locked, ControlAction.UPDATE)
    return _first_batch(control_id, locked, announce=True)


def running_controls(campaign_ids):
    """{campaign id: progress} of the campaigns' unfinished controls, one query: the phase under
    way (`pause`, `resume`, `archive`, `update`, `end`), tasks done and the total (None until
    counted)."""
    rows = CampaignControl.objects.filter(campaign_id__in=campaign_ids, finished_at=None).values_list(
        "campaign_id", "action", "phase", "done", "total")
    return {campaign_id: {"action": phase or action, "done": done, "total": total}
            for campaign_id, action, phase, done, total in rows}


def do_control_batch(control_id):
    """One batch of a control's job (`_batch`: CONTROL_BATCH_TASKS tasks, one transaction). Returns
    whether work is left. Runs in a Celery worker (`campaigns.run_control`)."""
    campaign_id = (CampaignControl.objects.filter(id=control_id, finished_at=None)
                   .values_list("campaign_id", flat=True).first())
    if campaign_id is None:
        return False
    return _batch(control_id, campaign_id, settings.CONTROL_BATCH_TASKS)[1]


def run_control(control_id):
    """Run a control's job to the end (the body of `campaigns.run_control`)."""
    while do_control_batch(control_id):
        pass


def resume_stalled_controls(now):
    """Re-publish the job of every unfinished control that made no progress for
    CONTROL_STALLED_SECONDS (its worker died, or its message was lost). Runs from beat. A job
    still alive only gets a duplicate, which finds the control taken or shares its batches."""
    cutoff = now - dt.timedelta(seconds=settings.CONTROL_STALLED_SECONDS)
    stalled = list(CampaignControl.objects.filter(finished_at=None, updated_at__lt=cutoff).values_list("id", flat=True))
    # Stamped as if it progressed: behind a backed-up queue, one message per stall period is enough.
    CampaignControl.objects.filter(id__in=stalled).update(updated_at=now)
    for control_id in stalled:
        enqueue(Job.RUN_CONTROL, control_id)
    return stalled


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
        controls = [(_take_over(campaign, ControlAction.END), campaign) for campaign in campaigns]
    return sum(_first_batch(control_id, campaign) for control_id, campaign in controls)


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
