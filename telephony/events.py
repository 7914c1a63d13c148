"""Applying carrier and agent events to calls: idempotent, monotonic, and the one place a call ends.

Every event, from a webhook, the simulator or the reaper's status check, goes through
`handle_event`. It stores the raw event, applies what moves the call forward and ignores what
does not (a late `ringing`, a duplicate `completed`): a progress event in one conditional UPDATE,
a terminal event or an analysis under the Call row's lock. A terminal event ends the
call and sends `telephony.signals.call_ended` inside the same transaction, so the dialer's
finish-attempt work commits, or rolls back, together with the call's end. An answered call whose
outcome waits for the agent's analysis goes to wrap-up instead: its line is free, so
`telephony.signals.call_line_freed` gives its slot back at once, and the analysis (or
ANALYSIS_WAIT_SECONDS) ends it.
"""
import datetime as dt
import logging
import uuid
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.rows import instances_from_row, save_fields, select_list
from config.prepared import PreparedStatement
from telephony import webhooks_out
from telephony.models import Call, CallEvent, CallStatus
from telephony.rules import (
    STATUS_AFTER_EVENT, EventKind, NormalizedEvent, analysis_overdue, merge_outcome, needs_analysis, status_after,
)
from telephony.signals import call_ended, call_line_freed, call_not_placed

logger = logging.getLogger(__name__)


def analysis_wait_seconds():
    return settings.ANALYSIS_WAIT_SECONDS


# The call FOR UPDATE with its workspace's webhook URL (plain SQL: compiling the ORM's
# three-table select cost four times the query). The workspace itself is loaded only when the
# call ends and there is a URL to send call.ended to.
LOCKED_CALL_SQL = f"""
SELECT {select_list(Call, "c")}, w.webhook_url
FROM telephony_call c
JOIN campaigns_campaign ca ON ca.id = c.campaign_id
JOIN campaigns_workspace w ON w.id = ca.workspace_id
WHERE {{lookup}}
FOR UPDATE OF c
"""
LOCKED_CALL_BY_ID = PreparedStatement(LOCKED_CALL_SQL.format(lookup="c.id = %s::uuid"))
LOCKED_CALL_BY_CARRIER_ID = PreparedStatement(LOCKED_CALL_SQL.format(lookup="c.carrier = %s AND c.carrier_call_id = %s"))


def _locked_call(event):
    call_id = _uuid_or_none(event.call_id)
    with connection.cursor() as cursor:
        if call_id is not None:
            LOCKED_CALL_BY_ID.execute(cursor, [str(call_id)])
        elif event.carrier_call_id:
            LOCKED_CALL_BY_CARRIER_ID.execute(cursor, [event.carrier, event.carrier_call_id])
        else:
            return None
        row = cursor.fetchone()
    if row is None:
        return None
    [call] = instances_from_row(row[:-1], Call)
    call.workspace_webhook_url = row[-1]
    return call


def handle_event(event: NormalizedEvent, now=None) -> bool:
    """Apply one event to its call; returns whether it changed anything. Safe to call twice.

    Runs in the caller's process (web worker, simulator, reaper), in its own transaction.
    """
    now = now or timezone.now()
    if event.kind in STATUS_AFTER_EVENT:
        return _advance_in_one_statement(event, now)
    return _apply_under_lock(event, now)[0]


def handle_analysis(event: NormalizedEvent, now=None):
    """`handle_event` for the agent's analysis: (applied, the call's status, its outcome) as this
    transaction committed them, or (False, None, None) when the call is gone."""
    applied, call = _apply_under_lock(event, now or timezone.now())
    return (applied, call.status, call.outcome) if call is not None else (False, None, None)


def _apply_under_lock(event, now):
    """(applied, the call as committed, or None when the event is about no call we keep)."""
    with transaction.atomic():
        call = found = _locked_call(event)
        if event.kind == EventKind.NOT_PLACED:
            applied = call is not None and _withdraw(call, event)
            call = None if applied else call  # the row is gone; the event is kept, unlinked, for audit
        else:
            applied = _apply(call, event, now) if call is not None else False
        with connection.cursor() as cursor:
            INSERT_EVENT.execute(cursor, [call and str(call.id), event.carrier, event.carrier_call_id or "",
                                              str(event.kind), _audit_payload_for_db(event), applied, timezone.now()])
    if found is None:
        logger.warning("telephony event for unknown call: %s %s %s", event.carrier, event.carrier_call_id, event.call_id)
    return applied, call


