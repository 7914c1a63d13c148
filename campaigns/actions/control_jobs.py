"""The control job: a `CampaignControl`'s per-task work (status flips, re-timing), batch by batch.

A control's request (`campaigns.actions.controls`) changes the campaign and records its work here
(`take_over`) as one part (`CampaignControlPart`) over every task id; its first batch runs in the
request (`first_batch`), the rest in the job `campaigns.run_control` (published on commit to the
`controls` queue, which workers take after `events`: a free process runs a dispatcher run first),
`CONTROL_BATCH_TASKS` tasks per short transaction. That job splits the work, if it is larger than
a batch per job, into `CONTROL_JOBS` parts of equal id width (`do_split_control`) and publishes a
job per part; each part's job runs one batch and publishes itself again while its part has work,
so the parts' batches run side by side and a worker takes the jobs queued meanwhile (the
dispatcher's runs) between any two of them. The control finishes when its last part does.

A batch holds the campaign row `FOR SHARE`: the dispatcher's own `FOR SHARE` passes through, a new
control's `FOR UPDATE` waits for the batches in flight only — the request takes the campaign's
control lock (`hold_batches`) first, and every batch takes it shared before the row, so batches
starting meanwhile queue behind the control instead of starving it (a part's phase is counted
before its batches, outside these locks, by one part's job of the campaign at a time:
`COUNT_LOCK_CLASS`). A batch holds its part `FOR UPDATE SKIP LOCKED`: a duplicate job finds it
taken. A lost job resumes from its part's cursors (its message is redelivered, and beat
re-publishes a part that made no progress for `CONTROL_STALLED_SECONDS`).

Each walk of a part (a flip, a re-timing) goes through its task statuses one at a time, each as
one range of the (campaign, status, id) index within the part's slice, with its own id cursor: a
batch finds the id `limit` tasks ahead (`BATCH_BOUND_SQL`) and changes the id range up to it with
one set-based UPDATE. Entries behind the cursor (the dead ones every flip leaves) are never read
again, and a status found exhausted is not read again by the walk. The status the campaign's tasks
most likely hold comes first (paused for a paused campaign, else queued), so the request's batch
finds live tasks at once rather than walking the other status's dead entries. Flips are
conditional (`status = ...` in the UPDATE); the dispatcher claims tasks `FOR UPDATE SKIP LOCKED`,
so a task being admitted is either admitted or flipped, never both. Re-timing is set-based: a
batch reads its pending tasks once (their earliest next attempts, the retries' last calls) into a
temporary table, then per calling window among them (there are few) one UPDATE sets every task's
next attempt in SQL from the window's openings (`dialer.windows.occurrences`).

A control arriving while another's job runs takes the job over (one unfinished control per
campaign), in every part over the part's own slice, so the tasks end as if the controls had run
one after the other to completion:
- pause, resume or archive replaces the status flip still to do (a resume after a pause flips
  back to queued every task the pause had paused, an archive archives everything pending);
- an update adds re-timing under the settings now in force (restarting it if one was under way);
  a status flip still to do is finished first;
- an archive or the end time drops a re-timing still to do (every pending task is archived anyway).
"""
import datetime as dt
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from campaigns.actions.audit import do_count_tasks_changed
from campaigns.models import (
    LAST_TASK_ID, Campaign, CampaignControl, CampaignControlPart, CampaignStatus, CampaignType, ControlAction, Task,
    TaskStatus,
)
from campaigns.signals import tasks_changed
from config.jobs import Job, enqueue
from dialer.lifecycle import OPEN_CAMPAIGN_STATUSES, PENDING_TASK_STATUSES, task_statuses_leading_to
from dialer.windows import CallingWindow, occurrences

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
# The campaign's control lock: a control's request takes it exclusive before the campaign's row
# (`hold_batches`), every batch shared before its row. Row locks alone would let the FOR SHARE of
# the parts' concurrent batches, one always in flight, starve a control's FOR UPDATE; the lock
# manager queues a new batch behind a waiting control, so the control waits for the batches in
# flight only. Keyed (class, campaign id) in the two-key space, apart from the one-key locks of
# idempotency; campaign ids past 2^31 share keys, which costs only a wait.
CONTROL_LOCK_CLASS = 22
CONTROL_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, (%s %% 2147483648)::integer)"
# Counting a part's phase (`_count_phase`, most of a second at a million tasks) is one part's job
# at a time per campaign, the lock held from the count to the end of the job's batch: a job that
# finds another counting runs its batch uncounted and counts at a later one, so at most one of the
# worker's processes runs a counting job, never all of them (the dispatcher's runs waited over a
# second when both parts of a control counted at once, or one counted as the other's count ended).
COUNT_LOCK_CLASS = 23
COUNT_LOCK_SQL = "SELECT pg_try_advisory_lock(%s, (%s %% 2147483648)::integer)"
COUNT_UNLOCK_SQL = "SELECT pg_advisory_unlock(%s, (%s %% 2147483648)::integer)"
# What a batch holds of its campaign: the control lock shared (taken as the FROM clause is read,
# before the row's lock), then the row FOR SHARE, which lets the dispatcher's own FOR SHARE through
# and makes a new control's FOR UPDATE wait for the batch. Parameters: the campaign id, twice.
BATCH_CAMPAIGN_LOCK_SQL = f"""
SELECT c.* FROM pg_advisory_xact_lock_shared({CONTROL_LOCK_CLASS}, (%s %% 2147483648)::integer) AS held,
    campaigns_campaign c
WHERE c.id = %s FOR SHARE OF c
"""

