"""The dispatcher: turns eligible tasks into admitted calls and dial jobs, one organisation at a time.

One pass, inside one transaction (docs/architecture.md, Flow 2):
1. Lock the organisation's dialable campaigns that have slot headroom (read from the leases)
   FOR SHARE, so a pause/archive/update (which locks the campaign FOR UPDATE) waits for the pass
   and then sees its result: a task being admitted is either admitted or paused, never both.
   Campaigns whose slots are all taken are neither locked nor read. Their workspaces' compliance
   policies are read with them, the rows locked FOR KEY SHARE: a policy change (which locks the
   workspace FOR UPDATE) waits for the pass, and a pass that waited for it reads the new policy,
   so no task the change released is held again under the old one.
2. Claim candidates per campaign with one LATERAL query, `FOR UPDATE SKIP LOCKED`, in the
   attempt-layer order the candidate index serves, limited to each campaign's slot headroom — so
   a pass costs what it can admit, not what is queued.
3. Re-check each candidate (`dialer.eligibility.recheck`: end time, attempts, do-not-call,
   calling window, no live call to the same number; then the workspace's legal hours and
   frequency cap, `dialer.compliance_checks`), merge per-campaign streams into the product's
   order, keep those whose calling number has a calls-per-second turn now (`dialer.pacing`), and
   admit them through the slot leases — at most the free capacity the claim was sized for, and
   nothing ranked below a campaign whose claim the re-check cut short, so a slot freed mid-pass
   never goes to a lower-ranked candidate while a higher-ranked task was left unclaimed (the
   next pass takes it).
4. Record the attempts in bulk (Call rows, tasks in progress) and publish the dial jobs on commit.
Passes repeat while one may still admit more: its claim was cut at the per-pass bound, re-checks
dropped candidates that later ones may replace, or events arrived during the run. A pass that
filled what it claimed needs no empty pass after it to prove so. The run ends by setting the
organisation's next wake-up from PostgreSQL (`dialer/wakeups.py`).

Hot path: campaigns and candidates are read as plain rows (no model instances), the attempts are
recorded in one statement, and the dial jobs share one broker connection — a pass costs round
trips per pass, not per call. A run's joins are prepared once per connection
(`config/prepared.py`): planning them cost PostgreSQL more than running them in a refill's run of
one or two calls; a large pass's long arrays still get plans of their own.
"""
import datetime as dt
import logging
import time
import uuid
from collections import Counter, defaultdict, namedtuple
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.actions.controls import do_complete_campaign_if_done
from campaigns.actions.dnc import listed_numbers
from campaigns.models import (
    CallingNumber, Campaign, CampaignStatus, CampaignType, Priority, Task,
    TaskStatus,
)
from config import jobs
from config.prepared import PreparedStatement
from config.queues import Queue
from config.redis_client import get_redis
from dialer import eligibility, keys, pacing, slots, wakeups
from dialer.compliance_checks import ComplianceChecks
from dialer.platform_limits import keep_within_platform_limits
from dialer.dispatch_lock import (
    RERUN_MARK_SECONDS, DispatchLock, clear_nudge, hold_numbers, nudge_dispatcher, nudge_dispatcher_at,
)
from dialer.eligibility import recheck
from dialer.lifecycle import task_statuses_leading_to
from dialer.metrics import record_dispatch
from dialer.ordering import Candidate, cut_behind_short_claims, order_candidates
from dialer.scheduling import resolve_config
from dialer.windows import is_open
from telephony.models import OPEN_CALL_STATUSES, CallStatus

logger = logging.getLogger(__name__)

MAX_CANDIDATES_PER_PASS = getattr(settings, "DISPATCH_MAX_CANDIDATES_PER_PASS", 1000)
MAX_PASSES_PER_RUN = 50
DIAL_JOB_SIZE = getattr(settings, "DIAL_JOB_SIZE", 20)

# What a pass reads of a campaign: the fields `resolve_config`, the limits, the ordering and the
# Call rows use, with its calling number and its workspace's compliance policy joined in.
DialableCampaign = namedtuple("DialableCampaign", [
    "id", "type", "priority", "status", "timezone", "start_at", "end_at", "calling_start", "calling_end",
    "calling_days", "max_retries", "retry_interval_ms", "retry_outcomes", "slots", "slot_mode", "agent_id",
    "calling_number_id", "workspace_id", "calling_number_number", "calling_number_carrier", "workspace_compliance",
])

