"""Tenants, campaigns and tasks: the source of truth for who calls whom, and when.

Organisation → Workspace → (Agent, CallingNumber, ApiKey, Campaign → Task).
Calls live in `telephony`; when and whether to call is decided in `dialer`.
"""
import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q, Value

from campaigns import encryption
from campaigns.vocabulary import (  # noqa: F401 (re-exported: the models' vocabulary)
    CalleeTimezoneSource, CampaignStatus, CampaignType, Carrier, CompletionReason, HeldBy, Outcome, Platform, Priority,
    RuntimeKind, SlotMode,
    TaskStatus,
)


class Organisation(models.Model):
    name = models.CharField(max_length=200, unique=True)
    total_slots = models.PositiveIntegerField(help_text="Concurrent calls across the whole organisation (always hard).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class OrganisationMember(models.Model):
    """A staff user who belongs to one organisation sees only its data in the admin."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="members")

    def __str__(self):
        return f"{self.user} @ {self.organisation}"


def new_webhook_secret():
    return secrets.token_urlsafe(32)


class Workspace(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="workspaces")
    name = models.CharField(max_length=200)
    slots = models.PositiveIntegerField(help_text="Allocation of the organisation's slots.")
    slot_mode = models.CharField(max_length=4, choices=SlotMode.choices, default=SlotMode.HARD)
    webhook_url = models.URLField(blank=True, default="", help_text="Receives call.ended and task.finished events.")
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret, editable=False)
    compliance = models.JSONField(default=dict, blank=True,
                                  help_text="Compliance rules every campaign obeys (docs/interfaces.md, camelCase).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organisation_id", "name"]
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="workspace_name_unique_in_org")]

    def __str__(self):
        return f"{self.organisation.name} / {self.name}"


class Agent(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    prompt = models.TextField(blank=True, default="", help_text="Prompt template; ${var} placeholders come from task context.")
    outcomes = ArrayField(
        models.CharField(max_length=64), default=list, blank=True,
        help_text="Custom outcomes this agent's call analysis may produce, beyond the built-in ones.",
    )
    runtime = models.JSONField(
        default=dict, blank=True,
        help_text='Where the agent runs: {"kind": "stream", "url": "wss://..."}, {"kind": "vapi", "assistantId", '
                  '"phoneNumberId"}, {"kind": "retell", "agentId"} or {"kind": "elevenlabs", "agentId", '
                  '"phoneNumberId"}; empty = a stream to AGENT_MEDIA_STREAM_URL.')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace_id", "name"]

    def __str__(self):
        return self.name

    @property
    def runtime_kind(self):
        """stream, vapi, retell or elevenlabs (an agent without a runtime streams)."""
        return (self.runtime or {}).get("kind") or RuntimeKind.STREAM

    @property
    def custom_outcomes(self):
        """The outcomes it lists that are not built in (an agent may list built-in ones too)."""
        return [outcome for outcome in self.outcomes if outcome not in Outcome.values]


class Integration(models.Model):
    """A workspace's credentials for one voice-AI platform. The API key and webhook secret are stored
    encrypted (`campaigns.encryption`) and never shown again; `simulate` routes the platform's calls
    to the simulated carrier instead (demos, tests), and `concurrency` is the platform's limit of
    concurrent calls for this account, which the dispatcher never exceeds."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="integrations")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    webhook_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    base_url = models.URLField(max_length=300, blank=True, default="",
                               help_text="The platform's API base URL (empty = its public endpoint).")
    simulate = models.BooleanField(default=False, help_text="Place this platform's calls on the simulated carrier.")
    concurrency = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="The platform's concurrent-call limit for this account (empty = no limit of its own).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace_id", "platform"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "platform"], name="integration_unique_in_workspace"),
            models.CheckConstraint(condition=Q(concurrency__isnull=True) | Q(concurrency__gte=1),
                                   name="integration_concurrency_positive"),
        ]

    def __str__(self):
        return f"{self.get_platform_display()} ({self.workspace})"

    @property
    def api_key(self):
        return encryption.decrypt(self.api_key_encrypted)

    @property
    def webhook_secret(self):
        return encryption.decrypt(self.webhook_secret_encrypted)


class CallingNumber(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="numbers")
    number = models.CharField(max_length=16, help_text="E.164, e.g. +14155550100")
    carrier = models.CharField(max_length=32, choices=Carrier.choices, default=Carrier.SIMULATED)
    calls_per_second = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "number"], name="calling_number_unique_in_workspace"),
            models.CheckConstraint(condition=Q(number__regex=r"^\+[1-9][0-9]{6,14}$"), name="calling_number_e164"),
        ]

    def __str__(self):
        return self.number


