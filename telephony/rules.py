"""Pure telephony rules: event ordering, carrier statuses to outcomes, the carrier/agent merge, prompts.

No ORM, no Redis, no clock: every function takes plain values (and `now` when it needs time).
"""
import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from campaigns.vocabulary import Outcome


class EventKind(StrEnum):
    """A normalised call event, whatever carrier (or the agent runtime) sent it."""

    INITIATED = "initiated"  # the carrier accepted the call and is dialling
    RINGING = "ringing"
    ANSWERED = "answered"
    MACHINE_DETECTED = "machine_detected"  # answering-machine detection finished (human or machine)
    COMPLETED = "completed"  # terminal at the carrier; `carrier_status` says how
    ANALYSIS = "analysis"  # the agent runtime's post-call result
    NOT_PLACED = "not_placed"  # a platform never placed the call after all (its concurrency limit)


class CarrierStatus(StrEnum):
    """The carrier's terminal statuses (Twilio's names; other carriers map onto them)."""

    COMPLETED = "completed"  # answered, then hung up
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"


UNANSWERED_OUTCOMES = {
    CarrierStatus.NO_ANSWER: Outcome.NO_ANSWER,
    CarrierStatus.BUSY: Outcome.BUSY,
    CarrierStatus.FAILED: Outcome.FAILED,
    # Canceled = we or the carrier gave up before anyone picked up: the person did not answer.
    CarrierStatus.CANCELED: Outcome.NO_ANSWER,
}

# Call statuses in the only order they may advance; `wrapup` and `ended` come by the terminal path.
STATUS_RANK = {"admitted": 0, "dialing": 1, "ringing": 2, "answered": 3, "wrapup": 4, "ended": 5}
STATUS_AFTER_EVENT = {
    EventKind.INITIATED: "dialing",
    EventKind.RINGING: "ringing",
    EventKind.ANSWERED: "answered",
    EventKind.MACHINE_DETECTED: "answered",
}


@dataclass(frozen=True)
class NormalizedEvent:
    """One event about one call, as every provider parses it and `telephony.events.handle_event` takes it.

    `call_id` is our Call id when the carrier echoes it (callback URL, simulator state); it lets an
    event that overtakes the dial job's bookkeeping still find its call. `raw` is stored for audit.
    """

    carrier: str
    kind: EventKind
    carrier_call_id: str = ""
    call_id: str | None = None
    carrier_status: str = ""
    occurred_at: dt.datetime | None = None
    duration_seconds: int | None = None
    cost: str | None = None
    answered_by: str = ""
    recording_url: str = ""
    analysis: dict | None = None
    raw: dict = field(default_factory=dict)

    @property
    def is_terminal(self):
        return self.kind == EventKind.COMPLETED


def status_after(current, kind):
    """The call status after a non-terminal event, or None when the event would move it backwards.

    >>> status_after("dialing", EventKind.RINGING)
    'ringing'
    >>> status_after("answered", EventKind.RINGING) is None  # a late ringing changes nothing
    True
    """
    target = STATUS_AFTER_EVENT[kind]
    if STATUS_RANK[target] < STATUS_RANK[current]:
        return None
    if STATUS_RANK[target] == STATUS_RANK[current] and kind != EventKind.MACHINE_DETECTED:
        return None
    return target


def is_machine(answered_by):
    """Twilio's AnsweredBy values: human, unknown, fax, machine_start, machine_end_beep/silence/other."""
    return answered_by.startswith("machine") or answered_by == "fax"


def carrier_answered(carrier_status, answered):
    """Whether a person (or machine) picked up: the carrier says completed, or we saw it answered."""
    return carrier_status == CarrierStatus.COMPLETED or (answered and carrier_status not in UNANSWERED_OUTCOMES)


def needs_analysis(carrier_status, answered, answered_by):
    """True when a terminal carrier event should wait for the agent's analysis before finishing."""
    return carrier_answered(carrier_status, answered) and not is_machine(answered_by)


def merge_outcome(carrier_status, answered, answered_by, agent_outcome="", agent_callback_at=None):
    """The call's final (outcome, callback_at) from the carrier's terminal status and the agent's analysis.

    Carrier not answered: its status decides (canceled counts as no-answer); a machine → voicemail.
    Answered: the agent's outcome wins; none → connected.

    >>> merge_outcome("completed", True, "human", "callback", "T")
    ('callback', 'T')
    >>> merge_outcome("completed", True, "", "")
    ('connected', None)
    >>> merge_outcome("canceled", False, "")
    ('no-answer', None)
    >>> merge_outcome("completed", True, "machine_end_beep", "connected")
    ('voicemail', None)
    """
    if not carrier_answered(carrier_status, answered):
        return str(UNANSWERED_OUTCOMES.get(carrier_status, Outcome.FAILED)), None
    if is_machine(answered_by):
        return str(Outcome.VOICEMAIL), None
    if not agent_outcome:
        return str(Outcome.CONNECTED), None
    if agent_outcome == Outcome.CALLBACK:
        return str(Outcome.CALLBACK), agent_callback_at
    return agent_outcome, None


def analysis_overdue(carrier_ended_at, now, wait_seconds):
    """Whether an answered call the carrier completed has waited long enough for its analysis.

    >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> analysis_overdue(t, t + dt.timedelta(seconds=30), 30)
    True
    """
    return now - carrier_ended_at >= dt.timedelta(seconds=wait_seconds)
