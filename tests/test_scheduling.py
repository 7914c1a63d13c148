"""Effective task config and attempt timing (invariants 5 and 6), on unsaved model instances."""
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.models import Campaign, CampaignType, Task
from dialer.scheduling import (
    TaskConfig, dispatch_rank, first_attempt_at, next_attempt_after, resolve_config, retry_interval,
)
from dialer.windows import CallingWindow, is_open

UTC = dt.timezone.utc
MONDAY = dt.datetime(2024, 6, 3, tzinfo=UTC)


def at(day, hour, minute=0):
    return MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def campaign(**overrides):
    values = dict(type=CampaignType.BATCH, agent_id=1, calling_number_id=2, timezone="UTC", start_at=at(0, 0),
                  end_at=None, calling_start=dt.time(10), calling_end=dt.time(18), calling_days=[0, 1, 2, 3, 4, 5, 6],
                  max_retries=2, retry_interval_ms=3_600_000, retry_outcomes=["voicemail"])
    values.update(overrides)
    return Campaign(**values)


def config(**overrides):
    values = dict(agent_id=1, calling_number_id=2, window=CallingWindow(dt.time(10), dt.time(18), "UTC"),
                  start_after=at(0, 0), end_at=None, max_attempts=3, intervals_ms=(3_600_000, 7_200_000),
                  priorities=None, retry_outcomes=frozenset())
    values.update(overrides)
    return TaskConfig(**values)


def test_batch_task_takes_the_campaign_config():
    resolved = resolve_config(Task(), campaign())
    assert resolved == TaskConfig(
        agent_id=1, calling_number_id=2,
        window=CallingWindow(dt.time(10), dt.time(18), "UTC"), start_after=at(0, 0), end_at=None,
        max_attempts=3, intervals_ms=(3_600_000, 3_600_000), priorities=None, retry_outcomes=frozenset({"voicemail"}),
    )


def test_batch_single_attempt_has_no_intervals():
    resolved = resolve_config(Task(), campaign(max_retries=0))
    assert (resolved.max_attempts, resolved.intervals_ms) == (1, ())


def test_batch_task_keeps_its_own_timezone_but_campaign_retry_settings():
    task = Task(timezone="Asia/Kolkata", max_attempts=9, intervals_ms=[1], retry_outcomes=["silent"])
    resolved = resolve_config(task, campaign())
    assert resolved.window.timezone == "Asia/Kolkata"
    assert (resolved.max_attempts, resolved.intervals_ms, resolved.retry_outcomes) == (
        3, (3_600_000, 3_600_000), frozenset({"voicemail"}))


def test_realtime_task_fields_override_the_campaign():
    task = Task(agent_id=7, calling_number_id=8, timezone="Asia/Kolkata", calling_start=dt.time(9),
                calling_end=dt.time(12), max_attempts=2, intervals_ms=[180_000], priorities=[100, 50],
                retry_outcomes=["silent"])
    resolved = resolve_config(task, campaign(type=CampaignType.REALTIME, calling_days=[0, 1]))
    assert resolved == TaskConfig(
        agent_id=7, calling_number_id=8, window=CallingWindow(dt.time(9), dt.time(12), "Asia/Kolkata", frozenset({0, 1})),
        start_after=at(0, 0), end_at=None, max_attempts=2, intervals_ms=(180_000,), priorities=(100, 50),
        retry_outcomes=frozenset({"silent"}),
    )


def test_realtime_task_without_fields_inherits_the_campaign_sample():
    resolved = resolve_config(Task(), campaign(type=CampaignType.REALTIME))
    assert (resolved.max_attempts, resolved.intervals_ms, resolved.priorities, resolved.retry_outcomes) == (
        3, (3_600_000, 3_600_000), None, frozenset({"voicemail"}))


def test_realtime_task_with_only_attempts_gets_the_campaign_interval_for_each_retry():
    resolved = resolve_config(Task(max_attempts=4), campaign(type=CampaignType.REALTIME))
    assert resolved.intervals_ms == (3_600_000,) * 3


@pytest.mark.parametrize(("task_start", "task_end", "campaign_end", "start_after", "end_at"), [
    (None, None, None, at(0, 0), None),
    (at(1, 0), None, None, at(1, 0), None),
    (None, at(2, 0), at(3, 0), at(0, 0), at(2, 0)),
    (None, at(4, 0), at(3, 0), at(0, 0), at(3, 0)),
    (None, None, at(3, 0), at(0, 0), at(3, 0)),
])
def test_start_is_the_latest_and_end_the_earliest_of_task_and_campaign(task_start, task_end, campaign_end,
                                                                         start_after, end_at):
    resolved = resolve_config(Task(start_after=task_start, end_after=task_end), campaign(end_at=campaign_end))
    assert (resolved.start_after, resolved.end_at) == (start_after, end_at)