# What a pass reads of a candidate task: no context or submitted body (JSON it never looks at).
CandidateTask = namedtuple("CandidateTask", [
    "id", "campaign_id", "phone", "agent_id", "calling_number_id", "timezone", "calling_start", "calling_end",
    "start_after", "end_after", "max_attempts", "intervals_ms", "priorities", "retry_outcomes", "attempts_made",
    "next_attempt_at", "callback_at", "dispatch_rank", "tie_break", "callee_timezones",
])

DIALABLE_CAMPAIGNS = PreparedStatement(f"""
SELECT {", ".join(f"c.{f}" for f in DialableCampaign._fields[:-3])}, n.number, n.carrier, w.compliance
FROM campaigns_campaign c
JOIN campaigns_workspace w ON w.id = c.workspace_id
LEFT JOIN campaigns_callingnumber n ON n.id = c.calling_number_id
WHERE w.organisation_id = %s::bigint
  AND c.id = ANY(%s::bigint[])
  AND c.status IN ('scheduled', 'running')
  AND c.start_at <= %s::timestamptz
  AND (c.end_at IS NULL OR c.end_at > %s::timestamptz)
ORDER BY c.id
FOR SHARE OF c FOR KEY SHARE OF w
""")

# One index range scan per campaign (task_dispatch_candidates: campaign, dispatch_rank,
# next_attempt_at, tie_break WHERE status = 'queued'); SKIP LOCKED leaves rows that a control or
# another dispatcher holds to them.
CANDIDATES = PreparedStatement(f"""
SELECT {", ".join(f"t.{f}" for f in CandidateTask._fields)}
FROM unnest(%s::bigint[], %s::int[]) AS c(id, lim)
CROSS JOIN LATERAL (
    SELECT *
    FROM campaigns_task t
    WHERE t.campaign_id = c.id AND t.status = 'queued' AND t.next_attempt_at <= %s::timestamptz
    ORDER BY t.dispatch_rank, t.next_attempt_at, t.tie_break
    LIMIT c.lim
    FOR UPDATE SKIP LOCKED
) t
""")

# `held_by` names the compliance rule that moved the task, blank for its own calling window.
RESCHEDULE_SQL = """
UPDATE campaigns_task AS t
SET next_attempt_at = v.next_attempt_at, held_by = v.held_by, updated_at = %s
FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::timestamptz[]) AS next_attempt_at,
             unnest(%s::text[]) AS held_by) AS v
WHERE t.id = v.id AND t.status = 'queued'
"""

# The Call rows and the tasks' move to in progress, in one statement (one round trip); the
# constant columns are the model's defaults, which Django keeps in Python, not in the table.
# Each call also keeps the rules it was admitted under (window, zone, start, end, attempt limit),
# so the invariant checker judges it by them. Weekday lists go as array literals, because unnest
# would flatten a two-dimensional array.
RECORD_ATTEMPTS = PreparedStatement("""
WITH calls AS (
    INSERT INTO telephony_call (id, task_id, campaign_id, organisation_id, attempt, agent_id, carrier, from_number,
        to_number, lease_token, is_callback, created_at, status, carrier_status, outcome, recording_url, transcript,
        analysis, prompt, answered_by, window_start, window_end, window_timezone, window_days, start_after, end_at,
        max_attempts)
    SELECT v.id, v.task_id, v.campaign_id, %s::bigint, v.attempt, v.agent_id, v.carrier, v.from_number, v.to_number,
        v.lease_token, v.is_callback, %s::timestamptz, 'admitted', '', '', '', '', '{}'::jsonb, '', '', v.window_start,
        v.window_end, v.window_timezone, v.window_days::smallint[], v.start_after, v.end_at, v.max_attempts
    FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[],
                %s::bigint[], %s::boolean[], %s::time[], %s::time[], %s::text[], %s::text[], %s::timestamptz[],
                %s::timestamptz[], %s::int[])
        AS v(id, task_id, campaign_id, attempt, agent_id, carrier, from_number, to_number, lease_token, is_callback,
             window_start, window_end, window_timezone, window_days, start_after, end_at, max_attempts)
)
UPDATE campaigns_task
SET status = 'in_progress', attempts_made = attempts_made + 1, next_attempt_at = NULL, callback_at = NULL,
    held_by = '', updated_at = %s::timestamptz
WHERE id = ANY(%s::bigint[])
""")

