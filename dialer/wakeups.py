"""The wake-up schedule: when each organisation's dispatcher next has to run (docs/architecture.md, flow step 2).

Redis keeps, per organisation, the earliest instant at which it may have something to admit
(`keys.WAKEUPS`, a sorted set of organisation ids scored by epoch ms). Beat's tick takes the
organisations whose instant has come (`take_due`) and nudges their dispatchers, so an idle tenant
costs nothing per second.

Who writes it:
- Events that make work dialable at once (tasks added, a call ended, resume, update, slots
  raised) nudge the dispatcher directly; they need no entry. A control's batch that makes tasks
  dialable only later (a resume or an update of tasks all due past beat's next tick) moves the
  entry to the first of them instead (`wake_for_new_work`, from
  `dispatch_lock.nudge_dispatcher_for`), with a rerun mark for a run under way, whose closing
  write would otherwise not know them.
- Every dispatcher run ends by setting its organisation's next instant from PostgreSQL
  (`schedule_next`): the earliest `next_attempt_at` still to come among queued tasks of its open
  campaigns — a retry, a callback time and a calling window's next opening are all stored there
  already — or a campaign's start, read through the `task_next_attempt` index, one probe per open
  campaign, never a scan of the backlog. An organisation with nothing to come has no entry. Due
  work that a run leaves queued waits for a slot or for its number's live call to end, and those
  ends nudge the dispatcher.
- A run that failed asks to be woken again `RETRY_FAILED_RUN` later (`wake_no_later_than`).

PostgreSQL stays the truth. After Redis lost its data, the first tick rebuilds the whole schedule
before taking anything (`rebuild`). `reconcile`, run by beat every `RECONCILE_RUN_SECONDS`,
re-derives a page of organisations — due work included — sized so that every organisation is
re-derived at least once every `RECONCILE_SECONDS` (60 s by default): a lost write delays a call
by at most that, and never loses one. Writes from rebuild and reconcile only move instants
earlier, so they never postpone what a run has just scheduled.
"""
import datetime as dt
import math
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.prepared import PreparedStatement
from config.redis_client import get_redis
from config.redis_scripts import ScriptSet
from dialer import keys

RECONCILE_SECONDS = settings.WAKEUP_RECONCILE_SECONDS
RECONCILE_RUN_SECONDS = 10  # beat's schedule for dialer.reconcile_wakeups (config/celery.py)
RETRY_FAILED_RUN = dt.timedelta(seconds=5)
TAKE_AT_ONCE = 1000
REBUILD_PAGE = 2000

_scripts = ScriptSet(Path(__file__).resolve().parent / "lua", ("take_due_wakeups", "wake"))

# Per open campaign of the given organisations, its next queued task still to come after `after`
# (for a campaign not started yet, any queued task: it becomes due at the start). One index probe
# per campaign (task_next_attempt: campaign, next_attempt_at WHERE status = 'queued'). Not the
# candidate index: a probe walks the dead entries a re-timing leaves until they are marked dead,
# and that index keeps them in tie-break order, so each one costs a heap visit at random: 4 s
# against 1 s for a million (bench/README.md, controls).
NEXT_WAKEUPS = PreparedStatement("""
SELECT w.organisation_id, min(greatest(c.start_at, t.next_attempt_at))
FROM campaigns_workspace w
JOIN campaigns_campaign c ON c.workspace_id = w.id
CROSS JOIN LATERAL (
    SELECT t.next_attempt_at
    FROM campaigns_task t
    WHERE t.campaign_id = c.id AND t.status = 'queued'
      AND t.next_attempt_at > CASE WHEN c.start_at > %(now)s::timestamptz THEN '-infinity'::timestamptz
                                   ELSE %(after)s::timestamptz END
    ORDER BY t.next_attempt_at
    LIMIT 1
) t
WHERE w.organisation_id = ANY(%(organisations)s::bigint[])
  AND c.status IN ('scheduled', 'running')
  AND (c.end_at IS NULL OR c.end_at > %(now)s)
GROUP BY w.organisation_id
""")


def _ms(instant):
    return int(instant.timestamp() * 1000)


def next_wakeups(organisation_ids, now, include_due=False):
    """{organisation_id: the earliest instant it may have something to admit}, from PostgreSQL.

    Without `include_due`, only work still to come after `now` counts (what a dispatcher run
    sets once it has admitted what it could); with it, due work counts as `now` (what rebuild and
    reconcile set, not knowing whether a run has seen it). Organisations with nothing are absent.
    """
    if not organisation_ids:
        return {}
    with connection.cursor() as cursor:
        NEXT_WAKEUPS.execute(cursor, {"organisations": list(organisation_ids), "now": now,
                                      "after": "-infinity" if include_due else now})
        return {organisation_id: max(instant, now) for organisation_id, instant in cursor.fetchall()}