def _withdraw(call, event):
    """A platform reports it never placed a call we recorded as placed (its concurrency limit, after
    it accepted the request): like a carrier that refused at once, this was not an attempt. The row
    goes and the dialer queues the task again, in this transaction. Too late once anyone answered."""
    if call.status not in (CallStatus.ADMITTED, CallStatus.DIALING, CallStatus.RINGING) or call.answered_at:
        return False
    call_not_placed.send(sender=Call, call_id=call.id, task_id=call.task_id, attempt=call.attempt,
                         organisation_id=call.organisation_id, lease_token=call.lease_token,
                         is_callback=call.is_callback, retry_after=None,
                         reason=str(event.raw.get("reason") or event.carrier_status or "not placed"))
    call.delete()
    return True


# Webhooks are the hot path of the web tier: its writes are plain statements, not the ORM's
# compiled ones (compiling costs more CPU than the database spends running them).
INSERT_EVENT = PreparedStatement("""
INSERT INTO telephony_callevent (call_id, carrier, carrier_call_id, kind, payload, applied, received_at)
VALUES (%s::uuid, %s, %s, %s, %s, %s, %s::timestamptz)
""")

# The progress columns an event's target status stamps, when still empty.
PROGRESS_STAMPS = {CallStatus.DIALING: "placed_at", CallStatus.RINGING: "ringing_at", CallStatus.ANSWERED: "answered_at"}

# A progress event (initiated, ringing, answered, machine detected) in one statement, without a
# transaction or a model load: it links the carrier's id if the call has none yet, takes the
# answering-machine result, and moves the status forward from the statuses `status_after` lets
# move (stamping the target's progress column if empty), then stores the event for audit with
# `applied` = whether the UPDATE matched. The UPDATE's WHERE is exactly "something changes": it
# is re-evaluated on the row's newest version when a concurrent event held the row, so two
# events for one call serialise as they do under a row lock.
ADVANCE_SQL = """
WITH target AS (
    SELECT id FROM telephony_call WHERE {lookup}
), changed AS (
    UPDATE telephony_call AS c
    SET carrier_call_id = CASE WHEN c.carrier_call_id IS NULL AND c.carrier = %(carrier)s AND %(sid)s <> ''
                               THEN %(sid)s ELSE c.carrier_call_id END,
        answered_by = CASE WHEN c.status <> 'ended' AND %(answered_by)s <> '' THEN %(answered_by)s
                           ELSE c.answered_by END,
        status = CASE WHEN c.status = ANY(%(movable)s) AND c.carrier_ended_at IS NULL THEN %(target)s
                      ELSE c.status END,
        {stamp} = CASE WHEN c.status = ANY(%(movable)s) AND c.carrier_ended_at IS NULL
                       THEN COALESCE(c.{stamp}, %(occurred)s) ELSE c.{stamp} END
    WHERE c.id = (SELECT id FROM target)
      AND ((c.carrier_call_id IS NULL AND c.carrier = %(carrier)s AND %(sid)s <> '')
           OR (c.status <> 'ended' AND %(answered_by)s <> '' AND c.answered_by <> %(answered_by)s)
           OR (c.status = ANY(%(movable)s) AND c.carrier_ended_at IS NULL
               AND (c.status <> %(target)s OR c.{stamp} IS NULL)))
    RETURNING c.id
)
INSERT INTO telephony_callevent (call_id, carrier, carrier_call_id, kind, payload, applied, received_at)
SELECT (SELECT id FROM target), %(carrier)s::varchar, %(sid)s::varchar, %(kind)s::varchar, %(payload)s::jsonb,
       EXISTS (SELECT 1 FROM changed), %(received_at)s::timestamptz
RETURNING call_id, applied
"""
LOOKUP_BY_ID = "id = %(call_id)s::uuid"
LOOKUP_BY_CARRIER_ID = "carrier = %(carrier)s AND carrier_call_id = %(sid)s AND %(sid)s <> ''"
ADVANCE = {(lookup, target): PreparedStatement(ADVANCE_SQL.format(lookup=lookup, stamp=stamp))
           for lookup in (LOOKUP_BY_ID, LOOKUP_BY_CARRIER_ID) for target, stamp in PROGRESS_STAMPS.items()}


