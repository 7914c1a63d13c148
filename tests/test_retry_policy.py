"""The outcome table, callbacks and attempt limits (invariant 6)."""
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.models import CompletionReason, TaskStatus
from dialer.retry_policy import AUTO_RETRIED, NEVER_RETRIED, OPT_IN_RETRIED, AttemptDecision, decide_after_attempt
from dialer.scheduling import TaskConfig
from dialer.windows import CallingWindow, is_open

UTC = dt.timezone.utc
MONDAY = dt.datetime(2024, 6, 3, tzinfo=UTC)


def at(day, hour, minute=0):
    return MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def config(**overrides):
    values = dict(agent_id=1, calling_number_id=2, window=CallingWindow(dt.time(10), dt.time(18), "UTC"),
                  start_after=at(0, 0), end_at=None, max_attempts=3, intervals_ms=(3_600_000, 3_600_000),
                  priorities=None, retry_outcomes=frozenset())
    values.update(overrides)
    return TaskConfig(**values)


def retry_at(instant, is_callback=False):
    return AttemptDecision(retry=True, next_attempt_at=instant, final_outcome="", completion_reason="",
                           is_callback=is_callback, terminal_status=None)


def finished(outcome, reason, status=TaskStatus.COMPLETED):
    return AttemptDecision(retry=False, next_attempt_at=None, final_outcome=outcome, completion_reason=reason,
                           is_callback=False, terminal_status=status)


def test_the_outcome_table_is_exactly_designs():
    assert AUTO_RETRIED == {"no-answer", "busy", "failed", "callback"}
    assert OPT_IN_RETRIED == {"voicemail", "silent"}
    assert NEVER_RETRIED == {"connected", "opt-out"}


# One row per line of the outcome table of docs/product.md §1, with and without the opt-in list.
OUTCOME_TABLE = [
    ("no-answer", frozenset(), retry_at(at(0, 12))),
    ("busy", frozenset(), retry_at(at(0, 12))),
    ("failed", frozenset(), retry_at(at(0, 12))),
    ("callback", frozenset(), retry_at(at(0, 12))),  # no requested time: the retry interval
    ("voicemail", frozenset(), finished("voicemail", CompletionReason.NOT_RETRIED)),
    ("voicemail", frozenset({"voicemail"}), retry_at(at(0, 12))),
    ("silent", frozenset(), finished("silent", CompletionReason.NOT_RETRIED)),
    ("silent", frozenset({"silent"}), retry_at(at(0, 12))),
    ("silent", frozenset({"voicemail"}), finished("silent", CompletionReason.NOT_RETRIED)),
    ("appointment-booked", frozenset(), finished("appointment-booked", CompletionReason.NOT_RETRIED)),
    ("appointment-booked", frozenset({"appointment-booked"}), retry_at(at(0, 12))),
    ("connected", frozenset(), finished("connected", CompletionReason.CONNECTED)),
    ("connected", frozenset({"connected"}), finished("connected", CompletionReason.CONNECTED)),
    ("opt-out", frozenset(), finished("opt-out", CompletionReason.OPT_OUT)),
    ("opt-out", frozenset({"opt-out"}), finished("opt-out", CompletionReason.OPT_OUT)),
]


@pytest.mark.parametrize(("outcome", "retry_outcomes", "expected"), OUTCOME_TABLE)
def test_each_outcome_is_retried_exactly_as_the_table_says(outcome, retry_outcomes, expected):
    decision = decide_after_attempt(config(retry_outcomes=retry_outcomes), 1, outcome, at(0, 11))
    assert decision == expected


@pytest.mark.parametrize("outcome", sorted(AUTO_RETRIED))
def test_the_last_allowed_attempt_exhausts_the_task(outcome):
    assert decide_after_attempt(config(), 3, outcome, at(0, 11)) == finished(outcome, CompletionReason.EXHAUSTED)


def test_a_single_attempt_task_is_never_retried():
    decision = decide_after_attempt(config(max_attempts=1, intervals_ms=()), 1, "busy", at(0, 11))
    assert decision == finished("busy", CompletionReason.EXHAUSTED)


def test_a_non_retried_outcome_on_the_last_attempt_keeps_its_own_reason():
    assert decide_after_attempt(config(), 3, "connected", at(0, 11)).completion_reason == CompletionReason.CONNECTED


def test_each_retry_waits_its_own_interval():
    resolved = config(intervals_ms=(180_000, 600_000))
    assert decide_after_attempt(resolved, 1, "busy", at(0, 11)).next_attempt_at == at(0, 11, 3)
    assert decide_after_attempt(resolved, 2, "busy", at(0, 11)).next_attempt_at == at(0, 11, 10)


