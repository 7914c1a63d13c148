"""The dispatcher: turns eligible tasks into admitted calls and dial jobs, one organisation at a time.

One pass, inside one transaction (DESIGN section 2, Flow 2):
1. Lock the organisation's dialable campaigns that have slot headroom (read from the leases)
   FOR SHARE, so a pause/archive/update (which locks the campaign FOR UPDATE) waits for the pass
   and then sees its result: a task being admitted is either admitted or paused, never both.
   Campaigns whose slots are all taken are neither locked nor read.
2. Claim candidates per campaign with one LATERAL query, `FOR UPDATE SKIP LOCKED`, in the
   attempt-layer order the candidate index serves, limited to each campaign's slot headroom — so
   a pass costs what it can admit, not what is queued.
3. Re-check each candidate (end time, calling window, attempts, do-not-call, no live call to the
   same number), merge per-campaign streams into DESIGN's order, keep those whose calling number
   has a calls-per-second turn now (`dialer.pacing`), admit them through the slot leases.
4. Record the attempts in bulk (Call rows, tasks in progress) and publish the dial jobs on commit.
Passes repeat while one may still admit more: its claim was cut at the per-pass bound, re-checks
dropped candidates that later ones may replace, or events arrived during the run. A pass that
filled what it claimed needs no empty pass after it to prove so.

Hot path: campaigns and candidates are read as plain rows (no model instances), the attempts are
recorded in one statement, and the dial jobs share one broker connection — a pass costs round
trips per pass, not per call.
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

from campaigns.controls import do_complete_campaign_if_done
from campaigns.models import (
    CallingNumber, Campaign, CampaignStatus, CampaignType, CompletionReason, DoNotCall, Organisation, Priority, Task,
    TaskStatus,
)
from config.metrics import record_dispatch
from config.queues import Queue
from config.redis_client import get_redis
from dialer import keys, pacing, slots
from dialer.dispatch_lock import DispatchLock, clear_nudge
from dialer.ordering import Candidate, order_candidates
from dialer.scheduling import resolve_config
from dialer.windows import is_open, next_opening
from telephony.models import LIVE_CALL_STATUSES, Call

logger = logging.getLogger(__name__)

MAX_CANDIDATES_PER_PASS = getattr(settings, "DISPATCH_MAX_CANDIDATES_PER_PASS", 1000)
MAX_PASSES_PER_RUN = 50
DIAL_JOB_SIZE = getattr(settings, "DIAL_JOB_SIZE", 20)

# What a pass reads of a campaign: the fields `resolve_config`, the limits, the ordering and the
# Call rows use, with its calling number joined in.
DialableCampaign = namedtuple("DialableCampaign", [
    "id", "type", "priority", "status", "timezone", "start_at", "end_at", "calling_start", "calling_end",
    "calling_days", "max_retries", "retry_interval_ms", "retry_outcomes", "slots", "slot_mode", "agent_id",
    "calling_number_id", "calling_number_number", "calling_number_carrier",
])

# What a pass reads of a candidate task: no context or submitted body (JSON it never looks at).
CandidateTask = namedtuple("CandidateTask", [
    "id", "campaign_id", "phone", "agent_id", "calling_number_id", "timezone", "calling_start", "calling_end",
    "start_after", "end_after", "max_attempts", "intervals_ms", "priorities", "retry_outcomes", "attempts_made",
    "next_attempt_at", "callback_at", "dispatch_rank", "tie_break",
])

DIALABLE_CAMPAIGNS_SQL = f"""
SELECT {", ".join(f"c.{f}" for f in DialableCampaign._fields[:-2])}, n.number, n.carrier
FROM campaigns_campaign c
JOIN campaigns_workspace w ON w.id = c.workspace_id
LEFT JOIN campaigns_callingnumber n ON n.id = c.calling_number_id
WHERE w.organisation_id = %s
  AND c.id = ANY(%s)
  AND c.status IN ('scheduled', 'running')
  AND c.start_at <= %s
  AND (c.end_at IS NULL OR c.end_at > %s)
