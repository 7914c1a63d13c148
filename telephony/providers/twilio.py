"""Twilio, through the official `twilio` SDK.

Calls are created with status callbacks for every progress event and asynchronous answering-
machine detection reporting to the same URL; the call's audio goes to the agent's media stream (its
runtime's URL, else AGENT_MEDIA_STREAM_URL) with our call id, agent id and attempt as stream parameters. Every webhook
is checked with the SDK's RequestValidator against PUBLIC_BASE_URL + the request path.

Every request has a timeout (CARRIER_TIMEOUT_SECONDS). What Twilio answers is sorted into the two
refusals of `telephony.providers.base`: 429 (with its Retry-After), 5xx, a timeout, a lost
connection or a concurrency limit → `CarrierUnavailable` (no attempt); any other 4xx, such as
21211 invalid `To` → `CallRejected` (a failed attempt).
"""
import contextlib
import datetime as dt
import hmac
import os
import queue
import re
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, VoiceResponse

from telephony.providers.base import CallRejected, CarrierUnavailable, PlaceCallRequest, Provider
from telephony.rules import CarrierStatus, EventKind, NormalizedEvent

NAME = "twilio"
# The progress events asked for. Not `initiated`: the create request's answer already links the
# carrier's id and marks the call dialing, and `ringing` does too if it comes first, so it would
# be one webhook request per call that changes nothing.
PROGRESS_EVENTS = ["ringing", "answered", "completed"]

# Twilio CallStatus → our normalised event kind; terminal statuses become `completed` events.
STATUS_EVENTS = {
    "queued": EventKind.INITIATED,
    "initiated": EventKind.INITIATED,
    "ringing": EventKind.RINGING,
    "in-progress": EventKind.ANSWERED,
    "answered": EventKind.ANSWERED,
}
TERMINAL_STATUSES = {status.value for status in CarrierStatus}
# Voice platforms in front of Twilio (and Twilio's own queue) answer a full account this way.
CONCURRENCY_LIMIT = re.compile(r"concurren\w* limit", re.IGNORECASE)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _timestamp(value):
    """Twilio sends RFC 2822 timestamps in callbacks; fetched calls give datetimes (kept as ISO)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        pass
    try:
        return dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def normalise(params, call_id=None):
    """A Twilio callback's form parameters (or a fetched call's fields) → a NormalizedEvent, or None.

    >>> normalise({"CallSid": "CA1", "CallStatus": "busy"}).carrier_status
    'busy'
    >>> normalise({"CallSid": "CA1", "AnsweredBy": "machine_end_beep"}).kind
    <EventKind.MACHINE_DETECTED: 'machine_detected'>
    """
    sid = params.get("CallSid", "")
    status = params.get("CallStatus", "")
    answered_by = params.get("AnsweredBy", "")
    common = {"carrier": NAME, "carrier_call_id": sid, "call_id": call_id, "answered_by": answered_by,
              "occurred_at": _timestamp(params.get("Timestamp")), "raw": dict(params)}
    if status in TERMINAL_STATUSES:
        return NormalizedEvent(
            kind=EventKind.COMPLETED, carrier_status=status,
            duration_seconds=_int(params.get("CallDuration") or params.get("Duration")),
            cost=params.get("Price") or None, recording_url=params.get("RecordingUrl", ""), **common)
    if status in STATUS_EVENTS:
        return NormalizedEvent(kind=STATUS_EVENTS[status], carrier_status=status, **common)
    if answered_by:  # the asynchronous AMD callback carries no CallStatus
        return NormalizedEvent(kind=EventKind.MACHINE_DETECTED, **common)
    return None


def retry_after_seconds(value):
    """A Retry-After header (seconds or an HTTP date) as seconds from now, or None.

    >>> retry_after_seconds("3"), retry_after_seconds(None), retry_after_seconds("soon")
    (3.0, None, None)
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


TWILIO_API = "https://api.twilio.com"