def _advance_in_one_statement(event, now):
    target = STATUS_AFTER_EVENT[event.kind]
    call_id = _uuid_or_none(event.call_id)
    lookup = LOOKUP_BY_ID if call_id is not None else LOOKUP_BY_CARRIER_ID
    with connection.cursor() as cursor:
        ADVANCE[lookup, target].execute(cursor, {
            "call_id": call_id and str(call_id), "carrier": event.carrier, "sid": event.carrier_call_id or "",
            "answered_by": event.answered_by or "", "target": str(target), "kind": str(event.kind),
            "movable": [str(status) for status in CallStatus if status_after(status, event.kind) is not None],
            "occurred": event.occurred_at or now, "payload": _audit_payload_for_db(event),
            "received_at": timezone.now()})
        found, applied = cursor.fetchone()
    if found is None:
        logger.warning("telephony event for unknown call: %s %s %s", event.carrier, event.carrier_call_id, event.call_id)
    return applied


def _uuid_or_none(value):
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _audit_payload_for_db(event):
    payload = dict(event.raw)
    if event.call_id and "call_id" not in payload:
        payload["call_id"] = str(event.call_id)
    return CallEvent._meta.get_field("payload").get_db_prep_value(payload, connection)


def _apply(call, event, now):
    changed = set()
    if event.carrier_call_id and not call.carrier_call_id and call.carrier == event.carrier:
        # The event overtook the dial job's bookkeeping: link it now.
        call.carrier_call_id = event.carrier_call_id
        changed.add("carrier_call_id")

    if call.status == CallStatus.ENDED:
        if event.kind == EventKind.ANALYSIS:
            changed |= _store_analysis(call, event, now, outcome_final=True)
        save_fields(call, changed)
        return bool(changed)

    occurred = event.occurred_at or now
    if event.kind == EventKind.ANALYSIS:
        changed |= _store_analysis(call, event, now, outcome_final=False)
        if call.carrier_ended_at is not None:
            _end(call, changed)
            return True
    else:
        changed |= _apply_terminal(call, event, occurred, now)
        if call.status == CallStatus.ENDED:
            return True  # `_end` saved the call: a second UPDATE of the same fields would change nothing
    save_fields(call, changed)
    return bool(changed)


def _apply_terminal(call, event, occurred, now):
    if call.carrier_ended_at is not None:
        return set()  # a duplicate completed while we wait for the analysis
    changed = {"carrier_status", "carrier_ended_at"}
    call.carrier_status = event.carrier_status
    call.carrier_ended_at = occurred
    if event.answered_by:
        call.answered_by = event.answered_by
        changed.add("answered_by")
    if event.duration_seconds is not None:
        call.duration_seconds = event.duration_seconds
        changed.add("duration_seconds")
    cost = _decimal(event.cost)
    if cost is not None:
        call.cost = cost
        changed.add("cost")
    if event.recording_url and not call.recording_url:
        call.recording_url = event.recording_url
        changed.add("recording_url")
    answered = call.answered_at is not None
    waiting = (needs_analysis(call.carrier_status, answered, call.answered_by)
               and call.analysis_received_at is None
               and not analysis_overdue(occurred, now, analysis_wait_seconds()))
    if waiting:
        call.status = CallStatus.WRAP_UP
        changed.add("status")
        if call.answered_at is None:
            call.answered_at = occurred
            changed.add("answered_at")
        call_line_freed.send(sender=Call, call_id=call.id, organisation_id=call.organisation_id,
                             lease_token=call.lease_token)
        return changed
    _end(call, changed)
    return changed