# The candidates' numbers that have a call not ended (live, or in wrap-up until its analysis says
# whether the person opted out) in the organisation. The statuses are spelled out, as in the
# predicate of the partial unique index that serves it (call_one_open_per_number_in_org).
OPEN_CALL_NUMBERS = PreparedStatement(f"""
SELECT to_number, status FROM telephony_call
WHERE organisation_id = %s::bigint AND to_number = ANY(%s::varchar[]) AND status IN ({", ".join(f"'{s}'" for s in OPEN_CALL_STATUSES)})
""")

PRIORITY_QUEUES = {Priority.HIGH: Queue.DIAL_HIGH, Priority.NORMAL: Queue.DIAL_NORMAL, Priority.LOW: Queue.DIAL_LOW}


@dataclass
class Admission:
    task: CandidateTask
    campaign: DialableCampaign
    call_id: uuid.UUID
    token: int
    is_callback: bool


def dispatch_organisation(organisation_id, now=None):
    """Run the organisation's dispatcher until a pass admits nothing. Returns calls admitted.

    `now` freezes the clock for every pass of the run (tests); by default each pass reads it.

    Runs in a Celery worker (`dialer.dispatch`); single-flight per organisation. A run that finds
    the lock taken leaves a rerun mark, so the holder makes one more pass for its events. The
    hand-over has no gap: the holder looks at the mark again once it has released the lock, and
    the run that left the mark tries the lock once more, so a mark left just as the holder made
    its last check is acted on by one of them, not by the next beat tick a second later.
    """
    clear_nudge(organisation_id)
    if not _organisation_exists(organisation_id):
        return 0  # deleted since it was nudged
    admitted = 0
    started = time.perf_counter()
    rerun = keys.dispatch_rerun(organisation_id)
    try:
        for _ in range(MAX_PASSES_PER_RUN):
            ran, count = _passes_under_lock(organisation_id, now)
            if not ran:
                get_redis().set(rerun, 1, ex=RERUN_MARK_SECONDS)
                ran, count = _passes_under_lock(organisation_id, now)
                if not ran:
                    break  # the holder has not released the lock yet: it will find the mark
            admitted += count
            if not get_redis().exists(rerun):
                break
        else:
            nudge_dispatcher(organisation_id)  # cut at the bound with a mark left: its run comes next
    except Exception:
        # Its wake-up was taken by the tick that started it: ask for another run soon.
        wakeups.wake_no_later_than(organisation_id, timezone.now() + wakeups.RETRY_FAILED_RUN)
        raise
    record_dispatch(organisation_id, admitted, time.perf_counter() - started)
    return admitted


def _organisation_exists(organisation_id):
    # Plain SQL: compiling the ORM's exists() cost more CPU than the rest of a run's first query.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM campaigns_organisation WHERE id = %s", [organisation_id])
        return cursor.fetchone() is not None


def _passes_under_lock(organisation_id, now):
    """(False, 0) when another dispatcher holds the lock, else (True, calls admitted) after passes
    that end when one may admit no more and no rerun was asked for meanwhile."""
    rerun = keys.dispatch_rerun(organisation_id)
    with DispatchLock(organisation_id) as lock_held:
        if not lock_held:
            return False, 0
        admitted = 0
        for _ in range(MAX_PASSES_PER_RUN):
            get_redis().delete(rerun)
            result = _dispatch_pass(organisation_id, now or timezone.now())
            admitted += result.admitted
            if not result.may_admit_more and not get_redis().exists(rerun):
                break
        now = now or timezone.now()
        # A run cut at MAX_PASSES_PER_RUN while it could still admit goes on at the next tick; one
        # that held candidates for a calls-per-second turn, at that turn.
        also = [now] if result.may_admit_more else []
        if result.next_turn_at is not None:
            also.append(result.next_turn_at)
            nudge_dispatcher_at(organisation_id, result.next_turn_at, now)
        wakeups.schedule_next(organisation_id, now, also=also)
        return True, admitted