# The id `count` tasks ahead of the cursor in one status of the part's slice (none when fewer are
# left: the range ends within them), one ordered range scan of (campaign, status, id).
BATCH_BOUND_SQL = """
SELECT id FROM campaigns_task
WHERE campaign_id = %(campaign_id)s AND status = %(status)s AND id > %(after)s AND id <= %(upto)s
ORDER BY id OFFSET %(count)s - 1 LIMIT 1
"""


# When a task the statement leaves queued is next due (None: it is not queued): a pending
# callback's time or the next attempt's, now when it has neither.
DUE_AT_SQL = "CASE WHEN {t}.status = 'queued' THEN COALESCE(LEAST({t}.next_attempt_at, {t}.callback_at), %(now)s) END"


def _flip_sql(action):
    """One statement: the range's bound, then one UPDATE of the id range up to it (to the end of
    the slice when fewer than `count` are left). Returns (bound or NULL, tasks flipped, when the
    first task it queued is due or NULL)."""
    _, _, assignments = FLIPS[action]
    return f"""
WITH bound AS ({BATCH_BOUND_SQL}),
changed AS (
    UPDATE campaigns_task SET {assignments}, updated_at = %(now)s
    WHERE campaign_id = %(campaign_id)s AND status = %(status)s AND id > %(after)s
      AND id <= COALESCE((SELECT id FROM bound), %(upto)s)
    RETURNING {DUE_AT_SQL.format(t="campaigns_task")} AS due_at
)
SELECT (SELECT id FROM bound), (SELECT count(*) FROM changed), (SELECT min(due_at) FROM changed)
"""


# A batch's pending tasks, read once per batch and range: the plan's rows are kept in a temporary
# table of the session, which each window's UPDATE empties of its own rows as it applies them (so
# it is empty again by the end of the batch; ON COMMIT DELETE ROWS in case a batch is cut short).
PENDING_TABLE_SQL = """
CREATE TEMPORARY TABLE IF NOT EXISTS control_pending (
    id bigint, attempts_made integer, next_attempt_at timestamptz, tz text, window_start time, window_end time,
    end_at timestamptz, exhausted boolean, earliest timestamptz
) ON COMMIT DELETE ROWS
"""

