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
    """The carrier would not place the call (bad number, account problem, rejected request)."""


class Provider(abc.ABC):
    """A carrier. Placing returns at once; the call's life arrives later as events.

    Providers raise on refusal, never return error values; `parse_webhook` returns normalised
    events (`telephony.rules.NormalizedEvent`) that `telephony.events.handle_event` applies.
    """

    name: str

    @abc.abstractmethod
    def place_call(self, request: PlaceCallRequest) -> str:
        """Ask the carrier to place the call; returns the carrier's call id."""

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