def test_a_retry_falling_after_hours_waits_for_the_next_window():
    assert decide_after_attempt(config(), 1, "no-answer", at(0, 17, 30)) == retry_at(at(1, 10))


def test_a_retry_that_would_fall_at_or_after_the_end_archives_the_task():
    decision = decide_after_attempt(config(end_at=at(1, 10)), 1, "no-answer", at(0, 17, 30))
    assert decision == finished("no-answer", CompletionReason.ENDED, TaskStatus.ARCHIVED)


@pytest.mark.parametrize(("callback_at", "overrides", "expected"), [
    pytest.param(at(1, 15), {}, retry_at(at(1, 15), True), id="inside-window-at-the-requested-time"),
    pytest.param(at(1, 15), {"intervals_ms": (10**9, 10**9)}, retry_at(at(1, 15), True), id="ignores-the-interval"),
    pytest.param(at(1, 20), {}, retry_at(at(2, 10), True), id="outside-window-at-the-next-opening"),
    pytest.param(at(0, 9), {}, retry_at(at(0, 11), True), id="requested-in-the-past-as-soon-as-possible"),
    pytest.param(at(1, 15), {"end_at": at(1, 15)}, finished("callback", CompletionReason.ENDED, TaskStatus.ARCHIVED),
                 id="at-the-end-archives"),
    pytest.param(at(1, 20), {"end_at": at(2, 9)}, finished("callback", CompletionReason.ENDED, TaskStatus.ARCHIVED),
                 id="next-opening-after-the-end-archives"),
])
def test_a_callback_is_placed_at_the_requested_time(callback_at, overrides, expected):
    assert decide_after_attempt(config(**overrides), 1, "callback", at(0, 11), callback_at) == expected


def test_a_callback_still_counts_against_the_attempt_limit():
    assert decide_after_attempt(config(), 3, "callback", at(0, 11), at(1, 15)) == finished(
        "callback", CompletionReason.EXHAUSTED)


def test_a_callback_time_on_a_non_callback_outcome_is_ignored():
    assert decide_after_attempt(config(), 1, "busy", at(0, 11), at(1, 15)) == retry_at(at(0, 12))


outcomes = st.sampled_from(sorted(AUTO_RETRIED | OPT_IN_RETRIED | NEVER_RETRIED) + ["custom-a", "custom-b"])


@given(
    max_attempts=st.integers(1, 6),
    interval_ms=st.integers(0, 3 * 86_400_000),
    retry_outcomes=st.frozensets(st.sampled_from(["voicemail", "silent", "custom-a", "connected"])),
    script=st.lists(st.tuples(outcomes, st.integers(0, 10**8), st.one_of(st.none(), st.integers(0, 10**9))),
                    min_size=1, max_size=8),
)
@settings(max_examples=200, deadline=None)
def test_attempts_never_exceed_the_limit_and_retries_honour_outcomes_and_intervals(
        max_attempts, interval_ms, retry_outcomes, script):
    window = CallingWindow(dt.time(9), dt.time(17, 30), "America/New_York", frozenset({0, 1, 2, 3, 4}))
    resolved = config(window=window, max_attempts=max_attempts, intervals_ms=(interval_ms,) * (max_attempts - 1),
                      retry_outcomes=retry_outcomes, end_at=at(30, 0))
    placed_at, attempts = at(0, 14), 0
    for outcome, duration_ms, callback_in_ms in script:
        attempts += 1
        ended_at = placed_at + dt.timedelta(milliseconds=duration_ms)
        callback_at = None if callback_in_ms is None else ended_at + dt.timedelta(milliseconds=callback_in_ms)
        decision = decide_after_attempt(resolved, attempts, outcome, ended_at, callback_at)
        retried = outcome not in NEVER_RETRIED and (outcome in AUTO_RETRIED or outcome in retry_outcomes)
        if not decision.retry:
            assert decision.completion_reason in {CompletionReason.EXHAUSTED, CompletionReason.ENDED} | (
                set() if retried else {CompletionReason.CONNECTED, CompletionReason.OPT_OUT, CompletionReason.NOT_RETRIED})
            assert decision.final_outcome == outcome
            break
        assert retried and attempts < max_attempts
        assert is_open(window, decision.next_attempt_at) and decision.next_attempt_at < resolved.end_at
        earliest = callback_at if decision.is_callback else ended_at + dt.timedelta(milliseconds=interval_ms)
        assert decision.next_attempt_at >= max(earliest, ended_at)
        placed_at = decision.next_attempt_at
    assert attempts <= max_attempts