# The next `count` pending tasks of one status of the part's slice past the cursor, with their next attempt under the
# campaign's settings, as `dialer.scheduling` defines it (resolve_config, first_attempt_at,
# next_attempt_after), in SQL: a pending callback at its time, a first attempt from now, a retry
# from its last attempt's end plus the interval; never before the start. Kept in control_pending;
# returns, per calling window among them, the range of instants their next attempts start from
# (the window's openings the UPDATE needs), how many tasks it holds and its last task id. The
# calling window itself is applied by RETIME_WINDOW_SQL from the window's openings.
RETIME_PLAN_SQL = """
WITH pending AS (
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
    FROM (
        SELECT * FROM campaigns_task
        WHERE campaign_id = %(campaign_id)s AND status = %(status)s AND id > %(after)s AND id <= %(upto)s
        ORDER BY id LIMIT %(count)s
    ) t
    LEFT JOIN LATERAL (
        SELECT c.ended_at FROM telephony_call c
        WHERE c.task_id = t.id AND c.attempt = t.attempts_made AND t.attempts_made > 0 AND t.callback_at IS NULL
        LIMIT 1
    ) last ON true
),
kept AS (INSERT INTO control_pending SELECT * FROM pending)
SELECT tz, window_start, window_end, min(earliest), max(earliest), count(*), max(id) FROM pending
GROUP BY tz, window_start, window_end
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

# One window's tasks of the batch: next attempt = max(earliest, opening of the first occurrence
# closing after it) — `next_opening` — found by binary search (width_bucket) in the occurrences'
# closing instants. Tasks whose attempts the settings used up complete (`exhausted`), tasks whose
# next attempt falls at or past their end are archived (`ended`); `attempts_made` guards against
# a task admitted, finished and requeued since it was read (its time is then already right).
# Returns the tasks changed and when the first one it leaves queued is due.
RETIME_WINDOW_SQL = """
WITH taken AS (
    DELETE FROM control_pending p
    WHERE p.tz = %(window_tz)s AND p.window_start = %(window_start)s AND p.window_end = %(window_end)s
    RETURNING p.*
),
timed AS (
    SELECT p.*, GREATEST(p.earliest, (%(opens)s::timestamptz[])[width_bucket(p.earliest, %(closes)s::timestamptz[]) + 1])
        AS next_at
    FROM taken p
),
decided AS (
    SELECT id, attempts_made, exhausted, NOT exhausted AND end_at IS NOT NULL AND next_at >= end_at AS ended, next_at,
           next_attempt_at
    FROM timed
),
updated AS (
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
RETURNING {due_at} AS due_at
)
SELECT count(*), min(due_at) FROM updated
""".replace("{due_at}", DUE_AT_SQL.format(t="t"))


def _earliest(*instants):
    """The earliest of the instants that are not None; None when none is."""
    return min((instant for instant in instants if instant is not None), default=None)


def announce(campaign, due_at=None):
    """Send `tasks_changed` for the campaign's organisation once the transaction commits; `due_at`,
    when known, is the instant the first of the tasks made dialable is due."""
    organisation_id = campaign.workspace.organisation_id
    transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id, due_at=due_at))


def _ranges(statuses, campaign_status_before):
    """The statuses to walk, the one the campaign's tasks most likely hold first."""
    likely = TaskStatus.PAUSED if campaign_status_before == CampaignStatus.PAUSED else TaskStatus.QUEUED
    return sorted(statuses, key=lambda status: status != likely)


def hold_batches(campaign_id):
    """Take the campaign's control lock for the control's transaction: batches in flight finish,
    new ones wait until it commits. Call before locking the campaign's row."""
    with connection.cursor() as cursor:
        cursor.execute(CONTROL_LOCK_SQL, [CONTROL_LOCK_CLASS, campaign_id])


def take_over(locked, action, campaign_status_before):
    """Record `action` on the campaign's control, creating it (one part over every task id) or
    taking over the one still running: every part of it, finished or not, takes the new work over
    its own slice from the slice's start.

    Runs in the control's transaction, with the campaign locked FOR UPDATE (so no batch of a job
    runs meanwhile); `campaign_status_before` is the campaign's status before the control. Returns
    the control's id, for `first_batch`.
    """
    control = CampaignControl.objects.select_for_update().filter(campaign_id=locked.id, finished_at=None).first()
    if control is None:
        control = CampaignControl.objects.create(campaign_id=locked.id, action=action)
        parts = [CampaignControlPart(control=control)]
    else:
        control.action = action
        control.save(update_fields=["action", "updated_at"])
        parts = list(control.parts.select_for_update())
    for part in parts:
        if action == ControlAction.UPDATE:
            part.retime_ranges = _ranges(PENDING_TASK_STATUSES, campaign_status_before)
            part.retime_cursor = part.after
            if part.phase == ControlAction.UPDATE:
                part.phase = ""
        else:
            part.flip, part.flip_cursor, part.phase = action, part.after, ""
            part.flip_ranges = _ranges(FLIPS[action][0], campaign_status_before)
            if action in (ControlAction.ARCHIVE, ControlAction.END):
                part.retime_ranges = []
        part.save()
    return control.id


