"""What the voice-AI platform providers (Vapi, Retell, ElevenLabs) share.

A platform places the call itself, with the credentials of the workspace the call belongs to:
`place_call` gets them in the request's `extra` (read in the dial job's thread); the reaper's
status check, hang-ups and webhooks look them up from the call (`integration_for_call`).

A webhook is verified with the secret of the workspace whose call it names: the body is read once
to find the call, the signature is checked against that workspace's secret, and only then is
anything parsed into events or stored. A call the webhook does not name, of another provider, or
of a workspace without credentials for the platform is refused.
"""
import datetime as dt
import functools
import json
import logging
import threading
import uuid

import httpx
from django.conf import settings

from campaigns.encryption import EncryptionUnavailable
from campaigns.models import Integration
from campaigns.vocabulary import Outcome
from telephony.models import Call
from telephony.outbound import OutboundRefused, check_url
from telephony.platform_rules import PlatformEnd
from telephony.providers.base import CarrierUnavailable, PlaceCallRequest, Provider
from telephony.rules import EventKind, NormalizedEvent

logger = logging.getLogger(__name__)

# How far a signed webhook's timestamp may be from our clock.
SIGNATURE_TOLERANCE_SECONDS = 300


def integration_for_call(platform, call_id=None, carrier_call_id=None):
    """(call, integration) for a call this platform carries, or (None, None)."""
    calls = Call.objects.select_related("campaign", "agent").filter(carrier=platform)
    call = None
    if call_id:
        try:
            call = calls.filter(id=uuid.UUID(str(call_id))).first()
        except ValueError:  # not a UUID: nothing of ours
            return None, None
    elif carrier_call_id:
        call = calls.filter(carrier_call_id=carrier_call_id).first()
    if call is None:
        return None, None
    integration = Integration.objects.filter(workspace_id=call.campaign.workspace_id, platform=platform).first()
    return (call, integration) if integration is not None else (None, None)


def json_body(request):
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport, connecting only where `telephony.outbound.check_url` allows: every request's
    host is resolved and checked, and the connection goes to the checked address (TLS SNI and the
    certificate still for the host name), so DNS cannot point a customer-chosen base URL elsewhere
    between the check and the connection."""

    def handle_request(self, request):
        try:
            target = check_url(str(request.url))
        except OutboundRefused as exc:
            raise httpx.ConnectError(f"refused: {exc}", request=request) from None
        request.extensions = {**request.extensions, "sni_hostname": request.url.host}
        request.url = request.url.copy_with(host=target.addresses[0])  # the Host header keeps the name
        return super().handle_request(request)


def http_client(base_url):
    """The HTTP client under a platform's SDK: checked connections for a customer-chosen base URL
    (the platform's own endpoint needs none), CARRIER_TIMEOUT_SECONDS, no redirects."""
    if base_url:  # connects to checked addresses only: no proxy from the environment either
        return httpx.Client(transport=CheckedTransport(), timeout=settings.CARRIER_TIMEOUT_SECONDS,
                            follow_redirects=False, trust_env=False)
    return httpx.Client(timeout=settings.CARRIER_TIMEOUT_SECONDS, follow_redirects=False)


def usable_extra(request: PlaceCallRequest):
    """The request's runtime and credentials, or CarrierUnavailable when the workspace lost them."""
    if request.extra.get("unusable"):
        raise CarrierUnavailable(f"cannot place on this platform: {request.extra['unusable']}")
    return request.extra["runtime"], request.extra["api_key"], request.extra.get("base_url") or None


def string_variables(context):
    """The task's context as the platform's dynamic variables: our own keys (`_…`) stay ours, and
    values become strings (every platform substitutes text)."""
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in (context or {}).items() if not key.startswith("_")}


def transport_refusal(name, exc):
    """A timeout or lost connection: the platform may not have the call, and it is not the callee's fault."""
    return CarrierUnavailable(f"{name} {type(exc).__name__}: {exc}"[:300])


