"""Calls (one per attempt), the raw carrier events behind them, and outbound webhook deliveries."""
import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from telephony.vocabulary import (  # noqa: F401 (re-exported: the models' vocabulary)
    LIVE_CALL_STATUSES, OPEN_CALL_STATUSES, CallStatus, WebhookDeliveryStatus,
)


class Call(models.Model):
    """One attempt of a task. Its id is the idempotency key sent to the carrier."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of their own for task and campaign: `call_attempt_unique_per_task` and the campaign's
    # indexes below start with them, and every index costs each non-HOT update of a call an entry.
    task = models.ForeignKey("campaigns.Task", on_delete=models.CASCADE, related_name="calls", db_index=False)
    # Denormalised so live-call constraints and dashboard counts need no join.
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="calls", db_index=False)
    organisation = models.ForeignKey("campaigns.Organisation", on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveIntegerField()
    agent = models.ForeignKey("campaigns.Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    carrier = models.CharField(max_length=32)
    carrier_call_id = models.CharField(max_length=128, null=True, blank=True)
    from_number = models.CharField(max_length=16)
    to_number = models.CharField(max_length=16)
    status = models.CharField(max_length=8, choices=CallStatus.choices, default=CallStatus.ADMITTED)
    carrier_status = models.CharField(max_length=32, blank=True, default="")
    outcome = models.CharField(max_length=64, blank=True, default="")
    lease_token = models.BigIntegerField(null=True, blank=True, help_text="Fencing token of the slot lease.")
    is_callback = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the attempt was admitted.")
    placed_at = models.DateTimeField(null=True, blank=True)
    ringing_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    recording_url = models.URLField(max_length=500, blank=True, default="")
    transcript = models.TextField(blank=True, default="")
    analysis = models.JSONField(default=dict, blank=True)
    callback_at = models.DateTimeField(null=True, blank=True, help_text="Callback time the person asked for.")
    prompt = models.TextField(blank=True, default="", help_text="The agent's prompt rendered with the task's context.")
    answered_by = models.CharField(max_length=32, blank=True, default="",
                                   help_text="Answering-machine detection result (human, machine_*, fax, unknown).")
    carrier_ended_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the carrier reported an answered call completed; the call is in wrap-up (its slot free) "
                  "until the agent's analysis arrives or ANALYSIS_WAIT_SECONDS pass.")
    analysis_received_at = models.DateTimeField(null=True, blank=True)
    # The rules the attempt was admitted under, as the dispatcher judged them: later updates,
    # pauses and archives change the task's config, never what this call was allowed to do.
    # Null on calls admitted before they were recorded.
    window_start = models.TimeField(null=True, blank=True, help_text="Calling window start it was admitted in.")
    window_end = models.TimeField(null=True, blank=True, help_text="Calling window end it was admitted in.")
    window_timezone = models.CharField(max_length=64, blank=True, default="",
                                       help_text="IANA zone the calling window was judged in.")
    window_days = ArrayField(models.PositiveSmallIntegerField(), null=True, blank=True,
                             help_text="Weekdays of the calling window (0 = Monday).")
    start_after = models.DateTimeField(null=True, blank=True, help_text="Earliest instant the task could be dialed.")
    end_at = models.DateTimeField(null=True, blank=True, help_text="The task's end when admitted; null for none.")
    max_attempts = models.PositiveIntegerField(null=True, blank=True, help_text="The task's attempt limit when admitted.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # finalise_overdue_calls: calls in wrap-up, waiting for the agent's analysis.
            models.Index(fields=["carrier_ended_at"], name="call_awaiting_analysis", condition=Q(status="wrapup")),
            models.Index(fields=["campaign", "outcome"], name="call_campaign_outcome"),
            models.Index(fields=["campaign", "created_at"], name="call_campaign_created"),
            # The workspace's frequency cap: a number's recent calls (the campaign joins to the workspace).
            models.Index(fields=["to_number", "created_at"], name="call_number_recent"),
            models.Index(fields=["organisation", "status"], name="call_live",
                         condition=Q(status__in=LIVE_CALL_STATUSES)),
            # Upkeep: live calls by age (stranded admissions, calls live for suspiciously long).
            models.Index(fields=["created_at"], name="call_live_by_age", condition=Q(status__in=LIVE_CALL_STATUSES)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["task", "attempt"], name="call_attempt_unique_per_task"),
            # Invariant 4, with room to spare: a task never has two calls not ended (live or in
            # wrap-up) …
            models.UniqueConstraint(fields=["task"], condition=Q(status__in=OPEN_CALL_STATUSES),
                                    name="call_one_open_per_task"),
            # … and one organisation never two to the same number.
            models.UniqueConstraint(fields=["organisation", "to_number"], condition=Q(status__in=OPEN_CALL_STATUSES),
                                    name="call_one_open_per_number_in_org"),
            models.UniqueConstraint(fields=["carrier", "carrier_call_id"], condition=Q(carrier_call_id__isnull=False),
                                    name="call_carrier_id_unique"),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="call_attempt_positive"),
            models.CheckConstraint(condition=~Q(status="ended") | ~Q(outcome=""), name="call_ended_has_outcome"),
        ]

    def __str__(self):
        return f"{self.id} → {self.to_number} #{self.attempt} ({self.status})"

    @property
    def is_live(self):
        return self.status in LIVE_CALL_STATUSES


class CallEvent(models.Model):
    """Every carrier or agent event as received, for audit; `kind` is the normalised event."""

    # No index of its own: `call_event_call` starts with it.
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events", null=True, blank=True,
                             db_index=False)
    carrier = models.CharField(max_length=32)
    carrier_call_id = models.CharField(max_length=128, blank=True, default="")
    kind = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    applied = models.BooleanField(default=False, help_text="False when a duplicate or late event changed nothing.")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [models.Index(fields=["call", "received_at"], name="call_event_call")]


class WebhookDelivery(models.Model):
    """An outbound webhook to the customer, retried with backoff from the database."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("campaigns.Workspace", on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=32)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=9, choices=WebhookDeliveryStatus.choices, default=WebhookDeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["next_attempt_at"], name="webhook_due", condition=Q(status="pending"))]