def _decimal(value):
    if value in (None, ""):
        return None
    try:
        # Carriers report charges as negative amounts ("-0.0130"); we store what the call cost.
        return abs(Decimal(str(value)))
    except InvalidOperation:
        return None


def _store_analysis(call, event, now, outcome_final):
    """Keep the agent's result; after the call ended only transcript and recording may still fill in."""
    analysis = event.analysis or {}
    changed = set()
    if event.recording_url and not call.recording_url:
        call.recording_url = event.recording_url
        changed.add("recording_url")
    transcript = analysis.get("transcript") or ""
    if transcript and not call.transcript:
        call.transcript = transcript
        changed.add("transcript")
    if call.analysis_received_at is None:
        call.analysis_received_at = now
        call.analysis = {key: value for key, value in analysis.items() if key != "transcript"}
        changed |= {"analysis_received_at", "analysis"}
        if not outcome_final and analysis.get("callback_at"):
            call.callback_at = dt.datetime.fromisoformat(analysis["callback_at"])
            changed.add("callback_at")
    return changed


def _end(call, changed):
    """End the call with its merged outcome and tell the dialer, inside the caller's transaction."""
    slot_freed = call.status == CallStatus.WRAP_UP  # its lease was released when the line came free
    outcome, callback_at = merge_outcome(
        call.carrier_status, call.answered_at is not None, call.answered_by,
        (call.analysis or {}).get("outcome", ""), call.callback_at)
    call.status = CallStatus.ENDED
    call.outcome = outcome
    call.callback_at = callback_at
    call.ended_at = call.carrier_ended_at
    if call.duration_seconds is None and call.answered_at is not None:
        call.duration_seconds = max(0, int((call.ended_at - call.answered_at).total_seconds()))
        changed.add("duration_seconds")
    changed |= {"status", "outcome", "callback_at", "ended_at"}
    save_fields(call, changed)
    call_ended.send(sender=Call, call_id=call.id, outcome=outcome, ended_at=call.ended_at, callback_at=callback_at,
                    task_id=call.task_id, attempt=call.attempt,
                    lease_token=None if slot_freed else call.lease_token, organisation_id=call.organisation_id,
                    slot_freed=slot_freed, to_number=call.to_number)
    if getattr(call, "workspace_webhook_url", None) != "":  # known empty for a call `_locked_call` read
        webhooks_out.enqueue_call_ended(call)


def finalise_overdue_calls(now=None, limit=500) -> int:
    """End calls in wrap-up whose analysis never came within ANALYSIS_WAIT_SECONDS, as `connected`.

    Run periodically (beat task `telephony.finalise_overdue_calls`); returns how many it ended.
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=analysis_wait_seconds())
    ended = 0
    while ended < limit:
        with transaction.atomic():
            # SKIP LOCKED: a call whose analysis is being applied right now is not ours to end.
            call = (Call.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("campaign__workspace").filter(status=CallStatus.WRAP_UP, carrier_ended_at__lte=cutoff)
                    .order_by("carrier_ended_at").first())
            if call is None:
                break
            _end(call, set())
        ended += 1
    return ended


def end_waiting_call(call_id) -> bool:
    """End a call the carrier already completed without waiting any longer for its analysis."""
    with transaction.atomic():
        call = (Call.objects.select_for_update(of=("self",)).select_related("campaign__workspace")
                .filter(id=call_id, status=CallStatus.WRAP_UP).first())
        if call is None:
            return False
        _end(call, set())
    return True


def finish_now(call_id, carrier_status, reason, now=None) -> bool:
    """End a live call at once with a carrier status we decided (refused, lost, overran). Idempotent."""
    call = Call.objects.filter(id=call_id).values("carrier", "carrier_call_id").first()
    if call is None:
        return False
    return handle_event(NormalizedEvent(
        carrier=call["carrier"], kind=EventKind.COMPLETED, carrier_call_id=call["carrier_call_id"] or "",
        call_id=str(call_id), carrier_status=carrier_status, occurred_at=now,
        raw={"source": "dialer", "reason": reason}), now=now)