def http_status_refusal(name, status, body, retry_after=None):
    """None when the status is about the call (the caller raises CallRejected), else CarrierUnavailable."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    if status == 429 or status >= 500 or "concurren" in text.lower():
        return CarrierUnavailable(f"{name} {status}: {text[:200]}", retry_after=retry_after)
    return None


def analysis_outcome(structured, agent):
    """The outcome an end-of-call report's structured data names, when it is one this agent may
    report ("" otherwise: the call is connected); a callback needs its `callbackAt`, as from the
    agent analysis endpoint."""
    outcome = (structured or {}).get("outcome") if isinstance(structured, dict) else None
    allowed = set(Outcome.values) | set(agent.outcomes if agent is not None else ())
    if not isinstance(outcome, str) or outcome not in allowed:
        return ""
    if outcome == Outcome.CALLBACK and callback_time(structured) is None:
        return ""
    return outcome


def callback_time(structured):
    value = (structured or {}).get("callbackAt") if isinstance(structured, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.isoformat() if parsed.tzinfo is not None else None


class PlatformProvider(Provider):
    """A platform: subclasses say how to find the call a webhook names, check its signature and turn it
    into events; this class finds the workspace's secret between the two.

    SDK clients are kept per (API key, base URL), MAX_CLIENTS at most: their connection pools save a
    TCP and TLS handshake per call, and they are safe to share between placing threads.
    """

    MAX_CLIENTS = 256
    # The SDK client's attribute (dotted) that calls are placed through: its first read imports
    # the resource's modules.
    PLACING_RESOURCE = ""

    def __init__(self):
        self._clients = {}
        self._clients_lock = threading.Lock()

    def client(self, api_key, base_url):
        key = (api_key, base_url, settings.CARRIER_TIMEOUT_SECONDS)
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                if len(self._clients) >= self.MAX_CLIENTS:
                    self._clients.pop(next(iter(self._clients)))  # the oldest; threads using it keep it
                client = self._clients[key] = self.new_client(api_key, base_url, http_client(base_url))
        return client

    def new_client(self, api_key, base_url, http):
        """The platform's SDK client on `http` (an httpx.Client)."""
        raise NotImplementedError

    def warm_up(self):
        with http_client(None) as http:
            functools.reduce(getattr, self.PLACING_RESOURCE.split("."), self.new_client("warm-up", None, http))

    def verify_webhook(self, request):
        body = json_body(request)
        if body is None:
            return False
        call_id, carrier_call_id = self.call_reference(body, request)
        call, integration = integration_for_call(self.name, call_id, carrier_call_id)
        if integration is None:
            return False
        try:
            secret = integration.webhook_secret
        except EncryptionUnavailable:
            logger.exception("%s webhook for call %s: the workspace's secret cannot be read", self.name, call.id)
            return False
        if not secret:
            return False
        request.platform_call = call
        return self.signature_valid(request, secret)

    def parse_webhook(self, request):
        return self.events(json_body(request), getattr(request, "platform_call", None), request)

    def call_reference(self, body, request):
        """(our call id or None, the platform's call id or None) that a webhook body names."""
        raise NotImplementedError

    def signature_valid(self, request, secret):
        raise NotImplementedError

    def events(self, body, call, request):
        """The NormalizedEvents a verified webhook carries; `call` is the Call it names."""
        raise NotImplementedError

    def _common(self, carrier_call_id, call_id, raw):
        """The fields every event of one webhook shares."""
        return {"carrier": self.name, "carrier_call_id": carrier_call_id or "", "call_id": call_id, "raw": raw}

    def timeout(self):
        return settings.CARRIER_TIMEOUT_SECONDS

    def credentials_for(self, carrier_call_id, call_id=None):
        """(api key, base URL) of the workspace a call belongs to, for status checks and hang-ups."""
        _, integration = integration_for_call(self.name, call_id, None if call_id else carrier_call_id)
        if integration is None:
            raise CarrierUnavailable(f"no {self.name} credentials for call {call_id or carrier_call_id}")
        return integration.api_key, integration.base_url or None

    def end_events(self, end: PlatformEnd, common, reason, analysis=None, recording_url="",
                   duration_seconds=None, cost=None):
        """The events of a call's end as a platform reported it: the report as the call's analysis
        (the platform's reason kept verbatim), then the terminal event; or, for a call the platform
        never placed, the event that withdraws it."""
        if end.not_placed:
            return [NormalizedEvent(kind=EventKind.NOT_PLACED, carrier_status=end.carrier_status,
                                    **{**common, "raw": {**common["raw"], "reason": reason}})]
        events = []
        if analysis is None and not end.known:
            analysis = {}  # an unknown reason is kept on the call, whatever else the platform sends
        if analysis is not None:
            analysis = {**analysis, "platformReason": reason}
            if end.outcome:
                analysis["outcome"] = end.outcome
            events.append(NormalizedEvent(kind=EventKind.ANALYSIS, recording_url=recording_url or "",
                                          analysis=analysis, **common))
        events.append(NormalizedEvent(kind=EventKind.COMPLETED, carrier_status=end.carrier_status,
                                      answered_by=end.answered_by, duration_seconds=duration_seconds,
                                      cost=None if cost is None else str(cost), recording_url=recording_url or "",
                                      **common))
        return events


def post_json(url, body):
    """A small control request a platform's SDK does not wrap (Vapi's live-call control URL), to an
    address `telephony.outbound` allows."""
    try:
        with http_client(url) as client:
            return client.post(url, json=body).status_code
    except httpx.HTTPError as exc:
        raise transport_refusal("control", exc) from exc
