"""Placing calls (the dial job's one call into telephony) and checking them for the lease reaper."""
import datetime as dt
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Agent, Campaign, Carrier, Task
from campaigns.rows import instances_from_row, select_list
from config.prepared import PreparedStatement
from telephony import predial
from telephony.events import analysis_wait_seconds, end_waiting_call, finish_now, handle_event
from telephony.models import Call, CallStatus
from campaigns.prompts import render_prompt
from telephony.providers.base import CarrierUnavailable, PlaceCallRequest
from telephony.registry import get_provider
from telephony.runtimes import placing_routes, platforms_with_credentials
from telephony.rules import CarrierStatus, EventKind, analysis_overdue
from telephony.signals import call_not_placed

logger = logging.getLogger(__name__)

# Both conditional: an event that overtook the dial job may already have linked the id or moved on.
RECORD_PLACED = PreparedStatement("""
UPDATE telephony_call AS c
SET carrier_call_id = COALESCE(c.carrier_call_id, v.carrier_call_id),
    status = CASE WHEN c.status = 'admitted' THEN 'dialing' ELSE c.status END
FROM unnest(%s::uuid[], %s::text[]) AS v(id, carrier_call_id)
WHERE c.id = v.id
""")

# The calls a dial job may claim, with what placing them reads: their task, campaign and agent
# (the call's own, else the task's, else the campaign's), the carrier of the calling number they
# are made from (NULL when it is not one of the workspace's numbers), and whether their workspace
# has a pre-dial check (`telephony.predial` reads its policy only then). Plain SQL, because
# compiling the ORM's selects cost about as much CPU as the rest of the claim. Locked in id
# order, like every lock on several calls.
CLAIMABLE_CALLS = PreparedStatement(f"""
SELECT {select_list(Call, "c")}, {select_list(Task, "t")}, {select_list(Campaign, "ca")},
       {select_list(Agent, "a")}, n.carrier, COALESCE(w.compliance ->> 'predialWebhookUrl', '') <> ''
FROM telephony_call c
JOIN campaigns_task t ON t.id = c.task_id
JOIN campaigns_campaign ca ON ca.id = c.campaign_id
JOIN campaigns_workspace w ON w.id = ca.workspace_id
JOIN campaigns_agent a ON a.id = COALESCE(c.agent_id, t.agent_id, ca.agent_id)
LEFT JOIN campaigns_callingnumber n ON n.workspace_id = ca.workspace_id AND n.number = c.from_number
WHERE c.id = ANY(%s::uuid[]) AND c.status = 'admitted' AND c.carrier_call_id IS NULL AND c.placed_at IS NULL
ORDER BY c.id
FOR UPDATE OF c
""")

# The claim's writes in one statement: `bulk_update` builds a CASE per column and call, whose
# compiling costs more CPU than the dial job's carrier requests.
CLAIM = PreparedStatement("""
UPDATE telephony_call AS c
SET carrier = v.carrier, prompt = v.prompt, placed_at = %s::timestamptz
FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS v(id, carrier, prompt)
WHERE c.id = v.id
""")


# Django's URL resolver builds itself on its first use in every thread that finds it unbuilt: a
# fresh dial worker's placing threads, starting together by the hundred, each built it (7 s of
# CPU for 200 threads here, every call delayed as long). The path, the same for every call of a
# provider, is reversed once per process, one provider at a time; reversing it per call was a
# tenth of a placement's CPU.
_callback_paths = {}
_callback_paths_lock = threading.Lock()


def status_callback_url(provider_name, call_id):
    """Where the carrier reports this call's events; our call id rides along so events find it."""
    path = _callback_paths.get(provider_name)
    if path is None:
        with _callback_paths_lock:
            path = _callback_paths.get(provider_name)
            if path is None:
                path = _callback_paths[provider_name] = reverse("telephony:carrier-status",
                                                                kwargs={"carrier": provider_name})
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}?call={quote_plus(str(call_id))}"


def warm_up(placing_threads=False, job_threads=None):
    """Build what every placement uses once, at worker start (a `worker_init` hook): Django's URL
    resolver (~0.25 s) and each carrier's callback path, the carriers' SDK modules (Twilio's REST
    resources, ~0.2 s) and, for a worker on the thread pool (the dialer), its placing threads. A
    fresh worker's first dial jobs otherwise all waited on them: the first scenario's p99 in
    `bench/carrier.py`. A voice-AI platform's SDK is loaded too when some workspace holds
    credentials for it (its first calls would wait on the import: Vapi's took 10-16 s here); the
    others are not, as every worker would pay those seconds at start for platforms most
    deployments never use. `job_threads` is the worker's own concurrency, which sizes its placing
    pool (else DIALER_CONCURRENCY)."""
    global _job_threads
    _job_threads = job_threads
    for carrier in [*Carrier.values, *sorted(_platforms_to_load())]:
        status_callback_url(carrier, "")
        get_provider(carrier).warm_up()
    if placing_threads:
        start_placing_threads()


