"""Outbound webhooks to the customer (call.ended, task.finished), delivered from the database.

A delivery is a `WebhookDelivery` row written in the transaction of the change it reports, so a
rolled-back change sends nothing. `deliver_due_webhooks` (beat task `telephony.deliver_webhooks`)
claims due rows, POSTs them signed, and on failure reschedules them with exponential backoff
(`backoff_seconds`), giving up after WEBHOOK_MAX_ATTEMPTS.

Every POST goes through `telephony.outbound` (global addresses only, pinned to the checked
address, no redirects, bounded): a failure is stored as its status code and a short reason of
our own, never the receiver's reply, which an organisation's admin could otherwise read back
from an internal service it pointed its webhook at.

Signature: `X-Dialer-Timestamp: <unix seconds>` and
`X-Dialer-Signature: sha256=<hex HMAC-SHA256(webhook_secret, "<timestamp>.<raw body>")>`.
"""
import datetime as dt
import hashlib
import hmac
import json
import time

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from telephony.models import WebhookDelivery, WebhookDeliveryStatus
from telephony.outbound import OutboundError, OutboundSession, status_reason

SIGNATURE_HEADER = "X-Dialer-Signature"
TIMESTAMP_HEADER = "X-Dialer-Timestamp"
EVENT_HEADER = "X-Dialer-Event"
SIGNATURE_TOLERANCE_SECONDS = 300

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_BASE_SECONDS = 10
BACKOFF_CAP_SECONDS = 6 * 3600
DELIVERY_TIMEOUT_SECONDS = 5
# A receiver's reply is never stored or read: this much is read only to finish the exchange.
RESPONSE_LIMIT_BYTES = 64 * 1024
# A claimed delivery is pushed this far ahead, so a crashed sender's row comes due again.
CLAIM_SECONDS = 60


def max_attempts():
    return getattr(settings, "WEBHOOK_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)


def backoff_seconds(attempts, base=DEFAULT_BACKOFF_BASE_SECONDS):
    """Seconds to wait after the `attempts`-th failed try: base · 2^(attempts-1), capped at 6 h.

    >>> [backoff_seconds(n) for n in (1, 2, 3, 4)]
    [10, 20, 40, 80]
    """
    return min(BACKOFF_CAP_SECONDS, base * 2 ** (attempts - 1))


def sign(secret, timestamp, body: bytes):
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret, timestamp, body: bytes, signature, now_seconds=None):
    """Constant-time check of a signature made by `sign`, refusing timestamps older than 5 minutes."""
    if not (secret and timestamp and signature):
        return False
    try:
        age = abs((now_seconds if now_seconds is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= SIGNATURE_TOLERANCE_SECONDS and hmac.compare_digest(sign(secret, timestamp, body), signature)


def enqueue_webhook(workspace, event, payload, now=None):
    """Record a delivery of `event` to the workspace's webhook URL; None when it has none.

    Call it inside the transaction of the change being reported.
    """
    if not workspace.webhook_url:
        return None
    body = json.loads(json.dumps({"event": event, "data": payload}, cls=DjangoJSONEncoder))
    return WebhookDelivery.objects.create(
        workspace=workspace, event=event, url=workspace.webhook_url, payload=body,
        next_attempt_at=now or timezone.now())


def call_ended_payload(call):
    return {
        "callId": str(call.id), "taskId": call.task_id, "campaignId": call.campaign_id, "attempt": call.attempt,
        "outcome": call.outcome, "from": call.from_number, "to": call.to_number, "carrier": call.carrier,
        "carrierStatus": call.carrier_status, "placedAt": call.placed_at, "answeredAt": call.answered_at,
        "endedAt": call.ended_at, "durationSeconds": call.duration_seconds,
        "cost": str(call.cost) if call.cost is not None else None, "callbackAt": call.callback_at,
        "recordingUrl": call.recording_url, "analysis": call.analysis,
    }


def enqueue_call_ended(call):
    """Queue call.ended for the call's workspace; `call.campaign.workspace` should be preloaded."""
    enqueue_webhook(call.campaign.workspace, "call.ended", call_ended_payload(call))


def _claim(now, batch):
    with transaction.atomic():
        # SKIP LOCKED so several senders share the due rows; the claim pushes next_attempt_at
        # forward so a sender that dies mid-delivery leaves the row to be retried, not lost.
        rows = list(WebhookDelivery.objects.select_for_update(skip_locked=True)
                    .filter(status=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=now)
                    .select_related("workspace").order_by("next_attempt_at")[:batch])
        if rows:
            WebhookDelivery.objects.filter(id__in=[r.id for r in rows]).update(
                next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS))
    return rows


def _post(delivery, session):
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: delivery.event,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(delivery.workspace.webhook_secret, timestamp, body),
        "User-Agent": "dialer-webhooks/1",
    }
    try:
        response = session.request("POST", delivery.url, body=body, headers=headers,
                                   total_timeout=DELIVERY_TIMEOUT_SECONDS, max_bytes=RESPONSE_LIMIT_BYTES)
    except OutboundError as exc:
        return None, exc.reason
    if response.ok:
        return response.status, ""
    return response.status, status_reason(response.status)


@transaction.atomic
def do_record_delivery_result(delivery_id, status_code, error, now):
    delivery = WebhookDelivery.objects.select_for_update().get(id=delivery_id)
    delivery.attempts += 1
    delivery.last_response_status = status_code
    delivery.last_error = error
    fields = ["attempts", "last_response_status", "last_error", "status", "next_attempt_at", "delivered_at"]
    if status_code is not None and 200 <= status_code < 300:
        delivery.status = WebhookDeliveryStatus.DELIVERED
        delivery.delivered_at = now
    elif delivery.attempts >= max_attempts():
        delivery.status = WebhookDeliveryStatus.FAILED
    else:
        base = getattr(settings, "WEBHOOK_BACKOFF_BASE_SECONDS", DEFAULT_BACKOFF_BASE_SECONDS)
        delivery.next_attempt_at = now + dt.timedelta(seconds=backoff_seconds(delivery.attempts, base))
    delivery.save(update_fields=fields)
    return delivery


def deliver_due_webhooks(now=None, batch=100) -> int:
    """Send every delivery due at `now` (one batch); returns how many were attempted."""
    now = now or timezone.now()
    rows = _claim(now, batch)
    with OutboundSession() as session:
        for delivery in rows:
            status_code, error = _post(delivery, session)
            do_record_delivery_result(delivery.id, status_code, error, now)
    return len(rows)


@transaction.atomic
def do_retry_webhook_deliveries(delivery_ids, now=None) -> int:
    """Make deliveries due now, including given-up ones (an operator fixed the receiver)."""
    return (WebhookDelivery.objects.filter(id__in=list(delivery_ids))
            .exclude(status=WebhookDeliveryStatus.DELIVERED)
            .update(status=WebhookDeliveryStatus.PENDING, next_attempt_at=now or timezone.now()))
