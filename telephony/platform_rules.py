"""Pure rules of the voice-AI platforms: how each one's end of a call maps onto our outcomes.

No ORM, no Redis, no clock. A platform reports why a call ended in its own words (Vapi's
`endedReason`, Retell's `disconnection_reason`, ElevenLabs' webhook type and failure reason);
`PlatformEnd` says what that means for us: the carrier status it amounts to, whether a machine
answered, an outcome the platform itself decided (silent), or that the call was never placed at
all (the platform's concurrency limit: not an attempt, retried soon). A reason we do not know is
`failed`, and the caller keeps it verbatim on the call.
"""
import hmac
from dataclasses import dataclass

from campaigns.vocabulary import Outcome
from telephony.rules import CarrierStatus

MACHINE = "machine"  # `answered_by` of a call a voicemail took (telephony.rules.is_machine)


@dataclass(frozen=True)
class PlatformEnd:
    carrier_status: str
    answered_by: str = ""
    outcome: str = ""
    not_placed: bool = False
    known: bool = True


ANSWERED = PlatformEnd(str(CarrierStatus.COMPLETED))
VOICEMAIL = PlatformEnd(str(CarrierStatus.COMPLETED), answered_by=MACHINE)
SILENT = PlatformEnd(str(CarrierStatus.COMPLETED), outcome=str(Outcome.SILENT))
NO_ANSWER = PlatformEnd(str(CarrierStatus.NO_ANSWER))
BUSY = PlatformEnd(str(CarrierStatus.BUSY))
FAILED = PlatformEnd(str(CarrierStatus.FAILED))
NOT_PLACED = PlatformEnd(str(CarrierStatus.FAILED), not_placed=True)
UNKNOWN = PlatformEnd(str(CarrierStatus.FAILED), known=False)

VAPI_REASONS = {
    "customer-did-not-answer": NO_ANSWER,
    "customer-busy": BUSY,
    "voicemail": VOICEMAIL,
    "silence-timed-out": SILENT,
    "call.start.error-subscription-concurrency-limit-reached": NOT_PLACED,
    "twilio-failed-to-connect-call": FAILED,
    "vonage-failed-to-connect-call": FAILED,
    "twilio-reported-customer-misdialed": FAILED,
    "vonage-rejected": FAILED,
    "manually-canceled": NO_ANSWER,
}
VAPI_ANSWERED_PREFIXES = ("customer-ended-call", "assistant-ended-call", "assistant-said-end-call-phrase",
                          "assistant-forwarded-call", "exceeded-max-duration")
VAPI_FAILED_MARKS = ("failed-to-connect", "providerfault", "sip-")


def vapi_end(ended_reason):
    """What Vapi's `endedReason` means for us.

    >>> vapi_end("customer-busy").carrier_status
    'busy'
    >>> vapi_end("assistant-ended-call-after-message-spoken") == ANSWERED
    True
    >>> vapi_end("call.in-progress.error-sip-outbound-call-failed-to-connect") == FAILED
    True
    >>> vapi_end("something-new").known
    False
    """
    reason = ended_reason or ""
    if reason in VAPI_REASONS:
        return VAPI_REASONS[reason]
    if reason.startswith(VAPI_ANSWERED_PREFIXES):
        return ANSWERED
    if any(mark in reason for mark in VAPI_FAILED_MARKS):
        return FAILED
    return UNKNOWN


RETELL_REASONS = {
    "dial_no_answer": NO_ANSWER,
    "dial_busy": BUSY,
    "dial_failed": FAILED,
    "invalid_destination": FAILED,
    "voicemail_reached": VOICEMAIL,
    "inactivity": SILENT,
    "user_hangup": ANSWERED,
    "agent_hangup": ANSWERED,
    "call_transfer": ANSWERED,
    "transfer_bridged": ANSWERED,
    "max_duration_reached": ANSWERED,
    "user_requested_callback": ANSWERED,
    "concurrency_limit_reached": NOT_PLACED,
    "no_concurrency_fallback": NOT_PLACED,
}


def retell_end(disconnection_reason, in_voicemail=False):
    """What Retell's `disconnection_reason` (and its analysis' `in_voicemail`) means for us.

    >>> retell_end("dial_no_answer").carrier_status
    'no-answer'
    >>> retell_end("user_hangup", in_voicemail=True) == VOICEMAIL
    True
    >>> retell_end("error_llm_websocket_open") == FAILED
    True
    """
    reason = disconnection_reason or ""
    if in_voicemail:
        return VOICEMAIL
    if reason in RETELL_REASONS:
        return RETELL_REASONS[reason]
    if reason.startswith("error_"):
        return FAILED
    return UNKNOWN


ELEVENLABS_FAILURES = {"no-answer": NO_ANSWER, "busy": BUSY, "unknown": FAILED}


def elevenlabs_end(webhook_type, failure_reason="", status="", termination_reason=""):
    """What an ElevenLabs webhook that ends a conversation means for us: `call_initiation_failure`
    by its `failure_reason`, `post_call_transcription` answered (a voicemail when its status or
    termination reason says so).

    >>> elevenlabs_end("call_initiation_failure", "busy").carrier_status
    'busy'
    >>> elevenlabs_end("post_call_transcription", status="done") == ANSWERED
    True
    >>> elevenlabs_end("post_call_transcription", termination_reason="Voicemail detected") == VOICEMAIL
    True
    """
    if webhook_type == "call_initiation_failure":
        return ELEVENLABS_FAILURES.get(failure_reason or "", UNKNOWN)
    if webhook_type == "post_call_transcription":
        if status == "voicemail" or "voicemail" in (termination_reason or "").lower():
            return VOICEMAIL
        if status == "failed":
            return FAILED
        return ANSWERED
    return UNKNOWN


def hmac_timestamp_valid(timestamp, now_seconds, tolerance_seconds):
    """Whether a signature's timestamp (seconds, or milliseconds when that large) is within tolerance.

    >>> hmac_timestamp_valid("1000", 1100, 300), hmac_timestamp_valid("1000000", 1100, 300)
    (True, False)
    >>> hmac_timestamp_valid("1000000000000", 1000000000.5, 300), hmac_timestamp_valid("soon", 0, 300)
    (True, False)
    """
    try:
        stamp = float(timestamp)
    except (TypeError, ValueError):
        return False
    if stamp > 1e11:  # milliseconds since the epoch
        stamp /= 1000
    return abs(now_seconds - stamp) <= tolerance_seconds


def signatures_match(expected, received):
    """Constant-time comparison of two signature strings (empty never matches)."""
    return bool(expected) and bool(received) and hmac.compare_digest(str(expected), str(received))