@dataclass
class PassResult:
    admitted: int
    # The claim was cut at the per-pass bound, or re-checks finished or rescheduled candidates
    # (the next ones may take their place). A candidate left queued for its number's live call
    # does not count: the next pass would claim it first again. Nor does one held for its
    # calling number's calls-per-second turn: it waits for `next_turn_at`.
    may_admit_more: bool
    # The earliest instant a candidate held for its number's calls-per-second turn may go (the
    # organisation's next run is due then); None when no candidate was held.
    next_turn_at: dt.datetime | None = None


def dispatch_pass(organisation_id, now):
    """One pass of the dispatcher (see the module docstring). Returns calls admitted."""
    return _dispatch_pass(organisation_id, now).admitted


def _dispatch_pass(organisation_id, now):
    started = time.perf_counter()
    # Also re-creates the live calls' leases first when Redis lost its data.
    slots.sync_allocations(organisation_id)
    admissions = []
    try:
        with transaction.atomic():
            # Claiming at most each campaign's headroom keeps the waiting-work figures exact where
            # the admission rule reads them (min(waiting, allocation − used)).
            room = slots.headroom(organisation_id, MAX_CANDIDATES_PER_PASS)
            campaigns = _lock_dialable_campaigns(organisation_id, list(room.campaigns), now)
            if not campaigns:
                slots.set_waiting(organisation_id, {})
                return PassResult(0, False)
            limits = {campaign_id: limit for campaign_id, limit in room.campaigns.items() if campaign_id in campaigns}
            tasks = _claim_candidates(limits, now)
            claimed = Counter(t.campaign_id for t in tasks)
            slots.set_waiting(organisation_id, dict(claimed))
            dialable, dropped = _recheck(organisation_id, tasks, campaigns, now)
            short = {campaign_id for campaign_id in dropped if claimed[campaign_id] == limits[campaign_id]}
            last_claimed = {task.campaign_id: _candidate(task, campaigns[task.campaign_id])
                            for task in tasks if task.campaign_id in short}  # claim order: the last wins
            admissions, held_back, next_turn_at = _admit(organisation_id, dialable, room.free, last_claimed, now)
            if admissions:
                _record_attempts(organisation_id, admissions, now)
                transaction.on_commit(lambda: publish_dial_jobs(admissions))
    except Exception:
        for admission in admissions:
            slots.release(organisation_id, str(admission.call_id), admission.token)
        raise
    if admissions:
        logger.info("dispatch org=%s admitted=%d candidates=%d ms=%.1f", organisation_id, len(admissions),
                    len(tasks), (time.perf_counter() - started) * 1000)
    cut_at_bound = any(limit == MAX_CANDIDATES_PER_PASS and claimed[c] == limit for c, limit in limits.items())
    return PassResult(len(admissions), cut_at_bound or bool(dropped) or held_back, next_turn_at)


def _lock_dialable_campaigns(organisation_id, campaign_ids, now):
    if not campaign_ids:
        return {}
    with connection.cursor() as cursor:
        DIALABLE_CAMPAIGNS.execute(cursor, [organisation_id, campaign_ids, now, now])
        return {row[0]: DialableCampaign._make(row) for row in cursor.fetchall()}


def _claim_candidates(limits, now):
    if not limits:
        return []
    ids, lims = zip(*limits.items())
    with connection.cursor() as cursor:
        CANDIDATES.execute(cursor, [list(ids), list(lims), now])
        return [CandidateTask._make(row) for row in cursor.fetchall()]


