"""The compliance rules (`dialer.compliance`), pure: property tests over zones with DST changes,
numbers spanning several zones and windows that cross midnight, and the policy's validation."""
import datetime as dt

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from dialer import compliance
from dialer.compliance import InvalidPolicy, parse_policy, policy_from_json
from dialer.windows import CallingWindow, is_open

UTC = dt.timezone.utc
# Northern and southern DST, half-hour and 45-minute offsets, a zone a day away from another.
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Sydney", "Asia/Kolkata",
         "Pacific/Chatham", "America/St_Johns", "Europe/Moscow", "Pacific/Auckland", "America/Chicago"]
HHMM = st.integers(0, 23).flatmap(lambda h: st.sampled_from([0, 15, 30, 45]).map(lambda m: h * 100 + m))
INSTANTS = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 12, 31),
                        timezones=st.just(UTC))
DAYS = st.sets(st.integers(0, 6), min_size=1).map(sorted)


@st.composite
def policies(draw):
    body = {"legalHours": {"start": draw(HHMM), "end": draw(HHMM)}}  # end < start crosses midnight
    if draw(st.booleans()):
        body["legalDays"] = draw(DAYS)
    return policy_from_json(parse_policy(body))


def zone_sets():
    return st.lists(st.sampled_from(ZONES), min_size=1, max_size=4, unique=True).map(tuple)


def own_window(draw_hours):
    start, end = draw_hours
    return CallingWindow(dt.time(start // 100, start % 100), dt.time(end // 100, end % 100), "UTC")


ALL_DAY = CallingWindow(dt.time(0), dt.time(0), "UTC")


@hypothesis_settings(max_examples=400, deadline=None)
@given(policies(), zone_sets(), INSTANTS)
def test_a_candidate_is_never_dialed_while_any_of_its_zones_is_closed(policy, zones, now):
    legal = compliance.legal_windows(policy, zones, "")
    verdict = compliance.judge(ALL_DAY, legal, None, (), policy, now)
    every_zone_open = all(is_open(window, now) for window in legal)
    assert (verdict.action == "dial") == every_zone_open
    if verdict.action == "reschedule":
        assert verdict.reason == "legal_hours" and verdict.at > now


@hypothesis_settings(max_examples=300, deadline=None)
@given(policies(), zone_sets(), INSTANTS, st.tuples(HHMM, HHMM), st.data())
def test_the_next_common_opening_is_the_first_instant_every_window_is_open(policy, zones, now, hours, data):
    windows = (own_window(hours), *compliance.legal_windows(policy, zones, ""))
    opening = compliance.next_common_opening(windows, now)
    if opening is None:
        return  # the windows never overlap within the horizon: the task is archived ineligible
    assert opening >= now
    assert all(is_open(window, opening) for window in windows)
    assert compliance.all_open(windows, now) == (opening == now)
    if opening > now:
        # No earlier instant has them all open: just before it, nor anywhere sampled in between.
        assert not compliance.all_open(windows, opening - dt.timedelta(seconds=1))
        span = int((opening - now).total_seconds())
        for offset in data.draw(st.lists(st.integers(0, max(span - 1, 0)), max_size=20)):
            assert not compliance.all_open(windows, now + dt.timedelta(seconds=offset))


@hypothesis_settings(max_examples=200, deadline=None)
@given(zone_sets(), INSTANTS)
def test_country_hours_override_the_legal_hours_for_that_country_only(zones, now):
    policy = policy_from_json(parse_policy({"legalHours": {"start": 800, "end": 2100},
                                            "countryHours": {"IN": {"start": 900, "end": 2000}}}))
    indian = compliance.legal_windows(policy, zones, "IN")
    other = compliance.legal_windows(policy, zones, "US")
    assert {(w.start, w.end) for w in indian} == {(dt.time(9), dt.time(20))}
    assert {(w.start, w.end) for w in other} == {(dt.time(8), dt.time(21))}
    assert {w.timezone for w in indian} == set(zones)


def test_a_number_whose_zones_never_share_legal_hours_is_archived_ineligible():
    policy = policy_from_json(parse_policy({"legalHours": {"start": 900, "end": 1000}}))
    legal = compliance.legal_windows(policy, ("Asia/Kolkata", "America/New_York"), "")  # 9.5-10.5 h apart
    verdict = compliance.judge(ALL_DAY, legal, None, (), policy, dt.datetime(2026, 6, 3, tzinfo=UTC))
    assert (verdict.action, verdict.status, verdict.reason) == ("finish", "archived", "ineligible")


def test_a_legal_opening_after_the_task_end_archives_it_as_ended():
    policy = policy_from_json(parse_policy({"legalHours": {"start": 800, "end": 2100}}))
    legal = compliance.legal_windows(policy, ("America/New_York",), "US")
    now = dt.datetime(2026, 6, 3, 5, tzinfo=UTC)  # 01:00 in New York
    verdict = compliance.judge(ALL_DAY, legal, now + dt.timedelta(hours=1), (), policy, now)
    assert (verdict.action, verdict.reason) == ("finish", "ended")


def test_a_spring_forward_night_does_not_open_the_window_early():
    policy = policy_from_json(parse_policy({"legalHours": {"start": 230, "end": 400}}))
    legal = compliance.legal_windows(policy, ("America/New_York",), "US")
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT, so 02:30 never exists: the window opens at 03:00 EDT.
    opening = compliance.next_common_opening(legal, dt.datetime(2024, 3, 10, 5, 0, tzinfo=UTC))
    assert opening == dt.datetime(2024, 3, 10, 7, 0, tzinfo=UTC)


CALL_TIMES = st.lists(st.integers(0, 72 * 3600), max_size=12)


@hypothesis_settings(max_examples=400, deadline=None)
@given(CALL_TIMES, st.integers(1, 5), st.integers(1, 48))
def test_the_cap_releases_exactly_when_one_more_call_fits_in_the_window(offsets, attempts, hours):
    now = dt.datetime(2026, 6, 6, tzinfo=UTC)
    calls = [now - dt.timedelta(seconds=offset) for offset in offsets]
    window = dt.timedelta(hours=hours)

    def counted(at):
        return sum(1 for call in calls if at - window < call <= at)

    release = compliance.cap_release(calls, attempts, window, now)
    if release is None:
        assert counted(now) < attempts
        return
    assert release > now
    assert counted(release) < attempts
    assert counted(release - dt.timedelta(microseconds=1)) >= attempts


def test_a_capped_number_waits_for_its_release_instead_of_failing():
    policy = policy_from_json(parse_policy({"frequencyCap": {"attempts": 1, "windowHours": 24}}))
    now = dt.datetime(2026, 6, 3, 12, tzinfo=UTC)
    verdict = compliance.judge(ALL_DAY, (), None, [now - dt.timedelta(hours=1)], policy, now)
    assert (verdict.action, verdict.at, verdict.reason) == ("reschedule", now + dt.timedelta(hours=23), "frequency_cap")


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["failed", "connected", "busy"]), max_size=30),
       st.sampled_from([0.25, 0.5, 0.75, 1.0]), st.integers(1, 20))