def _platforms_to_load():
    try:
        return platforms_with_credentials()
    except DatabaseError:  # the worker starts anyway; a platform's SDK then loads on its first call
        logger.warning("could not read which platforms have credentials; their SDKs load on first use")
        return set()
    finally:
        connection.close()  # opened before the worker forks: no child may share it


@transaction.atomic
def _claim_for_placing(call_ids, now):
    """Mark the calls as being placed, once. Returns those that are ours to place."""
    with connection.cursor() as cursor:
        CLAIMABLE_CALLS.execute(cursor, [[str(call_id) for call_id in call_ids]])
        rows = cursor.fetchall()
    calls, agents = [], {}
    for row in rows:
        call, task, campaign, agent = instances_from_row(row[:-2], Call, Task, Campaign, Agent)
        number_carrier, call.has_predial_check = row[-2:]
        call.task, call.campaign = task, campaign
        if call.agent_id == agent.id:
            call.agent = agent
        calls.append(call)
        # A number that is not the workspace's, or names no carrier, goes out by the deployment's.
        agents[call.id] = (campaign.workspace_id, agent, number_carrier or settings.TELEPHONY_PROVIDER)
    routes = placing_routes(agents)
    for call in calls:
        agent = agents[call.id][1]
        # The agent's runtime picks the provider; the Call keeps its name, so events, the reaper's
        # status check and hang-ups find the same provider again.
        call.carrier = routes[call.id].carrier
        call.placing_extra = routes[call.id].extra
        call.prompt = render_prompt(agent.prompt if agent else "", call.task.context or {})
        # placed_at doubles as the claim: a dial job redelivered after a crash mid-request sees it and
        # places nothing (at most one call per attempt; the reaper settles a call that never took).
        call.placed_at = now
    if calls:
        with connection.cursor() as cursor:
            CLAIM.execute(cursor, [now, [str(call.id) for call in calls], [call.carrier for call in calls],
                                       [call.prompt for call in calls]])
    return calls


def _record_placed(placed):
    if placed:
        with connection.cursor() as cursor:
            RECORD_PLACED.execute(cursor, [[str(call_id) for call_id, _ in placed], [sid for _, sid in placed]])


def _request(call, provider):
    return PlaceCallRequest(
        idempotency_key=str(call.id), to_number=call.to_number, from_number=call.from_number,
        agent_id=call.agent_id, prompt=call.prompt, context=call.task.context or {}, attempt=call.attempt,
        status_callback_url=status_callback_url(provider.name, call.id), extra=call.placing_extra)


def _ask_carrier(call):
    """The carrier's call id, or the exception it answered with. Runs in a placing thread: no ORM."""
    provider = get_provider(call.carrier)
    try:
        return provider.place_call(_request(call, provider))
    except Exception as exc:  # sorted by the caller, in the job's own thread
        return exc


_pool, _pool_pid, _pool_lock = None, None, threading.Lock()
_job_threads = None  # the dial worker's Celery threads, from its `worker_init`


def _placing_pool():
    """The process's placing threads, kept from job to job.

    A pool per job started a thread per call, and each start waits for the new thread to get the
    GIL: under load the last call of a 20-call job went out ~100–270 ms after its first. Sized for
    every dial thread's job at once (the worker's concurrency, else DIALER_CONCURRENCY, ×
    DIAL_PLACING_THREADS); made anew in a forked child, which inherits no threads."""
    global _pool, _pool_pid
    if _pool_pid != os.getpid():
        with _pool_lock:
            if _pool_pid != os.getpid():
                _pool = ThreadPoolExecutor(max_workers=placing_threads(), thread_name_prefix="place-call")
                _pool_pid = os.getpid()
    return _pool


def placing_threads():
    return (_job_threads or settings.DIALER_CONCURRENCY) * settings.DIAL_PLACING_THREADS


def start_placing_threads():
    """Start every placing thread now. The pool starts a thread only when a call finds none idle,
    so a fresh worker's first fill (40 calls at once) waited on 40 thread starts, ~250 ms."""
    count = placing_threads()
    all_started = threading.Barrier(count + 1)
    for _ in range(count):  # each waits for the others, so no submit finds an idle thread
        _placing_pool().submit(all_started.wait, 30)
    try:
        all_started.wait(30)
    except threading.BrokenBarrierError:  # the rest start on demand, as they would have anyway
        logger.warning("only some of the %d placing threads started within 30 s", count)


def _ask_concurrently(calls):
    if len(calls) == 1:
        return [_ask_carrier(calls[0])]
    return list(_placing_pool().map(_ask_carrier, calls))