def first_batch(control_id, campaign, with_announce=False, record=None):
    """The control's first CONTROL_INLINE_TASKS tasks (of its first part), in the request, locked as
    a job's batch is; the tasks changed are counted into the control's audit `record` in the same
    transaction. Publishes the job on commit when work is left, and with `with_announce` nudges the
    dispatcher once, after the batch. Returns the tasks changed."""
    changed, work_left, due_at = _batch(control_id, campaign.id, settings.CONTROL_INLINE_TASKS, with_announce=False,
                                        record=record)
    if with_announce:
        # Only a batch that changed tasks knows when they are due; otherwise the dispatcher looks.
        announce(campaign, due_at if changed else None)
    if work_left:
        transaction.on_commit(lambda: enqueue(Job.RUN_CONTROL, control_id))
    return changed


def _lock_for_batch(campaign_id):
    return next(iter(Campaign.objects.raw(BATCH_CAMPAIGN_LOCK_SQL, [campaign_id, campaign_id])))


def _parts_with_work(control_id):
    return CampaignControlPart.objects.filter(CampaignControlPart.WITH_WORK, control_id=control_id,
                                              control__finished_at=None)


def _batch(control_id, campaign_id, limit, part_id=None, counted=None, with_announce=True, record=None):
    """One batch of the control, in its own transaction, on its part `part_id` (by default the first
    free part with work): (tasks changed, work left: in the part when given, else in the control,
    when the first task it made dialable is due or None).
    The campaign is held as `_lock_for_batch` says (a new control waits for the batch; the
    dispatcher does not), the part FOR UPDATE SKIP LOCKED (a duplicate job finds it taken: nothing
    done, no work left for it). `counted` is `_count_phase`'s figure, taken as the part's phase's
    total if it is that part's and the phase is where it was; the tasks changed are counted into
    the audit `record` when given."""
    with transaction.atomic():
        now = timezone.now()
        campaign = _lock_for_batch(campaign_id)
        parts = _parts_with_work(control_id).select_for_update(skip_locked=True, of=("self",))
        part = (parts.filter(id=part_id) if part_id else parts).first()
        if part is None:
            return 0, False, None
        changed, due_at = _step(part, campaign, now, limit, counted)
        part.save()
        finished = not part.has_work and _finish_if_last(part, now)
        if record is not None and changed:
            do_count_tasks_changed(record, changed)
        if due_at is not None and with_announce:
            announce(campaign, due_at)
        return changed, part.has_work if part_id else not finished, due_at


def _finish_if_last(part, now):
    """Mark the part's control finished when none of its parts has work left (`part`, locked, has
    none); returns whether it did. A control split in parts has its row locked first: of two
    parts finishing at once, the second waits for the first's commit and then sees it."""
    if (part.after, part.upto) != (0, LAST_TASK_ID):
        list(CampaignControl.objects.select_for_update().filter(id=part.control_id).values_list("id", flat=True))
    working = CampaignControlPart.objects.filter(CampaignControlPart.WITH_WORK, control_id=OuterRef("id"))
    return bool(CampaignControl.objects.filter(id=part.control_id, finished_at=None).exclude(Exists(working))
                .update(finished_at=now, updated_at=now))


