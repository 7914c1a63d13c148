"""Calling windows: DST both ways, odd offsets, weekdays, windows crossing midnight (invariant 5)."""
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.windows import (
    ALL_DAYS, CallingWindow, InvalidTimezone, hhmm_to_time, is_open, next_opening, time_to_hhmm, zone,
)

UTC = dt.timezone.utc
ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]
FRI, SAT, MON = 4, 5, 0


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


def window(start, end, tz="UTC", days=ALL_DAYS):
    return CallingWindow(hhmm_to_time(start), hhmm_to_time(end), tz, frozenset(days))


# (window, instant, open?) — each row names the rule it pins down.
IS_OPEN_CASES = [
    pytest.param(window(1000, 1800), utc(2024, 6, 3, 10, 0), True, id="opens-at-start-inclusive"),
    pytest.param(window(1000, 1800), utc(2024, 6, 3, 18, 0), False, id="closes-at-end-exclusive"),
    pytest.param(window(1000, 1800), utc(2024, 6, 3, 9, 59), False, id="closed-before-start"),
    pytest.param(window(1000, 1000), utc(2024, 6, 3, 3, 0), True, id="start-equals-end-is-open-all-day"),
    pytest.param(window(1000, 1000, days={MON}), utc(2024, 6, 4, 3, 0), False, id="all-day-only-on-listed-days"),
    pytest.param(window(1000, 2400), utc(2024, 6, 3, 23, 59), True, id="end-2400-runs-to-midnight"),
    pytest.param(window(1000, 2400), utc(2024, 6, 4, 0, 0), False, id="end-2400-closed-at-midnight"),
    pytest.param(window(2200, 200, days={FRI}), utc(2024, 6, 8, 1, 0), True, id="friday-night-window-covers-saturday-1am"),
    pytest.param(window(2200, 200, days={FRI}), utc(2024, 6, 8, 22, 30), False, id="crossing-window-belongs-to-opening-day"),
    pytest.param(window(2200, 200, days={FRI}), utc(2024, 6, 8, 2, 0), False, id="crossing-window-closes-at-end"),
    pytest.param(window(2200, 200, days={SAT}), utc(2024, 6, 8, 1, 0), False, id="saturday-window-does-not-cover-saturday-early"),
    pytest.param(window(1000, 1800, "Asia/Kolkata"), utc(2024, 6, 3, 4, 30), True, id="kolkata-half-hour-offset-open"),
    pytest.param(window(1000, 1800, "Asia/Kolkata"), utc(2024, 6, 3, 4, 29), False, id="kolkata-half-hour-offset-closed"),
    pytest.param(window(900, 1700, "Pacific/Chatham"), utc(2024, 6, 2, 20, 15), True, id="chatham-45-minute-offset-open"),
    pytest.param(window(900, 1700, "Pacific/Chatham"), utc(2024, 6, 2, 20, 14), False, id="chatham-45-minute-offset-closed"),
    # New York falls back on 2024-11-03: 01:00–02:00 happens twice (EDT 05:00–06:00 UTC, EST 06:00–07:00 UTC).
    pytest.param(window(0, 130, "America/New_York"), utc(2024, 11, 3, 5, 15), True, id="fall-back-first-pass-open"),
    pytest.param(window(0, 130, "America/New_York"), utc(2024, 11, 3, 6, 15), False, id="fall-back-repeated-hour-not-counted-twice"),
    pytest.param(window(130, 300, "America/New_York"), utc(2024, 11, 3, 5, 30), True, id="fall-back-opens-at-first-reading"),
    # New York springs forward on 2024-03-10: 02:00–03:00 does not exist (07:00 UTC is 03:00 EDT).
    pytest.param(window(230, 500, "America/New_York"), utc(2024, 3, 10, 6, 59), False, id="spring-forward-closed-before-gap"),
    pytest.param(window(230, 500, "America/New_York"), utc(2024, 3, 10, 7, 0), True, id="spring-forward-opens-after-gap"),
    pytest.param(window(100, 230, "America/New_York"), utc(2024, 3, 10, 6, 59), True, id="spring-forward-end-in-gap-runs-to-gap"),
    pytest.param(window(100, 230, "America/New_York"), utc(2024, 3, 10, 7, 0), False, id="spring-forward-end-in-gap-closes-after"),
]


