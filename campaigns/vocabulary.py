"""The campaigns' vocabulary: statuses, outcomes, reasons and kinds, as plain enums.

The rule modules (`dialer/windows.py`, `scheduling.py`, `retry_policy.py`, `lifecycle.py`, ...)
import these and nothing of the models; `campaigns.models` re-exports them for everyone else.
"""
from django.db.models.enums import TextChoices


class SlotMode(TextChoices):
    HARD = "hard", "Hard"
    SOFT = "soft", "Soft"


class Outcome(TextChoices):
    """The built-in outcomes; agents may add custom ones (see docs/product.md §1)."""

    CONNECTED = "connected", "Connected"
    NO_ANSWER = "no-answer", "No answer"
    BUSY = "busy", "Busy"
    FAILED = "failed", "Failed"
    CALLBACK = "callback", "Callback"
    VOICEMAIL = "voicemail", "Voicemail"
    SILENT = "silent", "Silent"
    OPT_OUT = "opt-out", "Opt-out"


class Carrier(TextChoices):
    SIMULATED = "simulated", "Simulated"
    TWILIO = "twilio", "Twilio"


class RuntimeKind(TextChoices):
    """Where an agent runs: its own media stream behind the calling number's carrier, or a voice-AI
    platform that places the call itself."""

    STREAM = "stream", "Media stream"
    VAPI = "vapi", "Vapi"
    RETELL = "retell", "Retell"
    ELEVENLABS = "elevenlabs", "ElevenLabs"


class Platform(TextChoices):
    """The voice-AI platforms a workspace may hold credentials for (the runtimes that are not a stream)."""

    VAPI = "vapi", "Vapi"
    RETELL = "retell", "Retell"
    ELEVENLABS = "elevenlabs", "ElevenLabs"


class CampaignType(TextChoices):
    BATCH = "batch", "Batch"
    REALTIME = "realtime", "Realtime"


class Priority(TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"


class CampaignStatus(TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


class TaskStatus(TextChoices):
    QUEUED = "queued", "Queued"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class CompletionReason(TextChoices):
    CONNECTED = "connected", "Connected"
    NOT_RETRIED = "outcome", "Outcome not retried"
    EXHAUSTED = "exhausted", "Attempts used up"
    ARCHIVED = "archived", "Archived"
    ENDED = "ended", "End time reached"
    DNC = "dnc", "Do-not-call"
    OPT_OUT = "opt-out", "Opted out"
    # The workspace's pre-dial check answered not eligible, or its legal hours never open in all
    # of the callee's zones at once (docs/product.md §1, compliance).
    INELIGIBLE = "ineligible", "Not eligible (compliance)"


class HeldBy(TextChoices):
    """Why a queued task waits past its own calling window: a workspace compliance rule held it."""

    NONE = "", "Not held"
    LEGAL_HOURS = "legal_hours", "Legal hours"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap"


class CalleeTimezoneSource(TextChoices):
    """Where the zones the callee's legal hours are judged in came from, decided at task creation."""

    EXPLICIT = "explicit", "Given with the task"
    NUMBER = "number", "The number's only timezone"
    NUMBER_ZONES = "number_zones", "All the number's timezones"
    CAMPAIGN = "campaign", "The campaign's timezone"