class ApiKey(models.Model):
    """A workspace's API key. Only a SHA-256 hash is stored; the key is shown once at creation."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True, default="")
    prefix = models.CharField(max_length=12, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.workspace})"

    @property
    def is_active(self):
        return self.revoked_at is None


ALL_WEEKDAYS = [0, 1, 2, 3, 4, 5, 6]


def all_weekdays():
    return list(ALL_WEEKDAYS)


class Campaign(models.Model):
    """A set of call tasks. For realtime campaigns the settings are the defaults of each task."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    type = models.CharField(max_length=8, choices=CampaignType.choices)
    name = models.CharField(max_length=200)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="campaigns")
    calling_number = models.ForeignKey(CallingNumber, on_delete=models.PROTECT, related_name="campaigns", null=True, blank=True)
    priority = models.CharField(max_length=6, choices=Priority.choices, default=Priority.NORMAL)
    timezone = models.CharField(max_length=64, default="UTC")
    start_at = models.DateTimeField(help_text="First attempts are placed no earlier than this.")
    end_at = models.DateTimeField(null=True, blank=True, help_text="Campaign stops; pending tasks are archived.")
    calling_start = models.TimeField(help_text="Daily calling window start, local to the timezone.")
    calling_end = models.TimeField(help_text="Daily calling window end; may be earlier than start (crosses midnight).")
    calling_days = ArrayField(models.PositiveSmallIntegerField(), default=all_weekdays, blank=True,
                              help_text="Weekdays allowed, 0 = Monday … 6 = Sunday.")
    max_retries = models.PositiveIntegerField(default=0, help_text="0 = single attempt; n = n additional attempts.")
    retry_interval_ms = models.PositiveBigIntegerField(default=3_600_000)
    retry_outcomes = ArrayField(models.CharField(max_length=64), default=list, blank=True,
                                help_text="Opt-in retried outcomes (voicemail, silent, custom).")
    slots = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    slot_mode = models.CharField(max_length=4, choices=SlotMode.choices, default=SlotMode.HARD)
    status = models.CharField(max_length=9, choices=CampaignStatus.choices, default=CampaignStatus.SCHEDULED)
    paused_reason = models.CharField(max_length=200, blank=True, default="",
                                     help_text="Why the campaign paused itself (circuit breaker); blank for a manual pause.")
    breaker_tripped_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the circuit breaker last paused it: only attempts admitted since count for it again.")
    contacts_uploaded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "status"], name="campaign_workspace_status"),
            models.Index(fields=["status", "start_at"], name="campaign_status_start"),
            # Upkeep finds the open campaigns whose end has come without reading the others.
            models.Index(fields=["end_at"], name="campaign_open_by_end",
                         condition=Q(status__in=["scheduled", "running", "paused"], end_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(end_at__isnull=True) | Q(end_at__gt=models.F("start_at")), name="campaign_end_after_start"),
            models.CheckConstraint(condition=Q(slots__gte=1), name="campaign_slots_positive"),
        ]

    def __str__(self):
        return self.name

    @property
    def max_attempts(self):
        return self.max_retries + 1


class ControlSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Management command"


class ActorKind(models.TextChoices):
    API_KEY = "api_key", "API key"
    USER = "user", "User"
    COMMAND = "command", "Command"


