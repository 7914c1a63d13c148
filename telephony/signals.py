"""Signals the telephony app sends; it imports nothing from the dialer."""
from django.dispatch import Signal

# Sent once per call, inside the transaction that ends it.
# Args: call_id, outcome, ended_at, callback_at (or None), and the call's task_id, attempt,
# lease_token and organisation_id (so the receiver need not read the call again); slot_freed
# (True after wrap-up: call_line_freed already gave the slot back, lease_token is None) and
# to_number.
call_ended = Signal()

# Sent when the carrier reports an answered call over while its outcome still waits for the
# agent's analysis (the call goes to wrap-up), inside the transaction that records it: the line
# is free, so its slot is. call_ended follows once the analysis arrives, with lease_token None.
# Args: call_id, organisation_id, lease_token.
call_line_freed = Signal()

# Sent when the carrier would not take an admitted call for a reason not about the callee (429,
# 5xx, timeout, concurrency limit), inside the transaction that deletes its Call row: the call
# never existed for the carrier and is not an attempt.
# Args: call_id, task_id, attempt, organisation_id, lease_token, is_callback, retry_after (the
# carrier's Retry-After in seconds, or None), reason.
call_not_placed = Signal()

# Sent when the workspace's pre-dial check answered that the callee is not eligible, inside the
# transaction that deletes the call's row (it was never placed). Args: as call_not_placed.
call_ineligible = Signal()
