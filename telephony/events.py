"""Applying carrier and agent events to calls: idempotent, monotonic, and the one place a call ends.

Every event, from a webhook, the simulator or the reaper's status check, goes through
`handle_event`. It locks the Call row, stores the raw event, applies what moves the call forward
and ignores what does not (a late `ringing`, a duplicate `completed`). A terminal event ends the
call and sends `telephony.signals.call_ended` inside the same transaction, so the dialer's
finish-attempt work commits, or rolls back, together with the call's end.
"""
import datetime as dt
import logging
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from telephony import webhooks_out
from telephony.models import Call, CallEvent, CallStatus
from telephony.rules import (
    EventKind, NormalizedEvent, analysis_overdue, merge_outcome, needs_analysis, status_after,
)
from telephony.signals import call_ended, call_not_placed

logger = logging.getLogger(__name__)


def analysis_wait_seconds():
    return settings.ANALYSIS_WAIT_SECONDS


def _locked_call(event):
    # Only the call row is locked; the workspace rides along for the call.ended webhook.
    calls = Call.objects.select_for_update(of=("self",)).select_related("campaign__workspace")
    if event.call_id:
        return calls.filter(id=event.call_id).first()
    if event.carrier_call_id:
        return calls.filter(carrier=event.carrier, carrier_call_id=event.carrier_call_id).first()
    return None


def handle_event(event: NormalizedEvent, now=None) -> bool:
    """Apply one event to its call; returns whether it changed anything. Safe to call twice.

    Runs in the caller's process (web worker, simulator, reaper), in its own transaction.
    """
    now = now or timezone.now()
    with transaction.atomic():
        call = found = _locked_call(event)
        if event.kind == EventKind.NOT_PLACED:
            applied = call is not None and _withdraw(call, event)
            call = None if applied else call  # the row is gone; the event is kept, unlinked, for audit
        else:
            applied = _apply(call, event, now) if call is not None else False
        CallEvent.objects.create(
            call=call, carrier=event.carrier, carrier_call_id=event.carrier_call_id or "",
            kind=event.kind, payload=_audit_payload(event), applied=applied)
    if found is None:
        logger.warning("telephony event for unknown call: %s %s %s", event.carrier, event.carrier_call_id, event.call_id)
    return applied


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


def _audit_payload(event):
    payload = dict(event.raw)
    if event.call_id and "call_id" not in payload:
        payload["call_id"] = str(event.call_id)
    return payload


def _apply(call, event, now):
    changed = set()
    if event.carrier_call_id and not call.carrier_call_id and call.carrier == event.carrier:
        # The event overtook the dial job's bookkeeping: link it now.
        call.carrier_call_id = event.carrier_call_id
        changed.add("carrier_call_id")

    if call.status == CallStatus.ENDED:
        if event.kind == EventKind.ANALYSIS:
            changed |= _store_analysis(call, event, now, outcome_final=True)
        _save(call, changed)
        return bool(changed)

    occurred = event.occurred_at or now
    if event.kind == EventKind.ANALYSIS:
        changed |= _store_analysis(call, event, now, outcome_final=False)
        if call.carrier_ended_at is not None:
            _end(call, changed)
            return True
    elif event.kind == EventKind.COMPLETED:
        changed |= _apply_terminal(call, event, occurred, now)
        if call.status == CallStatus.ENDED:
            return True  # `_end` saved the call: a second UPDATE of the same fields would change nothing
    else:
        changed |= _advance(call, event, occurred)
    _save(call, changed)
    return bool(changed)


def _save(call, changed):
    if changed:
        call.save(update_fields=sorted(changed))


def _advance(call, event, occurred):
    changed = set()
    if event.answered_by and event.answered_by != call.answered_by:
        call.answered_by = event.answered_by
        changed.add("answered_by")
    target = status_after(call.status, event.kind)
    if target is None or call.carrier_ended_at is not None:
        return changed
    if target != call.status:
        call.status = target
        changed.add("status")
    if target == CallStatus.DIALING and call.placed_at is None:
        call.placed_at = occurred
        changed.add("placed_at")
    if target == CallStatus.RINGING and call.ringing_at is None:
        call.ringing_at = occurred
        changed.add("ringing_at")
    if target == CallStatus.ANSWERED and call.answered_at is None:
        call.answered_at = occurred
        changed.add("answered_at")
    return changed


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
        if call.status != CallStatus.ANSWERED:
            call.status = CallStatus.ANSWERED
            changed.add("status")
            if call.answered_at is None:
                call.answered_at = occurred
                changed.add("answered_at")
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
    _save(call, changed)
    call_ended.send(sender=Call, call_id=call.id, outcome=outcome, ended_at=call.ended_at, callback_at=callback_at)
    webhooks_out.enqueue_call_ended(call)


def finalise_overdue_calls(now=None, limit=500) -> int:
    """End answered calls whose analysis never came within ANALYSIS_WAIT_SECONDS, as `connected`.

    Run periodically (beat task `telephony.finalise_overdue_calls`); returns how many it ended.
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=analysis_wait_seconds())
    ended = 0
    while ended < limit:
        with transaction.atomic():
            # SKIP LOCKED: a call whose analysis is being applied right now is not ours to end.
            call = (Call.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("campaign__workspace").filter(status=CallStatus.ANSWERED, carrier_ended_at__lte=cutoff)
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
                .filter(id=call_id, status=CallStatus.ANSWERED, carrier_ended_at__isnull=False).first())
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
