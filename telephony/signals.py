"""Signals the telephony app sends; it imports nothing from the dialer."""
from django.dispatch import Signal

# Sent once per call, inside the transaction that ends it.
# Args: call_id, outcome, ended_at, callback_at (or None).
call_ended = Signal()