def _recheck(organisation_id, tasks, campaigns, now):
    """Drop candidates that may not be dialed now; fix their stored state in bulk.

    Returns the (task, campaign, config) triples still dialable, and a Counter of the candidates
    finished or rescheduled per campaign.
    """
    if not tasks:
        return [], Counter()
    phones = {t.phone for t in tasks}
    do_not_call = listed_numbers(organisation_id, phones)
    with connection.cursor() as cursor:
        OPEN_CALL_NUMBERS.execute(cursor, [organisation_id, list(phones)])
        open_calls = cursor.fetchall()
    busy_numbers = {number for number, _ in open_calls}
    # A task held back for a number in wrap-up needs a nudge when that call ends (its slot was
    # freed before); one held for a live call gets it from that call's end like any slot freed.
    wrap_up_numbers = {number for number, status in open_calls if status == CallStatus.WRAP_UP}
    checks = ComplianceChecks(tasks, campaigns, now)
    dialable, reschedule, dropped, held = [], {}, Counter(), set()
    finished = defaultdict(list)  # (status, reason) → task ids
    window_open = {}  # most tasks share their campaign's window: one zone conversion each
    for task in tasks:
        campaign = campaigns[task.campaign_id]
        config = resolve_config(task, campaign)
        if config.window not in window_open:
            window_open[config.window] = is_open(config.window, now)
        verdict = recheck(config, task.attempts_made, listed=task.phone in do_not_call,
                          number_live=task.phone in busy_numbers, now=now, window_open=window_open[config.window])
        if verdict.action == eligibility.DIAL and checks.active:
            verdict = checks.judge(task, campaign, config)
        if verdict.action == eligibility.DIAL:
            busy_numbers.add(task.phone)
            dialable.append((task, campaign, config))
            continue
        if verdict.action == eligibility.HOLD:
            if task.phone in wrap_up_numbers:
                held.add(task.phone)
            continue  # stays queued; taken on a later pass once the other call ends
        if verdict.action == eligibility.RESCHEDULE:
            reschedule[task.id] = (verdict.at, verdict.reason)
        else:
            finished[(verdict.status, verdict.reason)].append(task.id)
        dropped[task.campaign_id] += 1
    if held:
        # The end of a call in wrap-up nudges the dispatcher only for these (its slot was freed earlier).
        hold_numbers(organisation_id, held, settings.SLOT_LEASE_SECONDS)
    for (status, reason), ids in finished.items():
        Task.objects.filter(id__in=ids, status__in=task_statuses_leading_to(status, among=[TaskStatus.QUEUED])).update(
            status=status, completion_reason=reason, next_attempt_at=None, completed_at=now, updated_at=now)
    if finished:
        # Finishing a batch campaign's last pending tasks here completes the campaign.
        finished_ids = {task_id for ids in finished.values() for task_id in ids}
        batch_ids = {t.campaign_id for t in tasks
                     if t.id in finished_ids and campaigns[t.campaign_id].type == CampaignType.BATCH}
        transaction.on_commit(lambda: [do_complete_campaign_if_done(campaign_id, now) for campaign_id in batch_ids])
    if reschedule:
        with connection.cursor() as cursor:
            cursor.execute(RESCHEDULE_SQL, [now, list(reschedule), [at for at, _ in reschedule.values()],
                                            [held_by for _, held_by in reschedule.values()]])
    return dialable, dropped


def _candidate(task, campaign):
    return Candidate(task_id=task.id, campaign_id=campaign.id, campaign_priority=campaign.priority,
                     dispatch_rank=task.dispatch_rank, next_attempt_at=task.next_attempt_at,
                     callback_at=task.callback_at, tie_break=task.tie_break)


