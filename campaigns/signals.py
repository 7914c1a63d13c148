"""Signals the campaigns app sends; the dialer listens to nudge the organisation's dispatcher."""
from django.dispatch import Signal

# Sent on commit whenever tasks became dialable (added, resumed, campaign updated). Args:
# organisation_id; due_at, when the sender knows it, the instant the first of them is due (a
# control's batch of tasks all due later needs a wake-up, not a dispatcher run now).
tasks_changed = Signal()