def _step(part, campaign, now, limit, counted):
    """One batch of `part`'s work on `campaign` (locked): up to `limit` tasks of its status flip,
    then of its re-timing. Returns (tasks changed, when the first task it left queued is due or
    None)."""
    changed, due_at = 0, None
    budget = limit
    if part.flip:
        _, applies_under, _ = FLIPS[part.flip]
        if campaign.status in applies_under:
            _start_phase(part, part.flip, counted)
            flipped, due_at = _flip_batch(part, campaign, now, budget)
            _advance(part, flipped)
            changed, budget = flipped, budget - flipped
            if part.flip_ranges:
                return changed, due_at
        part.flip, part.flip_ranges, part.flip_cursor = "", [], part.after
    if part.retime_ranges and budget > 0:
        if campaign.status in OPEN_CAMPAIGN_STATUSES:
            _start_phase(part, ControlAction.UPDATE, counted)
            visited, retimed, retime_due_at = _retime_batch(part, campaign, now, budget)
            _advance(part, visited)
            changed += retimed
            due_at = _earliest(due_at, retime_due_at)
        else:
            part.retime_ranges, part.retime_cursor = [], part.after
    return changed, due_at


def _start_phase(part, phase, counted):
    if part.phase != phase:
        part.phase, part.done, part.total = phase, 0, None
    if counted is not None and part.total is None:
        part_id, where, left = counted
        if part_id == part.id and where == _position(part):
            part.total = part.done + left


def _position(part):
    """Where the part's current phase stands: (phase, statuses left, cursor)."""
    if part.phase == ControlAction.UPDATE:
        return part.phase, list(part.retime_ranges), part.retime_cursor
    return part.phase, list(part.flip_ranges), part.flip_cursor


def _count_phase(part, campaign_id):
    """(part id, position, tasks left in the part's current phase) of a part read without locks, or
    None when its total is known. Counted outside the batch: over a million tasks (and the dead
    entries of earlier flips) a count takes long enough that no lock should wait for it."""
    phase, ranges, cursor = _position(part)
    if part.total is not None or not phase or not ranges:
        return None
    current, *rest = ranges
    tasks = Task.objects.filter(campaign_id=campaign_id, id__lte=part.upto)
    # A count per status, each one range of (campaign, status, id) read from the index alone: their
    # OR in one query read every task's row (a bitmap heap scan).
    left = tasks.filter(status=current, id__gt=cursor).count()
    if rest:
        left += tasks.filter(status__in=rest, id__gt=part.after).count()
    return part.id, (phase, ranges, cursor), left


def _advance(part, visited):
    part.done += visited
    if part.total is not None:
        # Tasks may join a phase behind its count (calls ending meanwhile): the figures stay consistent.
        part.total = max(part.total, part.done)


def _flip_batch(part, campaign, now, limit):
    """Flip up to `limit` tasks along the part's flip ranges; moves its cursor. Returns (tasks
    flipped, when the first task it queued is due or None)."""
    flipped, first_due_at = 0, None
    sql = _flip_sql(part.flip)
    with connection.cursor() as cursor:
        while part.flip_ranges and flipped < limit:
            cursor.execute(sql, {"campaign_id": campaign.id, "status": part.flip_ranges[0], "after": part.flip_cursor,
                                 "upto": part.upto, "count": limit - flipped, "now": now})
            upto, changed, due_at = cursor.fetchone()
            flipped += changed
            first_due_at = _earliest(first_due_at, due_at)
            _move_cursor(part, "flip", upto)
    return flipped, first_due_at


def _move_cursor(part, walk, upto):
    """Past the batch's range: to its bound, or to the next status (from the slice's start) when
    the range ended."""
    if upto is None:
        setattr(part, f"{walk}_ranges", getattr(part, f"{walk}_ranges")[1:])
        upto = part.after
    setattr(part, f"{walk}_cursor", upto)


def _retime_params(campaign, now):
    params = {
        "campaign_id": campaign.id, "now": now, "timezone": campaign.timezone,
        "calling_start": campaign.calling_start, "calling_end": campaign.calling_end, "start_at": campaign.start_at,
        "end_at": campaign.end_at, "max_attempts": campaign.max_retries + 1,
        "retry_interval_ms": campaign.retry_interval_ms,
        "interval_ms": campaign.retry_interval_ms if campaign.max_retries else 0,
    }
    rules = BATCH_RULES if campaign.type == CampaignType.BATCH else REALTIME_RULES
    return params, RETIME_PLAN_SQL.format(**rules)