def _admit(organisation_id, dialable, free, last_claimed, now):
    """Admit candidates in the product's order (docs/product.md §1), as their numbers' calls-per-second allow, through the
    slot leases; returns (admissions, held_back, next_turn_at).

    The claim was sized from the headroom read at the start of the pass, and calls may have ended
    since: admitting everything claimed would let a lower-ranked candidate take a slot that a
    higher-ranked task, never claimed, should have had. So a pass admits at most the `free` calls
    the claim was sized for (the slots freed since belong to the next pass, which their calls'
    ends asked for, and whose claim sees them), and offers nothing ranked below a campaign whose
    claim fell short (`last_claimed`, see `cut_behind_short_claims`). `held_back` says a later
    pass may admit more; `next_turn_at` is the next calls-per-second turn of a held candidate.
    """
    by_task = {task.id: (task, campaign) for task, campaign, _ in dialable}
    ordered = order_candidates([_candidate(task, campaign) for task, campaign, _ in dialable], now)
    ordered, held_back = cut_behind_short_claims(ordered, last_claimed, now)
    # A platform's concurrency is a slot limit too; a candidate held for it waits for one of the
    # platform's calls to end, whose event nudges the dispatcher (so no `held_back` for it).
    ordered = keep_within_platform_limits(organisation_id, ordered, [
        by_task[c.task_id][0].agent_id or by_task[c.task_id][1].agent_id for c in ordered])
    paced = pacing.take_turns_in_order(ordered, [
        by_task[c.task_id][0].calling_number_id or by_task[c.task_id][1].calling_number_id for c in ordered], now)
    requests = [(candidate.campaign_id, str(uuid.uuid4())) for candidate in paced.allowed]
    results = slots.acquire_many(organisation_id, requests)
    admissions, surplus, kept = [], [], []  # kept[i]: candidate i was admitted and uses its turn
    for candidate, (_, call_id), result in zip(paced.allowed, requests, results):
        admitted = isinstance(result, slots.Lease)
        if admitted and len(admissions) == free:
            surplus.append((call_id, result.token))
            admitted = False
        elif admitted:
            task, campaign = by_task[candidate.task_id]
            is_callback = task.callback_at is not None and task.callback_at <= now
            admissions.append(Admission(task, campaign, uuid.UUID(call_id), result.token, is_callback))
        kept.append(admitted)
    if surplus:
        slots.release_many(organisation_id, surplus)
    pacing.give_back_unused(paced, kept)
    return admissions, held_back or bool(surplus), paced.next_turn_at


def _record_attempts(organisation_id, admissions, now):
    own_numbers = {a.task.calling_number_id for a in admissions if a.task.calling_number_id is not None}
    numbers = {}
    if own_numbers:
        numbers = {number_id: (number, carrier) for number_id, number, carrier in
                   CallingNumber.objects.filter(id__in=own_numbers).values_list("id", "number", "carrier")}
    columns = [[] for _ in range(17)]
    for admission in admissions:
        task, campaign = admission.task, admission.campaign
        config = resolve_config(task, campaign)  # the config the re-check judged, from the same rows
        window = config.window
        if task.calling_number_id is not None:
            number, carrier = numbers[task.calling_number_id]
        elif campaign.calling_number_id is not None:
            number, carrier = campaign.calling_number_number, campaign.calling_number_carrier
        else:
            number, carrier = "", settings.TELEPHONY_PROVIDER
        row = (str(admission.call_id), task.id, campaign.id, task.attempts_made + 1, task.agent_id or campaign.agent_id,
               carrier, number, task.phone, admission.token, admission.is_callback, window.start, window.end,
               window.timezone, "{" + ",".join(map(str, sorted(window.days))) + "}", config.start_after,
               config.end_at, config.max_attempts)
        for column, value in zip(columns, row):
            column.append(value)
    with connection.cursor() as cursor:
        RECORD_ATTEMPTS.execute(cursor, [organisation_id, now, *columns, now, columns[1]])
    started = {a.campaign.id for a in admissions if a.campaign.status == CampaignStatus.SCHEDULED}
    if started:
        Campaign.objects.filter(id__in=started, status=CampaignStatus.SCHEDULED).update(
            status=CampaignStatus.RUNNING, updated_at=now)


def dial_queue(admission):
    if admission.is_callback:
        return Queue.DIAL_CALLBACK
    return PRIORITY_QUEUES[admission.campaign.priority]


def publish_dial_jobs(admissions):
    """One dial job per queue per DIAL_JOB_SIZE calls: one message per call would cap dispatch."""
    publish_dial_jobs_by_queue([(dial_queue(admission), str(admission.call_id)) for admission in admissions])


def publish_dial_jobs_by_queue(calls):
    """Publish dial jobs for (queue, call id) pairs, DIAL_JOB_SIZE calls a job, over one connection."""
    by_queue = defaultdict(list)
    for queue, call_id in calls:
        by_queue[queue].append(call_id)
    with jobs.one_connection() as producer:
        for queue, call_ids in by_queue.items():
            for start in range(0, len(call_ids), DIAL_JOB_SIZE):
                jobs.enqueue(jobs.Job.DIAL_CALLS, call_ids[start:start + DIAL_JOB_SIZE], queue=queue, producer=producer)
