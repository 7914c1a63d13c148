"""Placing calls (the dial job's one call into telephony) and checking them for the lease reaper."""
import datetime as dt
import logging
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from telephony.events import analysis_wait_seconds, end_waiting_call, finish_now, handle_event
from telephony.models import Call, CallStatus
from telephony import cps
from telephony.registry import calling_number_settings, get_provider
from campaigns.prompts import render_prompt
from telephony.rules import CarrierStatus, analysis_overdue
from telephony.providers.base import PlaceCallRequest

logger = logging.getLogger(__name__)


def status_callback_url(provider_name, call_id):
    """Where the carrier reports this call's events; our call id rides along so events find it."""
    path = reverse("telephony:carrier-status", kwargs={"carrier": provider_name})
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}?{urlencode({'call': str(call_id)})}"


@transaction.atomic
def _claim_for_placing(call_id, now):
    """Mark the call as being placed, once. None when it is not ours to place (any more)."""
    call = (Call.objects.select_for_update(of=("self",)).select_related("task", "campaign", "agent")
            .filter(id=call_id).first())
    if call is None or call.status != CallStatus.ADMITTED or call.carrier_call_id or call.placed_at:
        return None
    agent = call.agent or call.task.agent or call.campaign.agent
    call.carrier, call.calls_per_second = calling_number_settings(call.campaign.workspace_id, call.from_number)
    call.prompt = render_prompt(agent.prompt if agent else "", call.task.context or {})
    # placed_at doubles as the claim: a dial job redelivered after a crash mid-request sees it and
    # places nothing (at most one call per attempt; the reaper settles a call that never took).
    call.placed_at = now
    call.save(update_fields=["carrier", "prompt", "placed_at"])
    return call


@transaction.atomic
def _record_placed(call_id, carrier_call_id):
    # Conditional updates: an event that overtook us may already have linked the id or moved on.
    Call.objects.filter(id=call_id, carrier_call_id__isnull=True).update(carrier_call_id=carrier_call_id)
    Call.objects.filter(id=call_id, status=CallStatus.ADMITTED).update(status=CallStatus.DIALING)


def place_call(call_id) -> None:
    """Place an admitted call with its carrier. Idempotent by call id; runs in the dial job.

    A call not `admitted`, already carrying a carrier call id, or already claimed by an earlier
    delivery of the job is left alone. A carrier refusal ends the call as `failed` through the
    event handler, like any terminal event.
    """
    call = _claim_for_placing(call_id, timezone.now())
    if call is None:
        return
    if not cps.wait_for_turn(call.from_number, call.calls_per_second):
        finish_now(call.id, CarrierStatus.FAILED, f"no calls-per-second turn for {call.from_number} "
                                                  f"within {cps.MAX_WAIT_SECONDS} s")
        return
    provider = get_provider(call.carrier)
    request = PlaceCallRequest(
        idempotency_key=str(call.id), to_number=call.to_number, from_number=call.from_number,
        agent_id=call.agent_id, prompt=call.prompt, context=call.task.context or {}, attempt=call.attempt,
        status_callback_url=status_callback_url(provider.name, call.id))
    try:
        carrier_call_id = provider.place_call(request)
    except Exception as exc:  # any refusal or transport error: this attempt failed, the dialer retries per policy
        logger.warning("carrier %s refused call %s: %s", provider.name, call.id, exc)
        finish_now(call.id, CarrierStatus.FAILED, f"carrier refused: {type(exc).__name__}: {exc}"[:500])
        return
    _record_placed(call.id, carrier_call_id)


def check_call_with_carrier(call_id, now=None) -> bool:
    """For the lease reaper: True while the call is live, else settle it and return False.

    A call the carrier says ended gets that terminal event applied, so the attempt finishes (an
    answered call still inside its ANALYSIS_WAIT_SECONDS for the agent's analysis stays live a
    little longer and is ended by `finalise_overdue_calls`). A call the carrier never heard of,
    or live longer than MAX_CALL_SECONDS, is hung up and ended `failed`.
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
        if not event.is_terminal and now - (call.placed_at or call.created_at) > max_call_duration():
            _hang_up_quietly(provider, call.carrier_call_id)
            finish_now(call.id, CarrierStatus.FAILED, "live longer than MAX_CALL_SECONDS", now=now)
            return False
    call.refresh_from_db(fields=["status", "carrier_ended_at"])
    waited_out = call.carrier_ended_at is not None and analysis_overdue(call.carrier_ended_at, now,
                                                                         analysis_wait_seconds())
    if call.status != CallStatus.ENDED and waited_out:
        end_waiting_call(call.id)
        return False
    return call.status != CallStatus.ENDED


def max_call_duration():
    return dt.timedelta(seconds=settings.MAX_CALL_SECONDS)


def _hang_up_quietly(provider, carrier_call_id):
    try:
        provider.hang_up(carrier_call_id)
    except Exception:  # the call is ended on our side regardless; a failed hang-up is only logged
        logger.exception("hang-up of %s at %s failed", carrier_call_id, provider.name)
