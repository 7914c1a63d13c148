"""Signals the campaigns app sends; the dialer listens to nudge the organisation's dispatcher."""
from django.dispatch import Signal

# Sent on commit whenever tasks became dialable (added, resumed, campaign updated). Args: organisation_id.
tasks_changed = Signal()