@pytest.mark.parametrize(("calling_window", "instant", "expected"), IS_OPEN_CASES)
def test_is_open_follows_the_local_calling_hours(calling_window, instant, expected):
    assert is_open(calling_window, instant) is expected


NEXT_OPENING_CASES = [
    pytest.param(window(1000, 1800), utc(2024, 6, 3, 12, 0), utc(2024, 6, 3, 12, 0), id="open-instant-is-its-own-opening"),
    pytest.param(window(1000, 1800), utc(2024, 6, 3, 19, 0), utc(2024, 6, 4, 10, 0), id="after-close-waits-for-tomorrow"),
    pytest.param(window(1000, 1800), utc(2024, 6, 3, 7, 0), utc(2024, 6, 3, 10, 0), id="before-open-waits-for-today"),
    pytest.param(window(1000, 1800, days={MON}), utc(2024, 6, 3, 19, 0), utc(2024, 6, 10, 10, 0), id="skips-to-next-listed-day"),
    pytest.param(window(2200, 200, days={FRI}), utc(2024, 6, 8, 3, 0), utc(2024, 6, 14, 22, 0), id="crossing-window-next-friday"),
    pytest.param(window(1000, 1800, "Asia/Kolkata"), utc(2024, 6, 3, 0, 0), utc(2024, 6, 3, 4, 30), id="kolkata"),
    pytest.param(window(900, 1700, "Pacific/Chatham"), utc(2024, 6, 2, 6, 0), utc(2024, 6, 2, 20, 15), id="chatham"),
    pytest.param(window(230, 500, "America/New_York"), utc(2024, 3, 10, 5, 0), utc(2024, 3, 10, 7, 0),
                 id="new-york-start-in-skipped-hour-opens-at-first-valid-instant"),
    pytest.param(window(0, 130, "America/New_York"), utc(2024, 11, 3, 6, 15), utc(2024, 11, 4, 5, 0),
                 id="new-york-repeated-hour-waits-for-next-day"),
    # London springs forward 2024-03-31 01:00 GMT → 02:00 BST.
    pytest.param(window(115, 300, "Europe/London"), utc(2024, 3, 30, 23, 0), utc(2024, 3, 31, 1, 0), id="london-start-in-gap"),
    pytest.param(window(110, 150, "Europe/London"), utc(2024, 3, 31, 0, 0), utc(2024, 4, 1, 0, 10),
                 id="london-window-wholly-in-gap-has-no-opening-that-day"),
    # London falls back 2024-10-27 02:00 BST → 01:00 GMT.
    pytest.param(window(130, 300, "Europe/London"), utc(2024, 10, 26, 23, 0), utc(2024, 10, 27, 0, 30), id="london-fall-back"),
    # Lord Howe springs forward half an hour: 2024-10-06 02:00 → 02:30 (+10:30 → +11), at 15:30 UTC.
    pytest.param(window(210, 400, "Australia/Lord_Howe"), utc(2024, 10, 5, 12, 0), utc(2024, 10, 5, 15, 30), id="lord-howe-half-hour-dst"),
    # Chatham springs forward 2024-09-29 02:45 → 03:45 (+12:45 → +13:45), at 14:00 UTC.
    pytest.param(window(300, 500, "Pacific/Chatham"), utc(2024, 9, 28, 10, 0), utc(2024, 9, 28, 14, 0), id="chatham-dst"),
]