ORDER BY c.id
FOR SHARE OF c
"""

# One index range scan per campaign (task_dispatch_candidates: campaign, dispatch_rank,
# next_attempt_at, tie_break WHERE status = 'queued'); SKIP LOCKED leaves rows that a control or
# another dispatcher holds to them.
CANDIDATES_SQL = f"""
SELECT {", ".join(f"t.{f}" for f in CandidateTask._fields)}
FROM unnest(%s::bigint[], %s::int[]) AS c(id, lim)
CROSS JOIN LATERAL (
    SELECT *
    FROM campaigns_task t
    WHERE t.campaign_id = c.id AND t.status = 'queued' AND t.next_attempt_at <= %s
    ORDER BY t.dispatch_rank, t.next_attempt_at, t.tie_break
    LIMIT c.lim
    FOR UPDATE SKIP LOCKED
) t
"""

RESCHEDULE_SQL = """
UPDATE campaigns_task AS t
SET next_attempt_at = v.next_attempt_at, updated_at = %s
FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::timestamptz[]) AS next_attempt_at) AS v
WHERE t.id = v.id AND t.status = 'queued'
"""

# The Call rows and the tasks' move to in progress, in one statement (one round trip); the
# constant columns are the model's defaults, which Django keeps in Python, not in the table.
RECORD_ATTEMPTS_SQL = """
WITH calls AS (
    INSERT INTO telephony_call (id, task_id, campaign_id, organisation_id, attempt, agent_id, carrier, from_number,
        to_number, lease_token, is_callback, created_at, status, carrier_status, outcome, recording_url, transcript,
        analysis, prompt, answered_by)
    SELECT v.id, v.task_id, v.campaign_id, %s, v.attempt, v.agent_id, v.carrier, v.from_number, v.to_number,
        v.lease_token, v.is_callback, %s, 'admitted', '', '', '', '', '{}'::jsonb, '', ''
    FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[],
                %s::bigint[], %s::boolean[])
        AS v(id, task_id, campaign_id, attempt, agent_id, carrier, from_number, to_number, lease_token, is_callback)
)
UPDATE campaigns_task
SET status = 'in_progress', attempts_made = attempts_made + 1, next_attempt_at = NULL, callback_at = NULL,
    updated_at = %s
WHERE id = ANY(%s)
"""

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

    Runs in a Celery worker (`dialer.dispatch`); single-flight per organisation. A run that finds
    the lock taken leaves a rerun mark, so the holder makes one more pass for its events. The
    hand-over has no gap: the holder looks at the mark again once it has released the lock, and
    the run that left the mark tries the lock once more, so a mark left just as the holder made
    its last check is acted on by one of them, not by the next beat tick a second later.
    """
    clear_nudge(organisation_id)
    if not Organisation.objects.filter(id=organisation_id).exists():
        return 0  # deleted since it was nudged
    admitted = 0
    started = time.perf_counter()
    rerun = keys.dispatch_rerun(organisation_id)
    for _ in range(MAX_PASSES_PER_RUN):
        ran, count = _passes_under_lock(organisation_id, now)
        if not ran:
            get_redis().set(rerun, 1, ex=60)
            ran, count = _passes_under_lock(organisation_id, now)
            if not ran:
                break  # the holder has not released the lock yet: it will find the mark
        admitted += count
        now = None
        if not get_redis().exists(rerun):
            break
    record_dispatch(organisation_id, admitted, time.perf_counter() - started)
    return admitted


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
            now = None
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
            limits = slots.headroom(organisation_id, MAX_CANDIDATES_PER_PASS)
            campaigns = _lock_dialable_campaigns(organisation_id, list(limits), now)
            if not campaigns:
                slots.set_waiting(organisation_id, {})
                return PassResult(0, False)
            limits = {campaign_id: limit for campaign_id, limit in limits.items() if campaign_id in campaigns}
            tasks = _claim_candidates(limits, now)
            claimed = Counter(t.campaign_id for t in tasks)
            slots.set_waiting(organisation_id, dict(claimed))
            dialable, dropped = _recheck(organisation_id, tasks, campaigns, now)
            admissions, next_turn_at = _admit(organisation_id, dialable, campaigns, now)
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
    return PassResult(len(admissions), cut_at_bound or dropped > 0, next_turn_at)


def _lock_dialable_campaigns(organisation_id, campaign_ids, now):
    if not campaign_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(DIALABLE_CAMPAIGNS_SQL, [organisation_id, campaign_ids, now, now])
        return {row[0]: DialableCampaign._make(row) for row in cursor.fetchall()}


def _claim_candidates(limits, now):
    if not limits:
        return []
    ids, lims = zip(*limits.items())
    with connection.cursor() as cursor:
        cursor.execute(CANDIDATES_SQL, [list(ids), list(lims), now])
        return [CandidateTask._make(row) for row in cursor.fetchall()]