def test_the_breaker_trips_at_its_threshold_and_not_before(outcomes, rate, min_attempts):
    trips = compliance.breaker_trips(outcomes, rate, min_attempts)
    newest = outcomes[:min_attempts]
    assert trips == (len(newest) == min_attempts and newest.count("failed") >= rate * min_attempts)


@pytest.mark.parametrize(("body", "field"), [
    ({"legalHours": {"start": 800}}, "legalHours.end"),
    ({"legalHours": {"start": 860, "end": 2100}}, "legalHours.start"),
    ({"legalHours": "8-21"}, "legalHours"),
    ({"legalDays": []}, "legalDays"),
    ({"legalDays": [0, 7]}, "legalDays"),
    ({"countryHours": {"XX": {"start": 900, "end": 2100}}}, "countryHours.XX"),
    ({"countryHours": {"IN": {"start": 900, "end": 2500}}}, "countryHours.IN.end"),
    ({"frequencyCap": {"attempts": 0, "windowHours": 24}}, "frequencyCap.attempts"),
    ({"frequencyCap": {"attempts": 1, "windowHours": -1}}, "frequencyCap.windowHours"),
    ({"frequencyCap": {"attempts": 1, "windowHours": 24, "per": "day"}}, "frequencyCap.per"),
    ({"predialWebhookUrl": "ftp://example.com"}, "predialWebhookUrl"),
    ({"predialTimeoutMs": 50}, "predialTimeoutMs"),
    ({"predialFailOpen": "yes"}, "predialFailOpen"),
    ({"circuitBreaker": {"failureRate": 1.5, "minAttempts": 20}}, "circuitBreaker.failureRate"),
    ({"circuitBreaker": {"failureRate": 0.5, "minAttempts": True}}, "circuitBreaker.minAttempts"),
    ({"quietHours": {}}, "quietHours"),
])
def test_a_bad_policy_value_names_its_field(body, field):
    with pytest.raises(InvalidPolicy) as raised:
        parse_policy(body)
    assert field in [name for name, _ in raised.value.errors]


def test_a_patch_replaces_the_fields_it_gives_and_null_removes_a_rule():
    stored = parse_policy({"legalHours": {"start": 800, "end": 2100}, "predialWebhookUrl": "https://example.com/x"})
    assert stored["predialTimeoutMs"] == compliance.DEFAULT_PREDIAL_TIMEOUT_MS
    patched = parse_policy({"legalHours": None, "frequencyCap": {"attempts": 7, "windowHours": 168}}, stored)
    assert "legalHours" not in patched and patched["frequencyCap"] == {"attempts": 7, "windowHours": 168}
    assert compliance.policy_json(patched)["legalHours"] is None
    assert not policy_from_json({}).governs_dispatch and policy_from_json(patched).has_cap