class ControlRecord(models.Model):
    """One operator control of a campaign or one of its tasks, as it was made: the audit trail
    (`campaigns.actions.audit`). Who made it is kept as it was then (`actor_name`, `actor_prefix`), so a
    revoked key or a removed user still reads the same; `user`/`api_key` link it while they exist.
    """

    campaign = models.ForeignKey("Campaign", on_delete=models.CASCADE, related_name="control_records",
                                 db_index=False)
    task = models.ForeignKey("Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=16, help_text="pause, resume, archive or update.")
    source = models.CharField(max_length=8, choices=ControlSource.choices)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_name = models.CharField(max_length=200, blank=True, default="",
                                  help_text="The API key's name, the username, or the command's operator.")
    actor_prefix = models.CharField(max_length=12, blank=True, default="", help_text="The API key's prefix.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+")
    api_key = models.ForeignKey("ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tasks_changed = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True, help_text="e.g. {\"fields\": [...]} for an update.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        # The campaign's history, newest first, is read by id within the campaign.
        indexes = [models.Index(fields=["campaign", "id"], name="control_record_campaign")]

    def __str__(self):
        return f"{self.action} of campaign {self.campaign_id} by {self.actor_name or self.actor_kind}"


def random_tie_break():
    return secrets.randbelow(2**31)


class Task(models.Model):
    """One phone number to call. Config fields left null inherit the campaign's setting.

    `dispatch_rank` is the within-campaign attempt layer of the product's order (docs/product.md §1)ing, kept in a column
    so the candidate index serves it: batch → attempts made (first attempts before seconds);
    realtime → minus the next attempt's priority (higher priority first).
    """

    # No single-column index on the foreign keys: task_campaign_status leads with the campaign, and
    # the agent and number overrides (rare) are indexed only where set. Every index is written on
    # every status change of every task: pause, resume and the dispatcher's admissions pay for it.
    # No index on the phone either: the admin's search is a substring match no btree serves, and
    # an upload's duplicate check reads the campaign's tasks once through task_campaign_status.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    phone = models.CharField(max_length=16)
    context = models.JSONField(default=dict, blank=True)
    submitted_config = models.JSONField(default=dict, blank=True, help_text="The request body as submitted (realtime).")

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False)
    calling_number = models.ForeignKey(CallingNumber, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                       db_index=False)
    timezone = models.CharField(max_length=64, blank=True, default="")
    # The zones the workspace's legal hours are judged in, decided once at creation; empty means
    # the campaign's timezone (which an update may change). Database defaults too: bulk loads
    # that name their columns need not know these.
    callee_timezones = ArrayField(models.CharField(max_length=64), default=list, db_default=Value([]), blank=True)
    callee_timezone_source = models.CharField(max_length=12, choices=CalleeTimezoneSource.choices,
                                              default=CalleeTimezoneSource.CAMPAIGN,
                                              db_default=CalleeTimezoneSource.CAMPAIGN.value)
    calling_start = models.TimeField(null=True, blank=True)
    calling_end = models.TimeField(null=True, blank=True)
    start_after = models.DateTimeField(null=True, blank=True)
    end_after = models.DateTimeField(null=True, blank=True)
    max_attempts = models.PositiveIntegerField(null=True, blank=True)
    intervals_ms = ArrayField(models.PositiveBigIntegerField(), null=True, blank=True)
    priorities = ArrayField(models.IntegerField(), null=True, blank=True)
    retry_outcomes = ArrayField(models.CharField(max_length=64), null=True, blank=True)

    status = models.CharField(max_length=11, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    attempts_made = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    callback_at = models.DateTimeField(null=True, blank=True)
    dispatch_rank = models.IntegerField(default=0)
    tie_break = models.IntegerField(default=random_tie_break)
    last_outcome = models.CharField(max_length=64, blank=True, default="")
    final_outcome = models.CharField(max_length=64, blank=True, default="")
    completion_reason = models.CharField(max_length=16, choices=CompletionReason.choices, blank=True, default="")
    held_by = models.CharField(max_length=13, choices=HeldBy.choices, blank=True, default=HeldBy.NONE,
                               db_default=HeldBy.NONE.value)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The dispatcher's candidate scan: per campaign, in attempt-layer order.
            models.Index(fields=["campaign", "dispatch_rank", "next_attempt_at", "tie_break"],
                         name="task_dispatch_candidates", condition=Q(status="queued")),
            # Due callbacks outrank everything (docs/product.md §1, ordering).
            models.Index(fields=["callback_at"], name="task_due_callbacks",
                         condition=Q(status="queued", callback_at__isnull=False)),
            # The wake-up schedule: each campaign's next queued task in time, whatever its rank
            # (dialer/wakeups.py says why not the candidate index, though every resume pays for it).
            models.Index(fields=["campaign", "next_attempt_at"], name="task_next_attempt",
                         condition=Q(status="queued")),
            models.Index(fields=["campaign", "status", "id"], name="task_campaign_status"),
            # The dashboard's held counts and a policy change's re-timing read only the held tasks.
            models.Index(fields=["campaign", "held_by"], name="task_held", condition=Q(status="queued") & ~Q(held_by="")),
            models.Index(fields=["campaign"], name="task_ineligible", condition=Q(completion_reason="ineligible")),
            models.Index(fields=["agent"], name="task_agent", condition=Q(agent__isnull=False)),
            models.Index(fields=["calling_number"], name="task_calling_number", condition=Q(calling_number__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(phone__regex=r"^\+[1-9][0-9]{6,14}$"), name="task_phone_e164"),
            models.CheckConstraint(
                condition=Q(end_after__isnull=True) | Q(start_after__isnull=True) | Q(end_after__gt=models.F("start_after")),
                name="task_end_after_start"),
            models.CheckConstraint(
                condition=~Q(status__in=["completed", "archived"]) | ~Q(completion_reason=""),
                name="task_terminal_has_reason"),
        ]

    def __str__(self):
        return f"{self.phone} ({self.status})"


class DoNotCall(models.Model):
    """The organisation's do-not-call list, checked right before every dial."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="do_not_call")
    phone = models.CharField(max_length=16)
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "do-not-call entry"
        verbose_name_plural = "do-not-call list"
        constraints = [
            models.UniqueConstraint(fields=["organisation", "phone"], name="dnc_unique_in_org"),
            models.CheckConstraint(condition=Q(phone__regex=r"^\+[1-9][0-9]{6,14}$"), name="dnc_phone_e164"),
        ]

    def __str__(self):
        return self.phone


class ContactImport(models.Model):
    """One CSV upload: what was imported and every problem found, for the error report."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=255, blank=True, default="")
    rows_total = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, column, reason}], complete.")
    skip_invalid = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class IdempotencyRecord(models.Model):
    """The first response to a request carrying an Idempotency-Key, replayed on retries."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="idempotency_key_unique")]


class ControlAction(models.TextChoices):
    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"
    ARCHIVE = "archive", "Archive"
    UPDATE = "update", "Update"
    END = "end", "End time reached"


class CampaignControl(models.Model):
    """The per-task work of a campaign's controls, done in batches off the request.

    At most one is unfinished per campaign: a control arriving while one runs takes it over
    (`campaigns.actions.controls`). The work itself is held by the control's parts
    (`CampaignControlPart`), contiguous slices of the campaign's task ids walked by concurrent
    jobs; the control finishes (`finished_at`) when the last of them does
    (`campaigns.actions.control_jobs`).
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="controls")
    action = models.CharField(max_length=7, choices=ControlAction.choices, help_text="The latest control.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign"], condition=Q(finished_at__isnull=True),
                                    name="one_unfinished_control_per_campaign"),
        ]
        indexes = [models.Index(fields=["updated_at"], name="control_unfinished",
                                condition=Q(finished_at__isnull=True))]

    def __str__(self):
        return f"{self.action} of campaign {self.campaign_id}"