def place_calls(call_ids) -> None:
    """Place admitted calls with their carriers, all at once. Idempotent by call id; the dial job.

    The carrier requests go out concurrently (placing is I/O: the job lasts about one carrier
    round trip, bounded by CARRIER_TIMEOUT_SECONDS); the database work before and after is done in
    the job's own thread. A call not `admitted`, already carrying a carrier call id, or already
    claimed by an earlier delivery of the job is left alone. The workspace's pre-dial check, when it
    has one, is asked first (`telephony.predial`); a call it refuses is not placed. What the carrier answers:
    - a call id: the call is `dialing`;
    - `CarrierUnavailable` (429, 5xx, timeout, concurrency limit): not an attempt. The Call row is
      deleted and `call_not_placed` sent, in one transaction; the dialer queues the task again;
    - any other refusal (`CallRejected`: an invalid number, another 4xx) or error: the call ends
      `failed` through the event handler, like any terminal event.
    """
    calls = predial.screen(_claim_for_placing(list(call_ids), timezone.now()))
    if not calls:
        return
    answers = _ask_concurrently(calls)
    placed = [(call.id, answer) for call, answer in zip(calls, answers) if isinstance(answer, str)]
    _record_placed(placed)
    for call, answer in zip(calls, answers):
        if isinstance(answer, str):
            continue
        try:
            if isinstance(answer, CarrierUnavailable):
                logger.warning("carrier %s could not take call %s: %s", call.carrier, call.id, answer)
                _not_placed(call.id, str(answer), answer.retry_after)
            else:
                logger.warning("carrier %s refused call %s: %s", call.carrier, call.id, answer)
                finish_now(call.id, CarrierStatus.FAILED, f"carrier refused: {type(answer).__name__}: {answer}"[:500])
        except Exception:  # one call's bookkeeping failure must not strand the others in this job
            logger.exception("settling call %s after the carrier's answer failed", call.id)


def place_call(call_id) -> None:
    """Place one admitted call (see `place_calls`)."""
    place_calls([call_id])


@transaction.atomic
def _not_placed(call_id, reason, retry_after):
    """Undo an attempt the carrier never took: the Call row goes (it was not a call, and nothing may
    count it as one) and the dialer is told, in the same transaction, to queue its task again."""
    call = (Call.objects.select_for_update(of=("self",))
            .filter(id=call_id, status=CallStatus.ADMITTED, carrier_call_id__isnull=True).first())
    if call is None:
        return False  # an event or the reaper settled it meanwhile
    call_not_placed.send(sender=Call, call_id=call.id, task_id=call.task_id, attempt=call.attempt,
                         organisation_id=call.organisation_id, lease_token=call.lease_token,
                         is_callback=call.is_callback, retry_after=retry_after, reason=reason)
    call.delete()
    return True


def check_call_with_carrier(call_id, now=None) -> bool:
    """For the lease reaper: True while the call is live, else settle it and return False.

    A call the carrier says ended gets that terminal event applied, so the attempt finishes (an
    answered call still inside its ANALYSIS_WAIT_SECONDS for the agent's analysis is in wrap-up,
    not live, and is ended by `finalise_overdue_calls`). A call the carrier never heard of, or
    live longer than MAX_CALL_SECONDS, is hung up and ended `failed`.
    """
    now = now or timezone.now()
    call = Call.objects.filter(id=call_id).first()
    if call is None or call.status == CallStatus.ENDED:
        return False
    if call.carrier_ended_at is None:
        if not call.carrier_call_id:
            finish_now(call.id, CarrierStatus.FAILED, "carrier never reported this call", now=now)
            return False
        provider = get_provider(call.carrier)
        event = provider.fetch_status(call.carrier_call_id, call_id=str(call.id))
        if event is None:
            _hang_up_quietly(provider, call.carrier_call_id)
            finish_now(call.id, CarrierStatus.FAILED, "carrier does not know this call", now=now)
            return False
        handle_event(event, now=now)
        if event.kind == EventKind.NOT_PLACED:
            return False  # the platform never placed it after all: the row is gone, the task queued again
        if not event.is_terminal and now - (call.placed_at or call.created_at) > max_call_duration():
            _hang_up_quietly(provider, call.carrier_call_id)
            finish_now(call.id, CarrierStatus.FAILED, "live longer than MAX_CALL_SECONDS", now=now)
            return False
    call.refresh_from_db(fields=["status", "carrier_ended_at"])
    waited_out = call.carrier_ended_at is not None and analysis_overdue(call.carrier_ended_at, now,
                                                                         analysis_wait_seconds())
    if call.status == CallStatus.WRAP_UP and waited_out:
        end_waiting_call(call.id)
        return False
    return call.is_live


def max_call_duration():
    return dt.timedelta(seconds=settings.MAX_CALL_SECONDS)


def _hang_up_quietly(provider, carrier_call_id):
    try:
        provider.hang_up(carrier_call_id)
    except Exception:  # the call is ended on our side regardless; a failed hang-up is only logged
        logger.exception("hang-up of %s at %s failed", carrier_call_id, provider.name)