@pytest.mark.parametrize(("calling_window", "instant", "expected"), NEXT_OPENING_CASES)
def test_next_opening_is_the_first_open_instant(calling_window, instant, expected):
    assert next_opening(calling_window, instant) == expected


def test_next_opening_accepts_any_aware_timezone_and_answers_in_utc():
    kolkata_noon = dt.datetime(2024, 6, 3, 20, 0, tzinfo=zone("Asia/Kolkata"))
    opening = next_opening(window(1000, 1800, "Asia/Kolkata"), kolkata_noon)
    assert opening == utc(2024, 6, 4, 4, 30)
    assert opening.tzinfo is UTC


def test_naive_instants_are_refused():
    with pytest.raises(ValueError):
        is_open(window(1000, 1800), dt.datetime(2024, 6, 3, 12, 0))


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " UTC", "../../etc/passwd", None, "utc/"])
def test_a_bad_timezone_fails_closed(name):
    with pytest.raises(InvalidTimezone):
        zone(name)
    with pytest.raises(InvalidTimezone):
        CallingWindow(dt.time(10), dt.time(18), name)


def test_invalid_timezone_is_a_value_error():
    assert issubclass(InvalidTimezone, ValueError)


@pytest.mark.parametrize("days", [frozenset(), frozenset({7}), frozenset({-1})])
def test_window_needs_real_weekdays(days):
    with pytest.raises(ValueError):
        CallingWindow(dt.time(10), dt.time(18), "UTC", days)


@pytest.mark.parametrize(("value", "expected"), [
    (0, dt.time(0, 0)), (1000, dt.time(10, 0)), (930, dt.time(9, 30)), (2359, dt.time(23, 59)), (2400, dt.time(0, 0)),
])
def test_hhmm_to_time_reads_real_times(value, expected):
    assert hhmm_to_time(value) == expected


@pytest.mark.parametrize("value", [1260, 2401, 2500, -5, 99999, True, "1000", 10.0, None])
def test_hhmm_to_time_refuses_what_is_not_a_time(value):
    with pytest.raises(ValueError):
        hhmm_to_time(value)


@given(st.integers(0, 23), st.integers(0, 59))
@settings(max_examples=200)
def test_time_to_hhmm_round_trips(hour, minute):
    assert hhmm_to_time(time_to_hhmm(dt.time(hour, minute))) == dt.time(hour, minute)


# Instants around the DST changes of the sampled zones get extra weight.
DST_CHANGES = [utc(2024, 3, 10, 7), utc(2024, 11, 3, 6), utc(2024, 3, 31, 1), utc(2024, 10, 27, 1),
               utc(2024, 4, 6, 15), utc(2024, 10, 5, 15, 30), utc(2024, 4, 6, 13, 45), utc(2024, 9, 28, 14)]
instants = st.one_of(
    st.datetimes(dt.datetime(2023, 1, 1), dt.datetime(2026, 1, 1)).map(lambda d: d.replace(tzinfo=UTC)),
    st.builds(lambda base, minutes: base + dt.timedelta(minutes=minutes), st.sampled_from(DST_CHANGES),
              st.integers(-36 * 60, 36 * 60)),
)
local_times = st.builds(dt.time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows = st.builds(
    CallingWindow, local_times, local_times, st.sampled_from(ZONES),
    st.one_of(st.just(ALL_DAYS), st.frozensets(st.integers(0, 6), min_size=1)),
)


@given(windows, instants)
@settings(max_examples=150, deadline=None)
def test_next_opening_is_open_not_earlier_and_nothing_open_is_skipped(calling_window, instant):
    opening = next_opening(calling_window, instant)
    assert opening >= instant
    assert is_open(calling_window, opening)
    gap = opening - instant
    if gap:
        assert not is_open(calling_window, opening - dt.timedelta(seconds=1))
        steps = min(int(gap / dt.timedelta(minutes=1)), 300)
        for step in range(steps):
            assert not is_open(calling_window, instant + gap * step / steps)
