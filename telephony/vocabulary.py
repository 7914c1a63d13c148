"""Telephony's vocabulary: call and webhook delivery statuses, as plain enums (see
`campaigns/vocabulary.py`); `telephony.models` re-exports them."""
from django.db.models.enums import TextChoices


class CallStatus(TextChoices):
    """A call's life. The first four are live: the carrier holds the line and the call its slot lease."""

    ADMITTED = "admitted", "Admitted"  # slot leased, attempt recorded, dial job published
    DIALING = "dialing", "Dialing"  # the carrier accepted the call
    RINGING = "ringing", "Ringing"
    ANSWERED = "answered", "Answered"
    # The carrier reported the answered call over: the line and its slot are free, while its
    # outcome waits for the agent's analysis (ANALYSIS_WAIT_SECONDS at most).
    WRAP_UP = "wrapup", "Wrap-up (awaiting analysis)"
    ENDED = "ended", "Ended"


LIVE_CALL_STATUSES = [CallStatus.ADMITTED, CallStatus.DIALING, CallStatus.RINGING, CallStatus.ANSWERED]
# A call not ended yet still holds its task (its attempt's outcome is unknown) and its number in
# the organisation (an opt-out in the analysis must be heard before the number is dialed again).
OPEN_CALL_STATUSES = [*LIVE_CALL_STATUSES, CallStatus.WRAP_UP]


class WebhookDeliveryStatus(TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
