"""Vapi, through the official `vapi-server-sdk`.

A call is created for the agent's assistant from its Vapi phone number, with the task's context as
the assistant's variable values, our call id and attempt in its metadata, and our status callback
as the call's server URL (so Vapi's server messages carry our call id). Vapi signs those messages
with the server credential the workspace set up: an HMAC (`x-signature` over "{x-timestamp}.{body}",
hex SHA-256, Vapi's default) or a bearer token (`Authorization: Bearer …`, or the older
`x-vapi-secret` header); the workspace's `webhookSecret` is that secret.

`status-update` messages move the call (queued → dialing, ringing, in-progress → answered); the
`end-of-call-report` ends it, by its `endedReason` (`telephony.platform_rules.vapi_end`), with its
summary, transcript, recording, cost and structured data as the analysis. Hanging up posts
`end-call` to the live call's control URL. The SDK's own retries are off: a refusal not about the
callee is `CarrierUnavailable`, and the dialer retries.
"""
import hashlib
import hmac
import time

import httpx
from vapi import AssistantOverrides, CreateCustomerDto, Server, Vapi
from vapi.core.api_error import ApiError

from telephony.platform_rules import hmac_timestamp_valid, signatures_match, vapi_end
from telephony.providers.base import CallRejected, PlaceCallRequest
from telephony.providers.platform import (
    SIGNATURE_TOLERANCE_SECONDS, PlatformProvider, analysis_outcome, callback_time, http_status_refusal,
    post_json, string_variables, transport_refusal, usable_extra,
)
from telephony.providers.twilio import retry_after_seconds
from telephony.rules import EventKind, NormalizedEvent

NAME = "vapi"
NO_RETRIES = {"max_retries": 0}
STATUS_EVENTS = {"queued": EventKind.INITIATED, "ringing": EventKind.RINGING, "in-progress": EventKind.ANSWERED}


def _refusal(exc):
    if isinstance(exc, ApiError):
        unavailable = http_status_refusal("Vapi", exc.status_code or 0, exc.body,
                                          retry_after=_retry_after(exc.headers))
        return unavailable or CallRejected(f"Vapi {exc.status_code}: {str(exc.body)[:200]}")
    return transport_refusal("Vapi", exc)


def _retry_after(headers):
    return retry_after_seconds((headers or {}).get("retry-after"))


class VapiProvider(PlatformProvider):
    name = NAME
    PLACING_RESOURCE = "calls"

    def new_client(self, api_key, base_url, http):
        return Vapi(token=api_key, base_url=base_url, timeout=self.timeout(), httpx_client=http)

    def place_call(self, request: PlaceCallRequest) -> str:
        runtime, api_key, base_url = usable_extra(request)
        overrides = AssistantOverrides(
            variable_values=string_variables(request.context),
            metadata={"callId": request.idempotency_key, "attempt": request.attempt},
            server=Server(url=request.status_callback_url))
        try:
            call = self.client(api_key, base_url).calls.create(
                assistant_id=runtime["assistantId"], phone_number_id=runtime["phoneNumberId"],
                customer=CreateCustomerDto(number=request.to_number), assistant_overrides=overrides,
                request_options=NO_RETRIES)
        except (ApiError, httpx.HTTPError) as exc:
            raise _refusal(exc) from exc
        if not getattr(call, "id", None):
            raise CallRejected("Vapi answered without a call id")
        return call.id

    def fetch_status(self, carrier_call_id, call_id=None):
        api_key, base_url = self.credentials_for(carrier_call_id, call_id)
        try:
            call = self.client(api_key, base_url).calls.get(carrier_call_id, request_options=NO_RETRIES)
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise _refusal(exc) from exc
        except httpx.HTTPError as exc:
            raise _refusal(exc) from exc
        data = call.dict(by_alias=True)
        common = self._common(carrier_call_id, call_id, {"source": "status check", "status": data.get("status")})
        if call.status == "ended":
            return self.end_events(vapi_end(call.ended_reason), common, call.ended_reason or "",
                                   cost=call.cost)[-1]
        if call.status == "not-found":
            return None
        return NormalizedEvent(kind=STATUS_EVENTS.get(call.status, EventKind.INITIATED), **common)

    def hang_up(self, carrier_call_id):
        api_key, base_url = self.credentials_for(carrier_call_id)
        try:
            call = self.client(api_key, base_url).calls.get(carrier_call_id, request_options=NO_RETRIES)
        except ApiError as exc:
            if exc.status_code == 404:
                return
            raise _refusal(exc) from exc
        control_url = call.monitor.control_url if call.monitor else None
        if call.status == "ended" or not control_url:
            return
        post_json(control_url, {"type": "end-call"})

    def call_reference(self, body, request):
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        call = message.get("call") if isinstance(message.get("call"), dict) else {}
        metadata = ((call.get("assistantOverrides") or {}).get("metadata") or {}) if isinstance(call, dict) else {}
        call_id = request.GET.get("call") or (metadata.get("callId") if isinstance(metadata, dict) else None)
        return call_id, call.get("id")

    def signature_valid(self, request, secret):
        signature = request.headers.get("x-signature", "")
        if signature:
            timestamp = request.headers.get("x-timestamp", "")
            if not hmac_timestamp_valid(timestamp, time.time(), SIGNATURE_TOLERANCE_SECONDS):
                return False
            expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
            return signatures_match(expected, signature.removeprefix("sha256="))
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return signatures_match(secret, authorization.removeprefix("Bearer ").strip())
        return signatures_match(secret, request.headers.get("x-vapi-secret", ""))

    def events(self, body, call, request):
        message = body.get("message") or {}
        vapi_call = message.get("call") or {}
        call_id, _ = self.call_reference(body, request)
        common = self._common(vapi_call.get("id"), call_id, body)
        kind = message.get("type")
        if kind == "status-update":
            event_kind = STATUS_EVENTS.get(message.get("status"))
            return [NormalizedEvent(kind=event_kind, **common)] if event_kind else []
        if kind != "end-of-call-report":
            return []
        reason = message.get("endedReason") or ""
        artifact = message.get("artifact") or {}
        report = message.get("analysis") or {}
        structured = report.get("structuredData") or {}
        analysis = {"summary": report.get("summary") or message.get("summary") or "",
                    "transcript": artifact.get("transcript") or message.get("transcript") or "",
                    "fields": structured if isinstance(structured, dict) else {"structuredData": structured},
                    "outcome": analysis_outcome(structured, call.agent if call else None)}
        if report.get("successEvaluation") not in (None, ""):
            analysis["successEvaluation"] = report["successEvaluation"]
        if callback_at := callback_time(structured):
            analysis["callback_at"] = callback_at
        duration = message.get("durationSeconds")
        return self.end_events(vapi_end(reason), common, reason, analysis=analysis,
                               recording_url=artifact.get("recordingUrl") or message.get("recordingUrl") or "",
                               duration_seconds=round(duration) if isinstance(duration, (int, float)) else None,
                               cost=message.get("cost"))
