"""What an ended attempt's outcome means for its task: retry when, or finish why. Pure.

docs/product.md §1, Outcomes and retries:

| outcome                          | retried?                          |
|----------------------------------|-----------------------------------|
| no-answer, busy, failed          | always, after the retry interval  |
| callback                         | always, at the requested time     |
| voicemail, silent, custom        | only if listed in retry outcomes  |
| connected, opt-out               | never                             |
"""
import datetime as dt
from dataclasses import dataclass

from campaigns.vocabulary import CompletionReason, Outcome, TaskStatus
from dialer.scheduling import next_attempt_after
from dialer.windows import next_opening

# The outcome classes, defined here only: validation (API, admin, CSV) and the schema read them.
AUTO_RETRIED = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED, Outcome.CALLBACK})
OPT_IN_RETRIED = frozenset({Outcome.VOICEMAIL, Outcome.SILENT})
NEVER_RETRIED = frozenset({Outcome.CONNECTED, Outcome.OPT_OUT})


def in_outcome_order(outcomes):
    """Built-in outcomes in their declared order, for forms and messages.

    >>> in_outcome_order(OPT_IN_RETRIED)
    ['voicemail', 'silent']
    """
    return [outcome.value for outcome in Outcome if outcome in outcomes]

_NEVER_RETRIED_REASONS = {Outcome.CONNECTED: CompletionReason.CONNECTED, Outcome.OPT_OUT: CompletionReason.OPT_OUT}


@dataclass(frozen=True)
class AttemptDecision:
    """The task's next step after an attempt.

    Retry: `next_attempt_at` is set (inside the window, before the end), `is_callback` says it is
    the person's requested time, the final fields are blank and `terminal_status` is None.
    Finish: `final_outcome`, `completion_reason` (a CompletionReason) and `terminal_status`
    (`completed`, or `archived` when the end cut the task short) are set.
    """

    retry: bool
    next_attempt_at: dt.datetime | None
    final_outcome: str
    completion_reason: str
    is_callback: bool
    terminal_status: str | None


def is_retried(outcome, retry_outcomes):
    """Whether `outcome` earns another attempt under `retry_outcomes` (the opt-in list).

    >>> is_retried("busy", frozenset()), is_retried("voicemail", frozenset()), is_retried("voicemail", {"voicemail"})
    (True, False, True)
    """
    if outcome in NEVER_RETRIED:
        return False
    return outcome in AUTO_RETRIED or outcome in retry_outcomes


def _finish(outcome, reason, status=TaskStatus.COMPLETED):
    return AttemptDecision(retry=False, next_attempt_at=None, final_outcome=str(outcome),
                           completion_reason=reason, is_callback=False, terminal_status=status)


def decide_after_attempt(config, attempts_made, outcome, ended_at, callback_at=None):
    """Decide after attempt number `attempts_made` (1-based, the one just ended) ended at `ended_at`.

    A `callback` with a requested time retries at that time if it is inside the window (and after
    the start), else at the window's next opening after it; without a time it waits the retry
    interval like a no-answer. A retry that could only happen at or after the end archives the task
    (reason `ended`). E.g. window 10:00–18:00, intervals (1 h,), max 2 attempts: `busy` at Mon 17:30
    after attempt 1 → retry Tue 10:00; `busy` after attempt 2 → completed, `exhausted`; `voicemail`
    not listed → completed, `outcome`; `connected` → completed, `connected`.
    """
    if outcome in NEVER_RETRIED:
        return _finish(outcome, _NEVER_RETRIED_REASONS[outcome])
    if not is_retried(outcome, config.retry_outcomes):
        return _finish(outcome, CompletionReason.NOT_RETRIED)
    if attempts_made >= config.max_attempts:
        return _finish(outcome, CompletionReason.EXHAUSTED)
    is_callback = outcome == Outcome.CALLBACK and callback_at is not None
    if is_callback:
        next_at = next_opening(config.window, max(callback_at, ended_at, config.start_after))
        if config.end_at is not None and next_at >= config.end_at:
            next_at = None
    else:
        next_at = next_attempt_after(config, attempts_made, ended_at)
    if next_at is None:
        return _finish(outcome, CompletionReason.ENDED, TaskStatus.ARCHIVED)
    return AttemptDecision(retry=True, next_attempt_at=next_at, final_outcome="", completion_reason="",
                           is_callback=is_callback, terminal_status=None)


def not_placed_retry_delay(refusals, retry_after, base_seconds, cap_seconds):
    """Seconds until a task whose call the carrier would not take (429, 5xx, timeout) is tried
    again. Not an attempt, so not the retry interval: a backoff doubling from `base_seconds` with
    each consecutive refusal (`refusals` counts this one), or the carrier's Retry-After when it
    sent one; never more than `cap_seconds`.

    >>> [not_placed_retry_delay(n, None, 1, 60) for n in (1, 2, 3, 8)]
    [1.0, 2.0, 4.0, 60.0]
    >>> not_placed_retry_delay(1, 5, 1, 60), not_placed_retry_delay(1, 600, 1, 60)
    (5.0, 60.0)
    """
    if retry_after is not None:
        return float(min(max(retry_after, 0), cap_seconds))
    return float(min(base_seconds * 2 ** min(max(refusals - 1, 0), 30), cap_seconds))