@pytest.mark.parametrize(("now", "overrides", "expected"), [
    pytest.param(at(0, 12), {}, at(0, 12), id="open-now"),
    pytest.param(at(0, 19), {}, at(1, 10), id="after-hours-waits-for-next-window"),
    pytest.param(at(0, 12), {"start_after": at(2, 11)}, at(2, 11), id="waits-for-start"),
    pytest.param(at(0, 12), {"start_after": at(2, 20)}, at(3, 10), id="start-outside-hours-moves-into-window"),
    pytest.param(at(0, 19), {"end_at": at(1, 10)}, None, id="first-opening-at-end-is-none"),
    pytest.param(at(0, 19), {"end_at": at(1, 10, 1)}, at(1, 10), id="first-opening-before-end"),
    pytest.param(at(0, 12), {"end_at": at(0, 11)}, None, id="already-ended"),
])
def test_first_attempt_at(now, overrides, expected):
    assert first_attempt_at(config(**overrides), now) == expected


@pytest.mark.parametrize(("attempts_made", "ended_at", "overrides", "expected"), [
    pytest.param(1, at(0, 11), {}, at(0, 12), id="end-plus-first-interval"),
    pytest.param(2, at(0, 11), {}, at(0, 13), id="end-plus-second-interval"),
    pytest.param(1, at(0, 17, 30), {}, at(1, 10), id="interval-past-close-waits-for-next-window"),
    pytest.param(1, at(0, 11), {"start_after": at(0, 15)}, at(0, 15), id="never-before-start"),
    pytest.param(1, at(0, 17, 30), {"end_at": at(1, 10)}, None, id="next-window-at-end-is-none"),
    pytest.param(1, at(0, 11), {"end_at": at(0, 12)}, None, id="interval-reaching-end-is-none"),
    pytest.param(1, at(0, 11), {"intervals_ms": ()}, at(0, 11), id="no-interval-is-no-gap"),
    pytest.param(3, at(0, 11), {}, at(0, 13), id="last-interval-repeats-when-list-is-short"),
])
def test_next_attempt_after(attempts_made, ended_at, overrides, expected):
    assert next_attempt_after(config(**overrides), attempts_made, ended_at) == expected


def test_retry_interval_reads_the_interval_after_each_attempt():
    resolved = config(intervals_ms=(180_000, 600_000))
    assert [retry_interval(resolved, n) for n in (1, 2)] == [dt.timedelta(minutes=3), dt.timedelta(minutes=10)]


@pytest.mark.parametrize(("campaign_type", "attempts_made", "priorities", "rank"), [
    (CampaignType.BATCH, 0, None, 0),
    (CampaignType.BATCH, 2, (5, 1), 2),
    (CampaignType.REALTIME, 0, (100, 50), -100),
    (CampaignType.REALTIME, 1, (100, 50), -50),
    (CampaignType.REALTIME, 2, (100, 50), 0),
    (CampaignType.REALTIME, 0, None, 0),
    (CampaignType.REALTIME, 0, (), 0),
])
def test_dispatch_rank_is_the_attempt_layer(campaign_type, attempts_made, priorities, rank):
    assert dispatch_rank(campaign_type, attempts_made, priorities) == rank


windows = st.builds(
    CallingWindow, st.builds(dt.time, st.integers(0, 23), st.sampled_from([0, 30])),
    st.builds(dt.time, st.integers(0, 23), st.sampled_from([0, 30])),
    st.sampled_from(["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]),
)
instants = st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2025, 12, 1)).map(lambda d: d.replace(tzinfo=UTC))


@given(windows, instants, st.integers(1, 3), st.integers(0, 10**9), st.one_of(st.none(), st.integers(0, 10**9)))
@settings(max_examples=200, deadline=None)
def test_next_attempt_is_in_hours_after_interval_and_before_end(window, ended_at, attempts_made, interval_ms, end_in_ms):
    end_at = None if end_in_ms is None else ended_at + dt.timedelta(milliseconds=end_in_ms)
    resolved = config(window=window, start_after=ended_at - dt.timedelta(days=1), end_at=end_at,
                      intervals_ms=(interval_ms,) * 3)
    result = next_attempt_after(resolved, attempts_made, ended_at)
    if result is None:
        assert end_at is not None
        return
    assert is_open(window, result)
    assert result >= ended_at + dt.timedelta(milliseconds=interval_ms)
    assert end_at is None or result < end_at