def _recheck(organisation_id, tasks, campaigns, now):
    """Drop candidates that may not be dialed now; fix their stored state in bulk.

    Returns the (task, campaign, config) triples still dialable, and how many candidates were
    finished or rescheduled.
    """
    if not tasks:
        return [], 0
    phones = {t.phone for t in tasks}
    do_not_call = set(DoNotCall.objects.filter(organisation_id=organisation_id, phone__in=phones)
                      .values_list("phone", flat=True))
    live_numbers = set(Call.objects.filter(organisation_id=organisation_id, to_number__in=phones,
                                           status__in=LIVE_CALL_STATUSES).values_list("to_number", flat=True))
    dialable, reschedule = [], {}
    finished = defaultdict(list)  # (status, reason) → task ids
    window_open = {}  # most tasks share their campaign's window: one zone conversion each
    for task in tasks:
        campaign = campaigns[task.campaign_id]
        config = resolve_config(task, campaign)
        if config.window not in window_open:
            window_open[config.window] = is_open(config.window, now)
        if config.end_at is not None and now >= config.end_at:
            finished[(TaskStatus.ARCHIVED, CompletionReason.ENDED)].append(task.id)
        elif task.attempts_made >= config.max_attempts:
            finished[(TaskStatus.COMPLETED, CompletionReason.EXHAUSTED)].append(task.id)
        elif task.phone in do_not_call:
            finished[(TaskStatus.ARCHIVED, CompletionReason.DNC)].append(task.id)
        elif not window_open[config.window]:
            opening = next_opening(config.window, now)
            if config.end_at is not None and opening >= config.end_at:
                finished[(TaskStatus.ARCHIVED, CompletionReason.ENDED)].append(task.id)
            else:
                reschedule[task.id] = opening
        elif task.phone in live_numbers:
            continue  # stays queued; taken on a later pass once the other call ends
        else:
            live_numbers.add(task.phone)
            dialable.append((task, campaign, config))
    for (status, reason), ids in finished.items():
        Task.objects.filter(id__in=ids, status=TaskStatus.QUEUED).update(
            status=status, completion_reason=reason, next_attempt_at=None, completed_at=now, updated_at=now)
    if finished:
        # Finishing a batch campaign's last pending tasks here completes the campaign.
        finished_ids = {task_id for ids in finished.values() for task_id in ids}
        batch_ids = {t.campaign_id for t in tasks
                     if t.id in finished_ids and campaigns[t.campaign_id].type == CampaignType.BATCH}
        transaction.on_commit(lambda: [do_complete_campaign_if_done(campaign_id, now) for campaign_id in batch_ids])
    if reschedule:
        with connection.cursor() as cursor:
            cursor.execute(RESCHEDULE_SQL, [now, list(reschedule), list(reschedule.values())])
    return dialable, len(reschedule) + sum(len(ids) for ids in finished.values())


def _admit(organisation_id, dialable, campaigns, now):
    """Admit candidates in DESIGN's order, as their numbers' calls-per-second allow, through the
    slot leases; returns the admissions and the next calls-per-second turn of those held."""
    by_task = {task.id: (task, campaign) for task, campaign, _ in dialable}
    ordered = order_candidates([
        Candidate(task_id=task.id, campaign_id=campaign.id, campaign_priority=campaign.priority,
                  dispatch_rank=task.dispatch_rank, next_attempt_at=task.next_attempt_at,
                  callback_at=task.callback_at, tie_break=task.tie_break)
        for task, campaign, _ in dialable
    ], now)
    paced = pacing.take_turns_in_order(ordered, [
        by_task[c.task_id][0].calling_number_id or by_task[c.task_id][1].calling_number_id for c in ordered], now)
    requests = [(candidate.campaign_id, str(uuid.uuid4())) for candidate in paced.allowed]
    results = slots.acquire_many(organisation_id, requests)
    pacing.give_back_unused(paced, [isinstance(result, slots.Lease) for result in results])
    admissions = []
    for candidate, (_, call_id), result in zip(paced.allowed, requests, results):
        if isinstance(result, slots.Lease):
            task, campaign = by_task[candidate.task_id]
            is_callback = task.callback_at is not None and task.callback_at <= now
            admissions.append(Admission(task, campaign, uuid.UUID(call_id), result.token, is_callback))
    return admissions, paced.next_turn_at


def _record_attempts(organisation_id, admissions, now):
    own_numbers = {a.task.calling_number_id for a in admissions if a.task.calling_number_id is not None}
    numbers = {}
    if own_numbers:
        numbers = {number_id: (number, carrier) for number_id, number, carrier in
                   CallingNumber.objects.filter(id__in=own_numbers).values_list("id", "number", "carrier")}
    columns = [[] for _ in range(10)]
    for admission in admissions:
        task, campaign = admission.task, admission.campaign
        if task.calling_number_id is not None:
            number, carrier = numbers[task.calling_number_id]
        elif campaign.calling_number_id is not None:
            number, carrier = campaign.calling_number_number, campaign.calling_number_carrier
        else:
            number, carrier = "", settings.TELEPHONY_PROVIDER
        row = (str(admission.call_id), task.id, campaign.id, task.attempts_made + 1, task.agent_id or campaign.agent_id,
               carrier, number, task.phone, admission.token, admission.is_callback)
        for column, value in zip(columns, row):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(RECORD_ATTEMPTS_SQL, [organisation_id, now, *columns, now, columns[1]])
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
    from dialer.tasks import dial_calls

    by_queue = defaultdict(list)
    for admission in admissions:
        by_queue[dial_queue(admission)].append(str(admission.call_id))
    with dial_calls.app.producer_or_acquire() as producer:  # one broker connection for the whole batch
        for queue, call_ids in by_queue.items():
            for start in range(0, len(call_ids), DIAL_JOB_SIZE):
                dial_calls.apply_async(args=[call_ids[start:start + DIAL_JOB_SIZE]], queue=str(queue),
                                       producer=producer)