def _retime_batch(part, campaign, now, limit):
    """Re-time up to `limit` pending tasks along the part's re-timing ranges; moves its cursor.
    Returns (tasks visited, tasks changed, when the first task it left queued is due or None)."""
    params, plan = _retime_params(campaign, now)
    visited = changed = 0
    first_due_at = None
    with connection.cursor() as cursor:
        cursor.execute(PENDING_TABLE_SQL)
        while part.retime_ranges and visited < limit:
            count = limit - visited
            cursor.execute(plan, {**params, "status": part.retime_ranges[0], "after": part.retime_cursor,
                                  "upto": part.upto, "count": count})
            windows = cursor.fetchall()
            tasks_read = sum(tasks for *_, tasks, _ in windows)
            for tz, window_start, window_end, earliest, latest, tasks, _ in windows:
                window = CallingWindow(window_start, window_end, tz, frozenset(campaign.calling_days))
                spans = occurrences(window, earliest, latest)
                cursor.execute(RETIME_WINDOW_SQL, {
                    **params, "window_tz": tz, "window_start": window_start, "window_end": window_end,
                    "opens": [opens for opens, _ in spans], "closes": [closes for _, closes in spans]})
                window_changed, due_at = cursor.fetchone()
                changed += window_changed
                first_due_at = _earliest(first_due_at, due_at)
            visited += tasks_read
            # Fewer than asked for: the range ended within them.
            _move_cursor(part, "retime", max(last for *_, last in windows) if tasks_read == count else None)
    return visited, changed, first_due_at


def running_controls(campaign_ids):
    """{campaign id: progress} of the campaigns' unfinished controls, one query: the phase under
    way (`pause`, `resume`, `archive`, `update`, `end`; a flip before a re-timing when parts are in
    both), and the tasks done and the total (None until every part in it has counted) summed over
    the parts in that phase."""
    rows = CampaignControlPart.objects.filter(control__campaign_id__in=campaign_ids, control__finished_at=None)
    parts = {}
    for campaign_id, action, phase, done, total, flip, retime_ranges in rows.values_list(
            "control__campaign_id", "control__action", "phase", "done", "total", "flip", "retime_ranges"):
        parts.setdefault(campaign_id, (action, []))[1].append((phase, done, total, bool(flip or retime_ranges)))
    return {campaign_id: _progress(action, campaign_parts) for campaign_id, (action, campaign_parts) in parts.items()}


def _progress(action, parts):
    under_way = {phase for phase, _, _, working in parts if working}
    phase = min(under_way - {""}, key=lambda phase: phase == ControlAction.UPDATE, default=action)
    counted = [(done, total) for part_phase, done, total, _ in parts if part_phase == phase]
    total = None if "" in under_way or any(total is None for _, total in counted) else sum(t for _, t in counted)
    return {"action": phase, "done": sum(done for done, _ in counted), "total": total}


