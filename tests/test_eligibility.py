"""The dispatcher's re-check of a claimed candidate, as a pure rule (`dialer.eligibility.recheck`)."""
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.vocabulary import CompletionReason, TaskStatus
from dialer.eligibility import DIAL, FINISH, HOLD, RESCHEDULE, recheck
from dialer.scheduling import TaskConfig
from dialer.windows import CallingWindow, is_open

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 6, 3, 12, 0, tzinfo=UTC)


def config(window, end_at, max_attempts):
    return TaskConfig(agent_id=1, calling_number_id=None, window=window, start_after=NOW - dt.timedelta(days=1),
                      end_at=end_at, max_attempts=max_attempts, intervals_ms=(0,) * (max_attempts - 1),
                      priorities=None, retry_outcomes=frozenset())


windows = st.builds(CallingWindow, st.times(), st.times(),
                    st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]),
                    st.frozensets(st.integers(0, 6), min_size=1))
ends = st.one_of(st.none(), st.integers(-600, 7 * 24 * 60).map(lambda m: NOW + dt.timedelta(minutes=m)))


@given(windows, ends, st.integers(1, 4), st.integers(0, 5), st.booleans(), st.booleans())
@settings(max_examples=300)
def test_a_candidate_is_dialed_only_when_every_rule_allows_it(window, end_at, max_attempts, attempts, listed, live):
    verdict = recheck(config(window, end_at, max_attempts), attempts, listed, live, NOW)
    allowed = ((end_at is None or NOW < end_at) and attempts < max_attempts and not listed and is_open(window, NOW))
    assert (verdict.action in (DIAL, HOLD)) == allowed
    if allowed:
        assert verdict.action == (HOLD if live else DIAL)
    if verdict.action == RESCHEDULE:
        assert verdict.at > NOW and is_open(window, verdict.at) and (end_at is None or verdict.at < end_at)
    if verdict.action == FINISH:
        assert (verdict.status, verdict.reason) in {
            (TaskStatus.ARCHIVED, CompletionReason.ENDED), (TaskStatus.COMPLETED, CompletionReason.EXHAUSTED),
            (TaskStatus.ARCHIVED, CompletionReason.DNC)}


def test_a_task_past_its_end_is_archived_as_ended_even_when_its_number_is_listed():
    ended = config(CallingWindow(dt.time(0), dt.time(0), "UTC"), NOW, 2)
    verdict = recheck(ended, 0, listed=True, number_live=False, now=NOW)
    assert (verdict.status, verdict.reason) == (TaskStatus.ARCHIVED, CompletionReason.ENDED)
