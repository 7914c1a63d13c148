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
import base64
import datetime as dt
import functools
import hmac
import json
import logging
import os
import re
import threading
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode

import requests.utils
import urllib3
from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient as SdkHttpClient
from twilio.http.response import Response
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


# Idle connections to the API kept for reuse, at most (more may be open while threads place calls).
KEPT_CONNECTIONS = 1024
# What urllib3 raises when the request may not have reached Twilio, or its answer did not reach us.
TRANSPORT_ERRORS = (urllib3.exceptions.TimeoutError, urllib3.exceptions.NewConnectionError,
                    urllib3.exceptions.ProtocolError, urllib3.exceptions.ProxyError, urllib3.exceptions.SSLError)


class HttpClient(SdkHttpClient):
    """The SDK's HTTP client interface on one urllib3 pool that every placing thread shares, with a
    timeout on every request, raising `CarrierUnavailable` for answers that are not about the call:
    the SDK's own exception would drop Retry-After.

    Not the SDK's `requests` client: preparing a request through a `requests` session (merging
    settings, hooks, cookies, re-checking the CA bundle's path) cost as much CPU as sending it.
    What that client took from the environment is read once, when this one is made, for the API's
    host: the proxy (`HTTPS_PROXY`, `NO_PROXY`…, credentials in its URL included) and the CA bundle
    (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, else `requests`' own)."""

    def __init__(self):
        super().__init__(logging.getLogger("twilio.http_client"), is_async=False)
        api = settings.TWILIO_API_BASE_URL or TWILIO_API
        self.proxy = requests.utils.get_environ_proxies(api)
        self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        bundle = requests.utils.DEFAULT_CA_BUNDLE_PATH if self.verify is True else self.verify
        tls = {"cert_reqs": "CERT_REQUIRED", ("ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"): bundle}
        proxy = requests.utils.select_proxy(api, self.proxy)
        if proxy:  # as `requests` makes it: SOCKS, and Proxy-Authorization from the URL's credentials
            adapter = HTTPAdapter(pool_maxsize=KEPT_CONNECTIONS)
            self.pool = adapter.proxy_manager_for(proxy, **tls)
        else:
            self.pool = urllib3.PoolManager(maxsize=KEPT_CONNECTIONS, **tls)
        self._authorization = {}

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        timeout = timeout or settings.CARRIER_TIMEOUT_SECONDS
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = self._basic(auth)
        if params:
            url = f"{url}?{urlencode(params, doseq=True)}"
        body = None
        if data:
            json_body = headers.get("Content-Type", "").endswith("json")
            body = json.dumps(data) if json_body else urlencode(data, doseq=True)
        if self.logger.isEnabledFor(logging.INFO):
            self.log_request({"method": method, "url": url, "params": None, "headers": headers})
        try:
            response = self.pool.request(method, url, body=body, headers=headers, redirect=allow_redirects,
                                         retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except TRANSPORT_ERRORS as exc:
            raise CarrierUnavailable(f"Twilio {method} {type(exc).__name__}: {exc}"[:300]) from exc
        status = response.status
        text = response.data.decode(_charset(response.headers.get("Content-Type")), errors="replace")
        if self.logger.isEnabledFor(logging.INFO):
            self.log_response(status, response)
        if status == 429 or status >= 500 or (400 <= status < 500 and CONCURRENCY_LIMIT.search(text)):
            raise CarrierUnavailable(f"Twilio {status}: {text[:200]}",
                                     retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        return Response(status, text, response.headers)

    def _basic(self, auth):
        header = self._authorization.get(auth)
        if header is None:
            token = base64.b64encode(":".join(auth).encode("latin-1")).decode("ascii")
            header = self._authorization[auth] = f"Basic {token}"
        return header


def _charset(content_type):
    """The body's charset from its Content-Type (Twilio's JSON says utf-8), utf-8 when unnamed.

    >>> _charset("application/json; charset=ISO-8859-1"), _charset(None)
    ('ISO-8859-1', 'utf-8')
    """
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


# Stand-ins for the stream parameters' values in a TwiML template; XML escaping leaves them be.
_CALL_ID, _AGENT_ID, _ATTEMPT = "\ue000", "\ue001", "\ue002"


def agent_twiml(request: PlaceCallRequest):
    """The call's TwiML: its audio to the agent's media stream, with our call id, agent id and attempt."""
    template = _twiml_template(request.extra.get("stream_url") or settings.AGENT_MEDIA_STREAM_URL)
    return (template.replace(_CALL_ID, _attribute(request.idempotency_key))
            .replace(_AGENT_ID, _attribute(str(request.agent_id or "")))
            .replace(_ATTEMPT, _attribute(str(request.attempt))))


@functools.lru_cache(maxsize=256)
def _twiml_template(stream_url):
    """The SDK's TwiML for a stream, rendered once per URL: building and serialising its element
    tree was a tenth of a placement's CPU."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    stream.parameter(name="callId", value=_CALL_ID)
    stream.parameter(name="agentId", value=_AGENT_ID)
    stream.parameter(name="attempt", value=_ATTEMPT)
    response.append(connect)
    return str(response)


def _attribute(text):
    """`text` escaped as the SDK's serialiser (ElementTree) escapes an attribute value."""
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                         ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;")):
        if char in text:
            text = text.replace(char, entity)
    return text


class TwilioProvider(Provider):
    name = NAME

    def __init__(self, http_client=None):
        self.http_client = http_client
        # One SDK client per credentials and API URL, shared by every placing thread: it keeps no
        # state per request, and its HTTP client's pool keeps the connections to Twilio open
        # between calls (a TCP and TLS handshake saved per call).
        self._clients = {}
        self._clients_lock = threading.Lock()

    def client(self):
        key = (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_API_BASE_URL)
        client = self._clients.get(key)
        if client is None:
            with self._clients_lock:
                client = self._clients.get(key)
                if client is None:
                    client = Client(key[0], key[1], http_client=self.http_client or HttpClient())
                    if key[2]:
                        client.api.base_url = key[2]
                    self._clients[key] = client
        return client

    def place_call(self, request: PlaceCallRequest) -> str:
        try:
            call = self.client().calls.create(
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
            self.client().calls  # noqa: B018 (the attribute's first read is the import)

    def fetch_status(self, carrier_call_id, call_id=None):
        try:
            call = self.client().calls(carrier_call_id).fetch()
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
            self.client().calls(carrier_call_id).update(status="completed")
        except TwilioRestException as exc:
            if exc.status != 404:
                raise

    def verify_webhook(self, request):
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not settings.TWILIO_AUTH_TOKEN:
            return False
        url = settings.PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()
        params = callback_params(request)
        validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
        # Twilio signs the callback URL as we gave it. The SDK's check signs the URL twice (with
        # and without its port, for Twilio's back ends that differ), so it runs only when that
        # one signature does not match.
        return (hmac.compare_digest(validator.compute_signature(url, params).encode(), signature.encode())
                or validator.validate(url, params, signature))

    def parse_webhook(self, request):
        event = normalise(callback_params(request), call_id=request.GET.get("call"))
        return [event] if event is not None else []


def callback_params(request):
    """A callback's form fields as a dict, the last value of a repeated name winning, as
    `request.POST.dict()` gives them. Twilio's urlencoded body is parsed once per request and
    without Django's QueryDict, whose per-field bookkeeping was a sixth of a status callback's
    CPU; its limits hold: DATA_UPLOAD_MAX_MEMORY_SIZE (reading the body) and
    DATA_UPLOAD_MAX_NUMBER_FIELDS."""
    params = getattr(request, "_twilio_params", None)
    if params is None:
        if request.content_type != "application/x-www-form-urlencoded":  # multipart, or no form at all
            params = request.POST.dict()
        else:
            encoding = request.encoding or settings.DEFAULT_CHARSET
            try:
                body = request.body.decode(encoding)
            except UnicodeDecodeError:  # as QueryDict does: form bodies should be ASCII
                body = request.body.decode("iso-8859-1")
            try:
                params = dict(parse_qsl(body, keep_blank_values=True, encoding=encoding,
                                        max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS))
            except ValueError as exc:  # past max_num_fields: what Django's own parsing raises (a 400)
                raise TooManyFieldsSent("The number of form fields exceeds DATA_UPLOAD_MAX_NUMBER_FIELDS.") from exc
        request._twilio_params = params
    return params
