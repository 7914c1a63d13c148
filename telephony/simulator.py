"""The simulated carrier: the default provider for development, demos, tests and benchmarks.

No worker waits on a call. Placing a call writes its whole future as due events into Redis
(`sim:due`, a sorted set scored by due time in ms; payloads in `sim:events`); `process_due_events`
pops what is due, atomically (a Lua script, so two processes never take the same event), and
feeds each through `telephony.events.handle_event`, exactly as a carrier webhook would.

What happens on a call comes from the task's context when it scripts it, `_sim` (a list with one
entry per attempt, or a JSON string of that list):
    {"outcome": "callback", "ring_ms": 800, "talk_ms": 2000, "callback_in_ms": 60000, "plan": "gold"}
Unknown keys become custom analysis fields. Otherwise the outcome is drawn from
SIMULATED_OUTCOME_MIX and durations at random. All durations are multiplied by
SIMULATED_TIME_SCALE (0.1 = ten times faster than real time).
"""
import datetime as dt
import json
import logging
import math
import random
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from redis.exceptions import RedisError

from campaigns.vocabulary import Outcome
from config.redis_client import get_redis
from config.redis_scripts import ScriptSet
from telephony import keys
from telephony.events import handle_event
from telephony.providers.base import CarrierRefused, PlaceCallRequest, Provider
from telephony.rules import CarrierStatus, EventKind, NormalizedEvent

logger = logging.getLogger(__name__)

NAME = "simulated"
DUE_KEY, EVENTS_KEY = keys.SIMULATOR_DUE, keys.SIMULATOR_EVENTS
CALL_KEY_PREFIX, IDEMPOTENCY_KEY_PREFIX = keys.SIMULATOR_CALL_PREFIX, keys.SIMULATOR_IDEMPOTENCY_PREFIX
# Simulated calls are forgotten this long after their last event (like a carrier's call log).
RETENTION_SECONDS = 2 * 86400

DEFAULT_OUTCOME_MIX = {
    "connected": 35, "no-answer": 25, "voicemail": 12, "busy": 8, "callback": 8,
    "failed": 4, "silent": 4, "opt-out": 4,
}
SCRIPT_KEYS = {"outcome", "ring_ms", "talk_ms", "callback_in_ms"}
NOT_ANSWERED = {Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED}
COST_PER_MINUTE = "0.0140"

_scripts = ScriptSet(Path(__file__).parent / "lua", ("pop_due_events",))


def call_key(carrier_call_id):
    return f"{CALL_KEY_PREFIX}{carrier_call_id}"


def idempotency_key(key):
    return f"{IDEMPOTENCY_KEY_PREFIX}{key}"


def redis_now_ms(client):
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def script_for_attempt(context, attempt):
    """The `_sim` entry for this attempt (1-based), or None when the context does not script it.

    >>> script_for_attempt({"_sim": '[{"outcome": "busy"}, {"outcome": "connected"}]'}, 2)
    {'outcome': 'connected'}
    """
    script = context.get("_sim")
    if isinstance(script, str):
        try:
            script = json.loads(script) if script.strip() else None
        except ValueError:
            return None
    if isinstance(script, dict):
        script = [script]
    if not isinstance(script, list) or not 1 <= attempt <= len(script) or not isinstance(script[attempt - 1], dict):
        return None
    return script[attempt - 1]


def draw_script(rng, mix):
    """A random script entry from an outcome mix ({outcome: weight}) with plausible durations (ms)."""
    outcomes, weights = zip(*mix.items())
    outcome = rng.choices(outcomes, weights=weights)[0]
    entry = {"outcome": outcome, "ring_ms": rng.randint(2_000, 12_000), "talk_ms": rng.randint(15_000, 180_000)}
    if outcome == Outcome.NO_ANSWER:
        entry["ring_ms"] = rng.randint(20_000, 30_000)
    if outcome == Outcome.CALLBACK:
        entry["callback_in_ms"] = rng.randint(30 * 60_000, 4 * 3_600_000)
    return entry