def do_split_control(control_id):
    """Split a control still whole (one part over every task id) into CONTROL_JOBS parts of equal
    id width, from its walk's cursor to the campaign's last task id in the statuses it has still to
    walk, when that is more than a batch for each. A campaign's ids are spread evenly enough (an
    import's tasks are consecutive; the API's are created over time): a skewed one only splits less
    evenly. Read outside locks; the split itself holds the campaign as a batch does, so a control
    arriving meanwhile takes over every part, and the whole part FOR UPDATE."""
    jobs = settings.CONTROL_JOBS
    parts = list(CampaignControlPart.objects.filter(control_id=control_id, control__finished_at=None)
                 .select_related("control")[:2])
    if jobs < 2 or len(parts) != 1 or parts[0].upto != LAST_TASK_ID or not parts[0].has_work:
        return
    whole = parts[0]
    campaign_id = whole.control.campaign_id
    cursor = whole.flip_cursor if whole.flip else whole.retime_cursor
    tasks = Task.objects.filter(campaign_id=campaign_id)
    last = max((tasks.filter(status=status).order_by("-id").values_list("id", flat=True).first() or 0
                for status in {*whole.flip_ranges, *whole.retime_ranges}), default=0)
    if last - cursor <= jobs * settings.CONTROL_BATCH_TASKS:
        return
    bounds = [cursor + (last - cursor) * k // jobs for k in range(1, jobs)]
    with transaction.atomic():
        _lock_for_batch(campaign_id)
        whole = (CampaignControlPart.objects.select_for_update(of=("self",))
                 .filter(id=whole.id, control__finished_at=None).first())
        if (whole is None or whole.upto != LAST_TASK_ID or not whole.has_work
                or (whole.flip_cursor if whole.flip else whole.retime_cursor) >= bounds[0]):
            return
        edges = [*bounds, LAST_TASK_ID]
        CampaignControlPart.objects.bulk_create([CampaignControlPart(
            control_id=control_id, after=after, upto=upto, flip=whole.flip, flip_ranges=whole.flip_ranges,
            flip_cursor=after, retime_ranges=whole.retime_ranges, retime_cursor=after, phase=whole.phase)
            for after, upto in zip(edges, edges[1:])])
        whole.upto, whole.total = bounds[0], None
        whole.save()


def do_control_batch(control_id, part_id=None):
    """One batch of a control's job (`_batch`: CONTROL_BATCH_TASKS tasks, one transaction) on its
    part `part_id`, or on the first free part with work. Returns whether work is left (in that
    part, or in the control). Runs in a Celery worker (`campaigns.run_control`)."""
    parts = _parts_with_work(control_id).select_related("control")
    part = (parts.filter(id=part_id) if part_id else parts).first()
    if part is None:
        return False
    campaign_id = part.control.campaign_id
    with _counted_alone(part, campaign_id) as counted:
        return _batch(control_id, campaign_id, settings.CONTROL_BATCH_TASKS, part_id, counted)[1]


@contextmanager
def _counted_alone(part, campaign_id):
    """`_count_phase` of the part, or None when its total is known or another job is counting a
    part of the campaign; the count's lock is held until the block (the job's batch) ends."""
    if part.total is not None:
        yield None
        return
    with connection.cursor() as cursor:
        cursor.execute(COUNT_LOCK_SQL, [COUNT_LOCK_CLASS, campaign_id])
        if not cursor.fetchone()[0]:
            yield None
            return
    try:
        yield _count_phase(part, campaign_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(COUNT_UNLOCK_SQL, [COUNT_LOCK_CLASS, campaign_id])


def run_control(control_id, part_id=None):
    """The body of the job `campaigns.run_control`. Without a part (the message a control's
    request publishes): split the control if it is still whole, then publish a job for each part
    with work. With a part: one batch of it, the job publishing itself again while the part has
    work left, so between any two batches a worker takes the jobs queued meanwhile (the
    dispatcher's runs, which the parts' jobs would otherwise hold up for as long as they run)."""
    if part_id is None:
        do_split_control(control_id)
        for part in _parts_with_work(control_id).values_list("id", flat=True):
            enqueue(Job.RUN_CONTROL, control_id, part_id=part)
    elif do_control_batch(control_id, part_id):
        enqueue(Job.RUN_CONTROL, control_id, part_id=part_id)


def resume_stalled_controls(now):
    """Re-publish the job of every part of an unfinished control that made no progress for
    CONTROL_STALLED_SECONDS (its worker died, or its message was lost). Runs from beat. A job
    still alive only gets a duplicate, which finds the part taken or shares its batches. Returns
    the ids of the controls resumed."""
    cutoff = now - dt.timedelta(seconds=settings.CONTROL_STALLED_SECONDS)
    stalled = list(CampaignControlPart.objects.filter(CampaignControlPart.WITH_WORK, control__finished_at=None,
                                                      updated_at__lt=cutoff).values_list("control_id", "id"))
    # Stamped as if it progressed: behind a backed-up queue, one message per stall period is enough.
    CampaignControlPart.objects.filter(id__in=[part_id for _, part_id in stalled]).update(updated_at=now)
    for control_id, part_id in stalled:
        enqueue(Job.RUN_CONTROL, control_id, part_id=part_id)
    return sorted({control_id for control_id, _ in stalled})
