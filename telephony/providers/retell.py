"""Retell, through the official `retell-sdk`.

A call is created from the calling number (registered at Retell: it is the caller ID) with the
agent's Retell agent, the task's context as its LLM dynamic variables and our call id and attempt
in its metadata. Retell posts `call_started`, `call_ended` and `call_analyzed` to the agent's
webhook URL, signed in `x-retell-signature` with the Retell API key marked for webhooks (the
workspace's `webhookSecret`; the SDK's `verify`: HMAC-SHA256 of body + timestamp, five minutes'
tolerance).

`call_ended` ends the call by its `disconnection_reason` (`telephony.platform_rules.retell_end`);
an answered call then waits for `call_analyzed`, whose summary, custom analysis data and voicemail
flag, with the transcript, recording and cost, are the call's analysis. The SDK's own retries are
off: a refusal not about the callee is `CarrierUnavailable`, and the dialer retries.
"""
from retell import APIConnectionError, APIStatusError, NotFoundError, Retell
from retell.lib.webhook_auth import verify

from telephony.platform_rules import retell_end
from telephony.providers.base import CallRejected, PlaceCallRequest
from telephony.providers.platform import (
    PlatformProvider, analysis_outcome, callback_time, http_status_refusal, string_variables, transport_refusal,
    usable_extra,
)
from telephony.providers.twilio import retry_after_seconds
from telephony.rules import EventKind, NormalizedEvent

NAME = "retell"
STATUS_EVENTS = {"registered": EventKind.INITIATED, "ongoing": EventKind.ANSWERED}


def _refusal(exc):
    if isinstance(exc, APIStatusError):
        body = exc.response.text if exc.response is not None else str(exc)
        unavailable = http_status_refusal("Retell", exc.status_code, body,
                                          retry_after=retry_after_seconds(exc.response.headers.get("retry-after")))
        return unavailable or CallRejected(f"Retell {exc.status_code}: {body[:200]}")
    return transport_refusal("Retell", exc)


def _cost(call):
    """Retell reports the combined cost in cents."""
    cost = (call.get("call_cost") or {}).get("combined_cost")
    return None if cost is None else f"{cost / 100:.4f}"


class RetellProvider(PlatformProvider):
    name = NAME
    PLACING_RESOURCE = "call"

    def new_client(self, api_key, base_url, http):
        return Retell(api_key=api_key, base_url=base_url, timeout=self.timeout(), max_retries=0, http_client=http)

    def place_call(self, request: PlaceCallRequest) -> str:
        runtime, api_key, base_url = usable_extra(request)
        try:
            call = self.client(api_key, base_url).call.create_phone_call(
                from_number=request.from_number, to_number=request.to_number,
                override_agent_id=runtime["agentId"], idempotency_key=request.idempotency_key,
                metadata={"callId": request.idempotency_key, "attempt": request.attempt},
                retell_llm_dynamic_variables=string_variables(request.context))
        except (APIStatusError, APIConnectionError) as exc:
            raise _refusal(exc) from exc
        return call.call_id

    def fetch_status(self, carrier_call_id, call_id=None):
        api_key, base_url = self.credentials_for(carrier_call_id, call_id)
        try:
            call = self.client(api_key, base_url).call.retrieve(carrier_call_id).to_dict()
        except NotFoundError:
            return None
        except (APIStatusError, APIConnectionError) as exc:
            raise _refusal(exc) from exc
        common = self._common(carrier_call_id, call_id, {"source": "status check", "call_status": call.get("call_status")})
        if call.get("call_status") in ("ended", "error", "not_connected"):
            reason = call.get("disconnection_reason") or call.get("call_status")
            return self.end_events(retell_end(reason), common, reason, cost=_cost(call))[-1]
        return NormalizedEvent(kind=STATUS_EVENTS.get(call.get("call_status"), EventKind.INITIATED), **common)

    def hang_up(self, carrier_call_id):
        api_key, base_url = self.credentials_for(carrier_call_id)
        try:
            self.client(api_key, base_url).call.stop(carrier_call_id)
        except NotFoundError:
            return
        except (APIStatusError, APIConnectionError) as exc:
            raise _refusal(exc) from exc

    def call_reference(self, body, request):
        call = body.get("call") if isinstance(body.get("call"), dict) else {}
        metadata = call.get("metadata") if isinstance(call.get("metadata"), dict) else {}
        return metadata.get("callId"), call.get("call_id")

    def signature_valid(self, request, secret):
        signature = request.headers.get("x-retell-signature", "")
        try:
            return bool(signature) and verify(request.body.decode(), secret, signature)
        except (UnicodeDecodeError, ValueError):
            return False

    def events(self, body, call, request):
        retell_call = body.get("call") or {}
        call_id, carrier_call_id = self.call_reference(body, request)
        common = self._common(carrier_call_id, call_id, body)
        event = body.get("event")
        report = retell_call.get("call_analysis") or {}
        if event == "call_started":
            return [NormalizedEvent(kind=EventKind.ANSWERED, **common)]
        if event == "call_ended":
            reason = retell_call.get("disconnection_reason") or ""
            end = retell_end(reason, in_voicemail=bool(report.get("in_voicemail")))
            return self.end_events(end, common, reason, recording_url=retell_call.get("recording_url") or "",
                                   duration_seconds=_seconds(retell_call), cost=_cost(retell_call))
        if event == "call_analyzed":
            structured = report.get("custom_analysis_data") or {}
            outcome = "voicemail" if report.get("in_voicemail") else analysis_outcome(
                structured, call.agent if call else None)
            analysis = {"summary": report.get("call_summary") or "", "transcript": retell_call.get("transcript") or "",
                        "fields": structured if isinstance(structured, dict) else {}, "outcome": outcome,
                        "voicemail": bool(report.get("in_voicemail")),
                        "platformReason": retell_call.get("disconnection_reason") or ""}
            if report.get("user_sentiment"):
                analysis["sentiment"] = report["user_sentiment"]
            if callback_at := callback_time(structured):
                analysis["callback_at"] = callback_at
            return [NormalizedEvent(kind=EventKind.ANALYSIS, analysis=analysis,
                                    recording_url=retell_call.get("recording_url") or "", **common)]
        return []


def _seconds(call):
    duration_ms = call.get("duration_ms")
    return round(duration_ms / 1000) if isinstance(duration_ms, (int, float)) else None