def schedule_next(organisation_id, now, also=()):
    """Set the organisation's wake-up from PostgreSQL and the instants in `also`; none → no entry.

    Runs at the end of a dispatcher run, under the organisation's dispatch lock.
    """
    instants = [*next_wakeups([organisation_id], now).values(), *also]
    if instants:
        get_redis().zadd(keys.WAKEUPS, {organisation_id: _ms(min(instants))})
    else:
        get_redis().zrem(keys.WAKEUPS, organisation_id)
    return min(instants) if instants else None


def wake_no_later_than(organisation_id, instant):
    """Move the organisation's wake-up to `instant` unless it is already earlier."""
    client = get_redis()
    client.zadd(keys.WAKEUPS, {organisation_id: _ms(instant)}, lt=True)


def wake_for_new_work(organisation_id, instant, rerun_mark_seconds):
    """`wake_no_later_than` for work that has just committed: a run under way read PostgreSQL before
    it and would overwrite the entry with what it read, so it gets its rerun mark (for
    `rerun_mark_seconds`) in the same script (`lua/wake.lua`)."""
    _scripts.run(get_redis(), "wake", [
        keys.dispatch_lock(organisation_id), keys.dispatch_rerun(organisation_id), keys.WAKEUPS],
        [rerun_mark_seconds, organisation_id, _ms(instant)])


def _wake_many_no_later_than(instants):
    if instants:
        get_redis().zadd(keys.WAKEUPS, {organisation_id: _ms(instant) for organisation_id, instant in instants.items()},
                         lt=True)


def scheduled(organisation_id):
    """The organisation's wake-up instant as an aware UTC datetime, or None."""
    score = get_redis().zscore(keys.WAKEUPS, organisation_id)
    return None if score is None else dt.datetime.fromtimestamp(score / 1000, tz=dt.timezone.utc)


def take_due(now):
    """Remove and return the organisations whose instant has come (beat's tick nudges them).

    The schedule is first rebuilt from PostgreSQL when Redis lost it.
    """
    client = get_redis()
    if not client.exists(keys.WAKEUPS_BUILT):
        rebuild(now)
    due = []
    while True:
        batch = _scripts.run(client, "take_due_wakeups", [keys.WAKEUPS], [_ms(now), TAKE_AT_ONCE])
        due += [int(organisation_id) for organisation_id in batch]
        if len(batch) < TAKE_AT_ONCE:
            return due


def _organisation_ids_after(after_id, limit):
    from campaigns.models import Organisation

    return list(Organisation.objects.filter(id__gt=after_id).order_by("id").values_list("id", flat=True)[:limit])


def rebuild(now):
    """Derive every organisation's wake-up from PostgreSQL, due work included, and mark it built."""
    after_id = 0
    while organisation_ids := _organisation_ids_after(after_id, REBUILD_PAGE):
        _wake_many_no_later_than(next_wakeups(organisation_ids, now, include_due=True))
        after_id = organisation_ids[-1]
    get_redis().set(keys.WAKEUPS_BUILT, 1)


def reconcile_page_size(organisation_count):
    """Organisations per reconcile run so that all are covered within RECONCILE_SECONDS.

    With a run every 10 s and 60 s to cover them all:

    >>> reconcile_page_size(10_000)
    1667
    """
    runs = max(1, RECONCILE_SECONDS // RECONCILE_RUN_SECONDS)
    return max(1, math.ceil(organisation_count / runs))


def reconcile(now):
    """Re-derive the next page of organisations' wake-ups (beat); returns how many were looked at."""
    from campaigns.models import Organisation

    client = get_redis()
    if not client.exists(keys.WAKEUPS_BUILT):
        rebuild(now)
        return Organisation.objects.count()
    page = reconcile_page_size(Organisation.objects.count())
    after_id = int(client.get(keys.WAKEUPS_RECONCILED_UP_TO) or 0)
    organisation_ids = _organisation_ids_after(after_id, page)
    if len(organisation_ids) < page:  # wrap around to the first organisations
        organisation_ids += [org_id for org_id in _organisation_ids_after(0, page - len(organisation_ids))
                             if org_id not in organisation_ids]
    _wake_many_no_later_than(next_wakeups(organisation_ids, now, include_due=True))
    if organisation_ids:
        client.set(keys.WAKEUPS_RECONCILED_UP_TO, organisation_ids[-1])
    return len(organisation_ids)