def plan_events(entry, carrier_call_id, call_id, placed_ms, scale, context):
    """The call's future as (due_ms, event dict) pairs. Pure: same entry and times, same events.

    >>> [str(e["kind"]) for _, e in plan_events({"outcome": "no-answer", "ring_ms": 800}, "S1", "c", 0, 1.0, {})]
    ['ringing', 'completed']
    """
    outcome = str(entry.get("outcome") or Outcome.CONNECTED)
    ring_ms = max(1, round(int(entry.get("ring_ms", 3_000)) * scale))
    talk_ms = max(1, round(int(entry.get("talk_ms", 20_000)) * scale))
    base = {"carrier_call_id": carrier_call_id, "call_id": call_id}

    def event(offset, kind, sim_status, **fields):
        return placed_ms + offset, {**base, "kind": kind, "sim_status": sim_status, "at_ms": placed_ms + offset, **fields}

    if outcome == Outcome.FAILED:
        return [event(ring_ms, EventKind.COMPLETED, "ended", carrier_status=CarrierStatus.FAILED, duration=0)]
    if outcome == Outcome.BUSY:
        return [event(ring_ms, EventKind.COMPLETED, "ended", carrier_status=CarrierStatus.BUSY, duration=0)]
    ringing = event(min(500, ring_ms // 2), EventKind.RINGING, "ringing")
    if outcome == Outcome.NO_ANSWER:
        return [ringing, event(ring_ms, EventKind.COMPLETED, "ended", carrier_status=CarrierStatus.NO_ANSWER,
                               duration=0)]
    duration = math.ceil(talk_ms / 1000)
    recording_url = f"https://recordings.simulated.invalid/{carrier_call_id}.wav"
    completed = event(ring_ms + talk_ms + 1, EventKind.COMPLETED, "ended", carrier_status=CarrierStatus.COMPLETED,
                      duration=duration, cost=_cost(duration), recording_url=recording_url,
                      answered_by="machine_end_beep" if outcome == Outcome.VOICEMAIL else "human")
    answered = event(ring_ms, EventKind.ANSWERED, "answered")
    if outcome == Outcome.VOICEMAIL:
        detected = event(ring_ms + min(2_000, talk_ms // 2), EventKind.MACHINE_DETECTED, "answered",
                         answered_by="machine_end_beep")
        return [ringing, answered, detected, completed]
    # The agent posts its analysis as it hangs up, just before the carrier's completed event.
    analysis = {"outcome": outcome, "summary": _summary(outcome), "transcript": _transcript(outcome, context),
                "fields": {k: v for k, v in entry.items() if k not in SCRIPT_KEYS}}
    if outcome == Outcome.CALLBACK:
        callback_ms = placed_ms + ring_ms + talk_ms + round(int(entry.get("callback_in_ms", 3_600_000)) * scale)
        analysis["callback_at"] = _iso(callback_ms)
    return [ringing, answered,
            event(ring_ms + talk_ms, EventKind.ANALYSIS, "answered", analysis=analysis, recording_url=recording_url),
            completed]


def _cost(duration_seconds):
    minutes = max(1, math.ceil(duration_seconds / 60))
    return f"{float(COST_PER_MINUTE) * minutes:.4f}"


def _iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


def _summary(outcome):
    return {
        Outcome.CONNECTED: "Spoke with the contact; the conversation completed.",
        Outcome.CALLBACK: "The contact asked to be called back later.",
        Outcome.SILENT: "The line was answered but nobody spoke.",
        Outcome.OPT_OUT: "The contact asked not to be called again.",
    }.get(outcome, f"Call ended with outcome {outcome}.")


def _transcript(outcome, context):
    name = context.get("name") or "there"
    lines = [f"Agent: Hello {name}, this is a call from our team.", ]
    lines.append({
        Outcome.CALLBACK: "Contact: I'm busy right now, please call me back later.",
        Outcome.SILENT: "Contact: ...",
        Outcome.OPT_OUT: "Contact: Please remove me from your list.",
    }.get(outcome, "Contact: Sure, go ahead."))
    lines.append("Agent: Thank you, goodbye.")
    return "\n".join(lines)


def _event_from_json(payload):
    data = json.loads(payload)
    return NormalizedEvent(
        carrier=NAME, kind=EventKind(data["kind"]), carrier_call_id=data["carrier_call_id"],
        call_id=data.get("call_id"), carrier_status=data.get("carrier_status", ""),
        occurred_at=dt.datetime.fromtimestamp(data["at_ms"] / 1000, tz=dt.UTC),
        duration_seconds=data.get("duration"), cost=data.get("cost"), answered_by=data.get("answered_by", ""),
        recording_url=data.get("recording_url", ""), analysis=data.get("analysis"), raw=data)


class SimulatedProvider(Provider):
    name = NAME

    def __init__(self, redis_client=None, rng=None):
        self._redis = redis_client
        self.rng = rng or random.Random()

    @property
    def redis(self):
        return self._redis or get_redis()

    def place_call(self, request: PlaceCallRequest) -> str:
        client = self.redis
        carrier_call_id = f"SIM{uuid.uuid4().hex}"
        # SET NX on our call id: a repeated request returns the call already placed.
        if not client.set(idempotency_key(request.idempotency_key), carrier_call_id, nx=True, ex=RETENTION_SECONDS):
            return client.get(idempotency_key(request.idempotency_key))
        entry = script_for_attempt(request.context, request.attempt)
        if entry is None:
            entry = draw_script(self.rng, getattr(settings, "SIMULATED_OUTCOME_MIX", DEFAULT_OUTCOME_MIX))
        if entry.get("outcome") == "refuse":
            client.delete(idempotency_key(request.idempotency_key))
            raise CarrierRefused("simulated refusal (scripted)")
        placed_ms = redis_now_ms(client)
        scale = getattr(settings, "SIMULATED_TIME_SCALE", 1.0)
        events = plan_events(entry, carrier_call_id, request.idempotency_key, placed_ms, scale, request.context)
        event_ids = [f"{carrier_call_id}:{n}" for n in range(len(events))]
        last_due = max(due for due, _ in events)
        initiated = {"carrier_call_id": carrier_call_id, "call_id": request.idempotency_key, "kind": "initiated",
                     "sim_status": "dialing", "at_ms": placed_ms}
        pipe = client.pipeline(transaction=True)
        pipe.hset(call_key(carrier_call_id), mapping={
            "call_id": request.idempotency_key, "status": "dialing", "events": " ".join(event_ids),
            "last": json.dumps(initiated), "to": request.to_number, "from": request.from_number})
        pipe.expire(call_key(carrier_call_id), RETENTION_SECONDS + (last_due - placed_ms) // 1000)
        pipe.hset(EVENTS_KEY, mapping={eid: json.dumps(event) for eid, (_, event) in zip(event_ids, events)})
        pipe.zadd(DUE_KEY, {eid: due for eid, (due, _) in zip(event_ids, events)})
        pipe.execute()
        return carrier_call_id

    def fetch_status(self, carrier_call_id, call_id=None):
        last = self.redis.hget(call_key(carrier_call_id), "last")
        if not last:
            return None
        data = json.loads(last)
        if data["kind"] == EventKind.ANALYSIS:
            # The agent's analysis is not carrier state: the call is still answered.
            data = {**data, "kind": EventKind.ANSWERED, "analysis": None}
        return _event_from_json(json.dumps(data))

    def hang_up(self, carrier_call_id):
        client = self.redis
        state = client.hgetall(call_key(carrier_call_id))
        if not state or state.get("status") == "ended":
            return
        event_ids = state.get("events", "").split()
        now_ms = redis_now_ms(client)
        answered = state.get("status") == "answered"
        event_id = f"{carrier_call_id}:hangup"
        event = {"carrier_call_id": carrier_call_id, "call_id": state.get("call_id"), "kind": "completed",
                 "sim_status": "ended", "at_ms": now_ms,
                 "carrier_status": CarrierStatus.COMPLETED if answered else CarrierStatus.CANCELED, "duration": 0}
        pipe = client.pipeline(transaction=True)
        if event_ids:
            pipe.zrem(DUE_KEY, *event_ids)
            pipe.hdel(EVENTS_KEY, *event_ids)
        pipe.hset(EVENTS_KEY, event_id, json.dumps(event))
        pipe.zadd(DUE_KEY, {event_id: now_ms})
        pipe.execute()

    def verify_webhook(self, request):
        # The simulator delivers in-process through process_due_events; it never calls our webhooks.
        return False

    def parse_webhook(self, request):
        return []

    def pending_events(self):
        return self.redis.zcard(DUE_KEY)


def pop_due_events(now_ms=None, limit=500, redis_client=None):
    """Atomically take up to `limit` due events (JSON strings) off the simulator's schedule."""
    client = redis_client or get_redis()
    now_ms = redis_now_ms(client) if now_ms is None else now_ms
    return _scripts.run(client, "pop_due_events", [DUE_KEY, EVENTS_KEY], [now_ms, limit, CALL_KEY_PREFIX])


def process_due_events(now_ms=None, limit=500, per_transaction=50) -> int:
    """Apply every simulator event due at `now_ms` (Redis time by default), up to `limit`; returns the count.

    Events are applied `per_transaction` to a database transaction, each in its own savepoint:
    one commit per event would make the commit's fsync, not the work, the simulator's limit.
    Events are popped before they are applied: an event whose application fails is logged and
    dropped, and the lease reaper's status check later settles its call from the simulator's state.
    """
    payloads = pop_due_events(now_ms, limit)
    applied = 0
    for start in range(0, len(payloads), per_transaction):
        with transaction.atomic():
            for payload in payloads[start:start + per_transaction]:
                try:
                    handle_event(_event_from_json(payload))
                except Exception:  # one bad event must not stall every other call's events
                    logger.exception("simulated event could not be applied: %s", payload)
                    continue
                applied += 1
    return applied


def run_forever(idle_sleep=0.01, limit=500, stop=lambda: False, until_idle=False):
    """Loop process_due_events, sleeping briefly only when nothing was due. Used by `run_simulator`.

    `until_idle` returns as soon as nothing is due (demos, scripts); otherwise runs until `stop()`.
    """
    while not stop():
        # A PostgreSQL restart leaves this long-lived process holding a dead connection. (Not
        # inside a transaction, where a caller such as a test owns the connection.)
        if not connection.in_atomic_block:
            close_old_connections()
        try:
            applied = process_due_events(limit=limit)
        except (DatabaseError, RedisError):
            logger.exception("simulator loop: storage unavailable, retrying")
            connections.close_all()
            time.sleep(1)
            continue
        if applied == 0:
            if until_idle:
                return
            time.sleep(idle_sleep)