class HttpClient(TwilioHttpClient):
    """The SDK's HTTP client with a timeout on every request, raising `CarrierUnavailable` for
    answers that are not about the call: the SDK's own exception would drop Retry-After.

    The proxy (`HTTPS_PROXY`, `NO_PROXY`…) and CA bundle (`REQUESTS_CA_BUNDLE`) variables are read
    once, when the client is made, for the API's host: a session trusting the environment walks
    all of it twice per request, which was about a third of a placement's CPU."""

    def __init__(self):
        super().__init__(proxy=requests.utils.get_environ_proxies(settings.TWILIO_API_BASE_URL or TWILIO_API))
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def request(self, method, url, *args, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = settings.CARRIER_TIMEOUT_SECONDS
        try:
            response = super().request(method, url, *args, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise CarrierUnavailable(f"Twilio {method} {type(exc).__name__}: {exc}"[:300]) from exc
        status = response.status_code
        if status == 429 or status >= 500 or (400 <= status < 500 and CONCURRENCY_LIMIT.search(response.text or "")):
            raise CarrierUnavailable(f"Twilio {status}: {(response.text or '')[:200]}",
                                     retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        return response


def agent_twiml(request: PlaceCallRequest):
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=request.extra.get("stream_url") or settings.AGENT_MEDIA_STREAM_URL)
    stream.parameter(name="callId", value=request.idempotency_key)
    stream.parameter(name="agentId", value=str(request.agent_id or ""))
    stream.parameter(name="attempt", value=str(request.attempt))
    response.append(connect)
    return str(response)


class TwilioProvider(Provider):
    name = NAME

    def __init__(self, http_client=None):
        self.http_client = http_client
        # HTTP clients (each a requests session with its open connections to Twilio) are lent to
        # one thread at a time: calls are placed from several threads, and keeping the sessions
        # between calls saves a TCP (and TLS) handshake per call.
        self._idle_clients = queue.SimpleQueue()

    @contextlib.contextmanager
    def client(self):
        http_client = self.http_client
        if http_client is None:
            try:
                http_client = self._idle_clients.get_nowait()
            except queue.Empty:
                http_client = HttpClient()
        client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)
        if settings.TWILIO_API_BASE_URL:
            client.api.base_url = settings.TWILIO_API_BASE_URL
        try:
            yield client
        finally:
            if self.http_client is None:
                self._idle_clients.put(http_client)

    def place_call(self, request: PlaceCallRequest) -> str:
        try:
            with self.client() as client:
                call = client.calls.create(
                    to=request.to_number, from_=request.from_number, twiml=agent_twiml(request),
                    status_callback=request.status_callback_url, status_callback_method="POST",
                    status_callback_event=PROGRESS_EVENTS,
                    machine_detection="Enable", async_amd="true",
                    async_amd_status_callback=request.status_callback_url, async_amd_status_callback_method="POST",
                    record=True)
        except TwilioRestException as exc:
            raise CallRejected(f"Twilio {exc.status} {exc.code}: {exc.msg}") from exc
        return call.sid

    def warm_up(self):
        # The SDK imports its REST resources on their first use (~0.2 s, under the import lock):
        # every placing thread of a fresh worker's first dial jobs waited on it.
        if settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN:
            with self.client() as client:
                client.calls  # noqa: B018 (the attribute's first read is the import)

    def fetch_status(self, carrier_call_id, call_id=None):
        try:
            with self.client() as client:
                call = client.calls(carrier_call_id).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise
        status = call.status or ""
        params = {"CallSid": call.sid, "CallStatus": status, "AnsweredBy": call.answered_by or "",
                  "CallDuration": call.duration, "Price": call.price,
                  "Timestamp": call.end_time.isoformat() if call.end_time and status in TERMINAL_STATUSES else None}
        return normalise({k: v for k, v in params.items() if v not in (None, "")}, call_id=call_id)

    def hang_up(self, carrier_call_id):
        try:
            with self.client() as client:
                client.calls(carrier_call_id).update(status="completed")
        except TwilioRestException as exc:
            if exc.status != 404:
                raise

    def verify_webhook(self, request):
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not settings.TWILIO_AUTH_TOKEN:
            return False
        url = settings.PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()
        params = request.POST.dict()
        validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
        # Twilio signs the callback URL as we gave it. The SDK's check signs the URL twice (with
        # and without its port, for Twilio's back ends that differ), so it runs only when that
        # one signature does not match.
        return (hmac.compare_digest(validator.compute_signature(url, params).encode(), signature.encode())
                or validator.validate(url, params, signature))

    def parse_webhook(self, request):
        event = normalise(request.POST.dict(), call_id=request.GET.get("call"))
        return [event] if event is not None else []
