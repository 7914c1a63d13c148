"""Telephony's vocabulary: call and webhook delivery statuses, as plain enums (see
`campaigns/vocabulary.py`); `telephony.models` re-exports them."""
from django.db.models.enums import TextChoices


class CallStatus(TextChoices):
    """A call's life. The first four are live: the call holds a slot lease."""

    ADMITTED = "admitted", "Admitted"  # slot leased, attempt recorded, dial job published
    DIALING = "dialing", "Dialing"  # the carrier accepted the call
    RINGING = "ringing", "Ringing"
    ANSWERED = "answered", "Answered"
    ENDED = "ended", "Ended"


LIVE_CALL_STATUSES = [CallStatus.ADMITTED, CallStatus.DIALING, CallStatus.RINGING, CallStatus.ANSWERED]


class WebhookDeliveryStatus(TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
