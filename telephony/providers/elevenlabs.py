"""ElevenLabs Agents, through the official `elevenlabs` SDK.

A call is an outbound conversation of the agent's ElevenLabs agent from its ElevenLabs phone
number (Twilio-backed), with the task's context and our call id (`dialer_call_id`) and attempt
(`dialer_attempt`) as the conversation's dynamic variables. ElevenLabs posts its webhooks to the
workspace's webhook URL (set in its ElevenLabs settings), signed in `ElevenLabs-Signature` as
`t=<unix seconds>,v0=<hex HMAC-SHA256 of "{t}.{body}">` with the webhook's secret; a timestamp
more than five minutes away is refused.

`call_initiation_failure` ends the call by its `failure_reason` (busy, no-answer, unknown →
failed); `post_call_transcription` ends it answered, its summary, transcript, data collection
results and fiat cost as the analysis (a voicemail when it says so; `telephony.platform_rules.elevenlabs_end`).
ElevenLabs has no request that ends a live conversation: `hang_up` leaves it to the agent's own
maximum duration. The SDK's own retries are off: 429, 5xx and timeouts are `CarrierUnavailable`.
"""
import hashlib
import hmac
import time

import httpx
from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError

from telephony.platform_rules import elevenlabs_end, hmac_timestamp_valid, signatures_match
from telephony.providers.base import CallRejected, PlaceCallRequest
from telephony.providers.platform import (
    SIGNATURE_TOLERANCE_SECONDS, PlatformProvider, analysis_outcome, callback_time, http_status_refusal,
    string_variables, transport_refusal, usable_extra,
)
from telephony.providers.twilio import retry_after_seconds
from telephony.rules import EventKind, NormalizedEvent

NAME = "elevenlabs"
NO_RETRIES = {"max_retries": 0}
CALL_ID_VARIABLE, ATTEMPT_VARIABLE = "dialer_call_id", "dialer_attempt"
STATUS_EVENTS = {"initiated": EventKind.INITIATED, "in-progress": EventKind.ANSWERED}


def _refusal(exc):
    if isinstance(exc, ApiError):
        unavailable = http_status_refusal("ElevenLabs", exc.status_code or 0, exc.body,
                                          retry_after=retry_after_seconds((exc.headers or {}).get("retry-after")))
        return unavailable or CallRejected(f"ElevenLabs {exc.status_code}: {str(exc.body)[:200]}")
    return transport_refusal("ElevenLabs", exc)


def _data_fields(analysis):
    """Data collection results as plain {name: value}."""
    results = analysis.get("data_collection_results") or {}
    return {name: result.get("value") if isinstance(result, dict) else result for name, result in results.items()}


class ElevenLabsProvider(PlatformProvider):
    name = NAME
    PLACING_RESOURCE = "conversational_ai.twilio"

    def new_client(self, api_key, base_url, http):
        return ElevenLabs(api_key=api_key, base_url=base_url, timeout=self.timeout(), httpx_client=http)

    def place_call(self, request: PlaceCallRequest) -> str:
        runtime, api_key, base_url = usable_extra(request)
        variables = {**string_variables(request.context), CALL_ID_VARIABLE: request.idempotency_key,
                     ATTEMPT_VARIABLE: str(request.attempt)}
        try:
            answer = self.client(api_key, base_url).conversational_ai.twilio.outbound_call(
                agent_id=runtime["agentId"], agent_phone_number_id=runtime["phoneNumberId"],
                to_number=request.to_number,
                conversation_initiation_client_data={"dynamic_variables": variables},
                request_options=NO_RETRIES)
        except (ApiError, httpx.HTTPError) as exc:
            raise _refusal(exc) from exc
        if not answer.success or not answer.conversation_id:
            raise CallRejected(f"ElevenLabs did not start the call: {answer.message}"[:300])
        return answer.conversation_id

    def fetch_status(self, carrier_call_id, call_id=None):
        api_key, base_url = self.credentials_for(carrier_call_id, call_id)
        try:
            conversation = self.client(api_key, base_url).conversational_ai.conversations.get(
                carrier_call_id, request_options=NO_RETRIES)
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise _refusal(exc) from exc
        except httpx.HTTPError as exc:
            raise _refusal(exc) from exc
        common = self._common(carrier_call_id, call_id, {"source": "status check", "status": conversation.status})
        if conversation.status in ("processing", "done", "failed"):
            termination = (conversation.metadata.termination_reason or "") if conversation.metadata else ""
            end = elevenlabs_end("post_call_transcription", status=conversation.status,
                                 termination_reason=termination)
            return self.end_events(end, common, termination or conversation.status)[-1]
        return NormalizedEvent(kind=STATUS_EVENTS.get(conversation.status, EventKind.INITIATED), **common)

    def hang_up(self, carrier_call_id):
        """ElevenLabs offers no request that ends a live conversation; the agent's maximum duration does."""

    def call_reference(self, body, request):
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        client_data = data.get("conversation_initiation_client_data")
        variables = (client_data or {}).get("dynamic_variables") if isinstance(client_data, dict) else None
        call_id = variables.get(CALL_ID_VARIABLE) if isinstance(variables, dict) else None
        return call_id, data.get("conversation_id")

    def signature_valid(self, request, secret):
        parts = dict(part.split("=", 1) for part in request.headers.get("ElevenLabs-Signature", "").split(",")
                     if "=" in part)
        timestamp, signature = parts.get("t", ""), parts.get("v0", "")
        if not timestamp.isdigit() or not hmac_timestamp_valid(timestamp, time.time(), SIGNATURE_TOLERANCE_SECONDS):
            return False
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
        return signatures_match(expected, signature)

    def events(self, body, call, request):
        data = body.get("data") or {}
        call_id, carrier_call_id = self.call_reference(body, request)
        common = self._common(carrier_call_id, call_id, body)
        kind = body.get("type")
        if kind == "call_initiation_failure":
            reason = data.get("failure_reason") or ""
            return self.end_events(elevenlabs_end(kind, failure_reason=reason), common, reason)
        if kind != "post_call_transcription":
            return []
        metadata = data.get("metadata") or {}
        report = data.get("analysis") or {}
        termination = metadata.get("termination_reason") or ""
        end = elevenlabs_end(kind, status=data.get("status") or "", termination_reason=termination)
        fields = _data_fields(report)
        transcript = "\n".join(f"{turn.get('role', '')}: {turn.get('message') or ''}"
                               for turn in data.get("transcript") or [] if isinstance(turn, dict))
        analysis = {"summary": report.get("transcript_summary") or "", "transcript": transcript, "fields": fields,
                    "outcome": analysis_outcome(fields, call.agent if call else None),
                    "callSuccessful": report.get("call_successful") or ""}
        if callback_at := callback_time(fields):
            analysis["callback_at"] = callback_at
        duration = metadata.get("call_duration_secs")
        return self.end_events(end, common, termination or data.get("status") or "", analysis=analysis,
                               duration_seconds=duration if isinstance(duration, int) else None,
                               cost=metadata.get("cost_fiat"))