# Past every task id: the upper end of a control's last part.
LAST_TASK_ID = 2**63 - 1


class CampaignControlPart(models.Model):
    """One slice of a control's work: the campaign's tasks with `after` < id <= `upto`.

    `flip` is the status change still to apply to the slice's tasks (a pause, resume or archive)
    and `flip_ranges` the task statuses it has still to walk, the first under way;
    `retime_ranges` the task statuses whose tasks still need re-timing under the current settings
    (none: nothing to re-time). Each walk keeps a cursor (the last task id done in the first of its
    statuses, `after` before the first) so a job that was lost resumes where it stopped, and a
    status already walked is never read again. `phase`, `done` and `total` are the slice's
    progress (`total` is counted by the job, before its first batch of a phase); `updated_at`
    says when a batch last moved it (beat re-publishes a slice that stalled).
    """

    control = models.ForeignKey(CampaignControl, on_delete=models.CASCADE, related_name="parts")
    after = models.BigIntegerField(default=0)
    upto = models.BigIntegerField(default=LAST_TASK_ID)
    flip = models.CharField(max_length=7, choices=ControlAction.choices, blank=True, default="")
    flip_ranges = ArrayField(models.CharField(max_length=11), default=list, blank=True)
    flip_cursor = models.BigIntegerField(default=0)
    retime_ranges = ArrayField(models.CharField(max_length=11), default=list, blank=True)
    retime_cursor = models.BigIntegerField(default=0)
    phase = models.CharField(max_length=7, choices=ControlAction.choices, blank=True, default="")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The parts with work left: a flip or a re-timing still to do.
    WITH_WORK = Q(flip__gt="") | ~Q(retime_ranges=[])

    class Meta:
        ordering = ["control", "after"]
        constraints = [models.CheckConstraint(condition=Q(after__lt=models.F("upto")), name="control_part_not_empty")]

    @property
    def has_work(self):
        return bool(self.flip or self.retime_ranges)

    def __str__(self):
        return f"part ({self.after}, {self.upto}] of control {self.control_id}"
