"""The carrier interface every provider implements, and what it takes and returns."""
import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlaceCallRequest:
    """Everything a carrier needs to place one call. `idempotency_key` is our Call id."""

    idempotency_key: str
    to_number: str
    from_number: str
    agent_id: int | None
    prompt: str
    context: dict
    attempt: int
    status_callback_url: str
    extra: dict = field(default_factory=dict)


class CarrierRefused(Exception):
    """The carrier would not place the call. Raised as is, it counts as a `failed` attempt."""


class CallRejected(CarrierRefused):
    """A refusal about the callee or the request (an invalid number, a 4xx other than 429): the
    attempt was made and failed, and the retry policy decides what comes next."""


class CarrierUnavailable(CarrierRefused):
    """A refusal that is not about the callee: rate limited (429), a 5xx, a timeout, a lost
    connection, a concurrency limit. No call was placed and no attempt is counted; the task is
    tried again soon. `retry_after` is the carrier's Retry-After in seconds, or None."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class Provider(abc.ABC):
    """A carrier. Placing returns at once; the call's life arrives later as events.

    Providers raise on refusal (`CallRejected` or `CarrierUnavailable`), never return error
    values, and are called from several threads at once (a dial job places its calls
    concurrently); `parse_webhook` returns normalised events (`telephony.rules.NormalizedEvent`)
    that `telephony.events.handle_event` applies.
    """

    name: str

    @abc.abstractmethod
    def place_call(self, request: PlaceCallRequest) -> str:
        """Ask the carrier to place the call; returns the carrier's call id."""

    def warm_up(self) -> None:
        """Load now, at worker start, what the first call would load (SDK modules); no request is sent."""

    @abc.abstractmethod
    def fetch_status(self, carrier_call_id: str, call_id: str | None = None):
        """The call's current state as a NormalizedEvent, or None when the carrier never heard of it."""

    @abc.abstractmethod
    def hang_up(self, carrier_call_id: str) -> None:
        """End the call at the carrier (no error when it already ended)."""

    @abc.abstractmethod
    def verify_webhook(self, request) -> bool:
        """Whether a Django request really comes from this carrier."""

    @abc.abstractmethod
    def parse_webhook(self, request) -> list:
        """The normalised events a verified webhook request carries."""
