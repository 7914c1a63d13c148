"""A workspace's compliance rules, which no campaign or task can override. Pure, no clock inside.

The policy (docs/interfaces.md, the compliance endpoint) is stored as the JSON the API takes:

- **legal hours**: calls only between `legalHours.start` and `.end` (HHMM) on `legalDays`, in the
  callee's own time; `countryHours` overrides the hours for callees of a country (ISO 3166 code).
  When the callee's number spans several zones the window must be open in every one of them;
  the campaign's or task's own calling window applies on top (both must be open).
- **frequency cap**: at most `frequencyCap.attempts` calls to one number in any
  `frequencyCap.windowHours`, across the workspace's campaigns; a task over it waits until the
  oldest counted call leaves the window (not an attempt, not failed).
- **pre-dial check** (`predialWebhookUrl`, `predialTimeoutMs`, `predialFailOpen`): run by the dial job.
- **circuit breaker**: a campaign whose last `circuitBreaker.minAttempts` finished attempts include
  at least `failureRate` of carrier failures pauses itself.

`parse_policy` validates a body and returns the JSON to store; `policy_from_json` reads it back
for the dispatcher; `judge` is the dispatcher's compliance re-check of one candidate.

>>> policy = policy_from_json({"legalHours": {"start": 800, "end": 2100}})
>>> ny = legal_windows(policy, ("America/New_York",), "US")
>>> at = lambda hour: dt.datetime(2026, 6, 3, hour, tzinfo=dt.timezone.utc)  # a Wednesday
>>> all_open(ny, at(7))  # 03:00 in New York
False
>>> next_common_opening(ny, at(7))  # 08:00 EDT
datetime.datetime(2026, 6, 3, 12, 0, tzinfo=datetime.timezone.utc)
"""
import datetime as dt
import re
from dataclasses import dataclass

from phonenumbers import SUPPORTED_REGIONS

from campaigns.json_values import is_json_int, is_json_number
from campaigns.vocabulary import CompletionReason, HeldBy, TaskStatus
from dialer.eligibility import DIAL, FINISH, RESCHEDULE, Recheck
from dialer.windows import ALL_DAYS, MIDNIGHT, CallingWindow, hhmm_to_time, is_open, next_opening

FIELDS = ("legalHours", "legalDays", "countryHours", "frequencyCap", "predialWebhookUrl", "predialTimeoutMs",
          "predialFailOpen", "circuitBreaker")
DEFAULT_PREDIAL_TIMEOUT_MS = 2000
MIN_PREDIAL_TIMEOUT_MS, MAX_PREDIAL_TIMEOUT_MS = 100, 10_000
MAX_CAP_WINDOW_HOURS = 366 * 24
MAX_CAP_ATTEMPTS = 1000
MAX_BREAKER_ATTEMPTS = 1000
MAX_URL_LENGTH = 500
# A common opening of several zones' windows is looked for this far ahead: weekly patterns meet
# within a week when they ever do; the second week covers a DST change shifting one of them.
COMMON_OPENING_HORIZON = dt.timedelta(days=15)
REGION_CODE = re.compile(r"[A-Z]{2}")


class InvalidPolicy(ValueError):
    """A policy body with errors: `errors` is a list of (field, reason), the field dotted
    ("legalHours.start")."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))
        self.errors = errors


@dataclass(frozen=True)
class CompliancePolicy:
    """The rules as the dispatcher and the dial job apply them; None (or empty) is no such rule."""

    legal_hours: tuple | None = None  # (start, end) local times
    legal_days: frozenset | None = None
    country_hours: tuple = ()  # ((region, (start, end)), ...)
    cap_attempts: int | None = None
    cap_window: dt.timedelta | None = None
    predial_url: str = ""
    predial_timeout_ms: int = DEFAULT_PREDIAL_TIMEOUT_MS
    predial_fail_open: bool = False
    breaker_failure_rate: float | None = None
    breaker_min_attempts: int | None = None

    @property
    def has_legal_hours(self):
        return self.legal_hours is not None or self.legal_days is not None or bool(self.country_hours)

    @property
    def has_cap(self):
        return self.cap_attempts is not None

    @property
    def has_breaker(self):
        return self.breaker_failure_rate is not None

    @property
    def governs_dispatch(self):
        """Whether the dispatcher has anything to check: else it skips compliance entirely."""
        return self.has_legal_hours or self.has_cap


NO_POLICY = CompliancePolicy()




def _object(value, field, keys, errors):
    if not isinstance(value, dict):
        errors.append((field, "must be a JSON object"))
        return None
    for key in value:
        if key not in keys:
            errors.append((f"{field}.{key}", "is not a field of " + field))
    for key in keys:
        if key not in value:
            errors.append((f"{field}.{key}", "is required"))
    return value if all(key in value for key in keys) else None


def _hours(value, field, errors):
    """{"start": HHMM, "end": HHMM} as stored, or None after recording errors."""
    value = _object(value, field, ("start", "end"), errors)
    if value is None:
        return None
    good = True
    for key in ("start", "end"):
        try:
            hhmm_to_time(value[key])
        except ValueError:
            errors.append((f"{field}.{key}", "must be an HHMM integer from 0 to 2400, e.g. 800 or 2100"))
            good = False
    return {"start": value["start"], "end": value["end"]} if good else None


def _days(value, errors):
    if not isinstance(value, list) or not value:
        errors.append(("legalDays", "must be a non-empty list of weekdays, 0 = Monday … 6 = Sunday"))
        return None
    if not all(is_json_int(day) and 0 <= day <= 6 for day in value):
        errors.append(("legalDays", "weekdays are integers from 0 (Monday) to 6 (Sunday)"))
        return None
    if len(set(value)) != len(value):
        errors.append(("legalDays", "lists a weekday twice"))
        return None
    return sorted(value)


def _country_hours(value, errors):
    if not isinstance(value, dict):
        errors.append(("countryHours", "must be a JSON object of country code → {start, end}"))
        return None
    parsed = {}
    for region, hours in value.items():
        if not (isinstance(region, str) and REGION_CODE.fullmatch(region) and region in SUPPORTED_REGIONS):
            errors.append((f"countryHours.{region}", "is not an ISO 3166 country code of a dialable country, e.g. IN"))
            continue
        parsed[region] = _hours(hours, f"countryHours.{region}", errors)
    return parsed if all(hours is not None for hours in parsed.values()) else None


def _cap(value, errors):
    value = _object(value, "frequencyCap", ("attempts", "windowHours"), errors)
    if value is None:
        return None
    attempts, hours = value["attempts"], value["windowHours"]
    good = True
    if not (is_json_int(attempts) and 1 <= attempts <= MAX_CAP_ATTEMPTS):
        errors.append(("frequencyCap.attempts", f"must be an integer from 1 to {MAX_CAP_ATTEMPTS}"))
        good = False
    if not (is_json_number(hours) and 0 < hours <= MAX_CAP_WINDOW_HOURS):
        errors.append(("frequencyCap.windowHours", f"must be a number of hours above 0, at most {MAX_CAP_WINDOW_HOURS}"))
        good = False
    return {"attempts": attempts, "windowHours": hours} if good else None


def _breaker(value, errors):
    value = _object(value, "circuitBreaker", ("failureRate", "minAttempts"), errors)
    if value is None:
        return None
    rate, attempts = value["failureRate"], value["minAttempts"]
    good = True
    if not (is_json_number(rate) and 0 < rate <= 1):
        errors.append(("circuitBreaker.failureRate", "must be a fraction above 0, at most 1, e.g. 0.5"))
        good = False
    if not (is_json_int(attempts) and 1 <= attempts <= MAX_BREAKER_ATTEMPTS):
        errors.append(("circuitBreaker.minAttempts", f"must be an integer from 1 to {MAX_BREAKER_ATTEMPTS}"))
        good = False
    return {"failureRate": rate, "minAttempts": attempts} if good else None


def _url(value, errors):
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        errors.append(("predialWebhookUrl", "must be an http(s) URL"))
        return None
    if len(value) > MAX_URL_LENGTH:
        errors.append(("predialWebhookUrl", f"must be at most {MAX_URL_LENGTH} characters"))
        return None
    return value


def _timeout(value, errors):
    if not (is_json_int(value) and MIN_PREDIAL_TIMEOUT_MS <= value <= MAX_PREDIAL_TIMEOUT_MS):
        errors.append(("predialTimeoutMs", f"must be an integer from {MIN_PREDIAL_TIMEOUT_MS} to "
                                           f"{MAX_PREDIAL_TIMEOUT_MS} (milliseconds)"))
        return None
    return value


def _fail_open(value, errors):
    if not isinstance(value, bool):
        errors.append(("predialFailOpen", "must be true or false"))
        return None
    return value


PARSERS = {
    "legalHours": lambda value, errors: _hours(value, "legalHours", errors),
    "legalDays": _days, "countryHours": _country_hours, "frequencyCap": _cap, "predialWebhookUrl": _url,
    "predialTimeoutMs": _timeout, "predialFailOpen": _fail_open, "circuitBreaker": _breaker,
}


def parse_policy(body, current=None):
    """The policy to store after applying `body` (a PATCH) to `current` (the stored JSON): each
    field given replaces the stored one, `null` removes it. Raises `InvalidPolicy` naming every
    bad field; the URL's address rule is checked by the caller (`telephony.outbound`).

    >>> parse_policy({"frequencyCap": {"attempts": 7, "windowHours": 168}}, {"predialFailOpen": True})
    {'predialFailOpen': True, 'frequencyCap': {'attempts': 7, 'windowHours': 168}}
    >>> parse_policy({"legalHours": {"start": 800, "end": 2500}})
    Traceback (most recent call last):
    ...
    dialer.compliance.InvalidPolicy: legalHours.end: must be an HHMM integer from 0 to 2400, e.g. 800 or 2100
    """
    if not isinstance(body, dict):
        raise InvalidPolicy([(None, "must be a JSON object")])
    errors = [(key, "is not a field of the compliance policy") for key in body if key not in FIELDS]
    stored = dict(current or {})
    for key, value in body.items():
        if key not in FIELDS:
            continue
        if value is None:
            stored.pop(key, None)
            continue
        parsed = PARSERS[key](value, errors)
        if parsed is not None:
            stored[key] = parsed
    if errors:
        raise InvalidPolicy(errors)
    if "predialWebhookUrl" in stored:
        stored.setdefault("predialTimeoutMs", DEFAULT_PREDIAL_TIMEOUT_MS)
    return stored


def policy_json(stored):
    """Every field of the stored policy, null where there is no such rule (what GET answers)."""
    return {key: stored.get(key) for key in FIELDS}


def _time_pair(hours):
    return hhmm_to_time(hours["start"]), hhmm_to_time(hours["end"])


def policy_from_json(stored):
    """The `CompliancePolicy` of stored JSON (already valid: it went through `parse_policy`)."""
    if not stored:
        return NO_POLICY
    cap = stored.get("frequencyCap")
    breaker = stored.get("circuitBreaker")
    return CompliancePolicy(
        legal_hours=_time_pair(stored["legalHours"]) if stored.get("legalHours") else None,
        legal_days=frozenset(stored["legalDays"]) if stored.get("legalDays") else None,
        country_hours=tuple(sorted((region, _time_pair(hours)) for region, hours in
                                   (stored.get("countryHours") or {}).items())),
        cap_attempts=cap["attempts"] if cap else None,
        cap_window=dt.timedelta(hours=cap["windowHours"]) if cap else None,
        predial_url=stored.get("predialWebhookUrl") or "",
        predial_timeout_ms=stored.get("predialTimeoutMs") or DEFAULT_PREDIAL_TIMEOUT_MS,
        predial_fail_open=bool(stored.get("predialFailOpen")),
        breaker_failure_rate=breaker["failureRate"] if breaker else None,
        breaker_min_attempts=breaker["minAttempts"] if breaker else None,
    )


def legal_windows(policy, zones, country):
    """The legal calling windows of a callee in `zones` (IANA names) of `country` (ISO code or ""):
    one per zone, all of which must be open; () when the policy has no legal hours.

    >>> policy = policy_from_json({"legalHours": {"start": 800, "end": 2100},
    ...                            "countryHours": {"IN": {"start": 900, "end": 2100}}})
    >>> [(w.start.hour, w.timezone) for w in legal_windows(policy, ("Asia/Kolkata",), "IN")]
    [(9, 'Asia/Kolkata')]
    """
    if not policy.has_legal_hours:
        return ()
    hours = dict(policy.country_hours).get(country) or policy.legal_hours or (MIDNIGHT, MIDNIGHT)
    days = policy.legal_days if policy.legal_days is not None else ALL_DAYS
    return tuple(CallingWindow(hours[0], hours[1], name, days) for name in sorted(set(zones)))


def all_open(windows, instant):
    """Whether every window is open at `instant` (True for none)."""
    return all(is_open(window, instant) for window in windows)


def next_common_opening(windows, instant, horizon=COMMON_OPENING_HORIZON):
    """The first instant at or after `instant` when every window is open at once, or None when
    there is none within `horizon` (their hours never overlap).

    Each step moves to the latest of the windows' next openings: no instant before it can have
    them all open, so the first common instant is never skipped.

    >>> zones = ("America/New_York", "America/Los_Angeles")
    >>> windows = [CallingWindow(dt.time(8), dt.time(21), name) for name in zones]
    >>> next_common_opening(windows, dt.datetime(2026, 6, 3, 12, tzinfo=dt.timezone.utc))  # 05:00 in LA
    datetime.datetime(2026, 6, 3, 15, 0, tzinfo=datetime.timezone.utc)
    """
    at = instant.astimezone(dt.timezone.utc)
    limit = at + horizon
    while at <= limit:
        latest = max((next_opening(window, at) for window in windows), default=at)
        if latest == at:
            return at
        at = latest
    return None


def cap_release(recent_calls, attempts, window, now):
    """None when a number may be called at `now` under a cap of `attempts` calls per `window`,
    else the instant it may: when enough of its `recent_calls` (creation instants, any order)
    have left the window.

    >>> t = lambda hour: dt.datetime(2026, 6, 3, hour, tzinfo=dt.timezone.utc)
    >>> cap_release([t(9), t(11)], 2, dt.timedelta(hours=24), t(12))
    datetime.datetime(2026, 6, 4, 9, 0, tzinfo=datetime.timezone.utc)
    >>> cap_release([t(9)], 2, dt.timedelta(hours=24), t(12)) is None
    True
    """
    counted = sorted(call for call in recent_calls if now - window < call <= now)
    if len(counted) < attempts:
        return None
    # Calls before the `attempts`-th newest must leave the window before one more fits.
    return counted[len(counted) - attempts] + window


def judge(own_window, legal, end_at, recent_calls, policy, now, legal_open=None, opening=None):
    """The compliance re-check of a candidate whose own re-check said dial: `dial`, `reschedule`
    (`reason` says which rule holds it: `HeldBy`), or `finish` (archived: `ended` when the rules
    open only after `end_at`, `ineligible` when the legal hours never open in all its zones).

    `legal` are its `legal_windows`, `recent_calls` its number's calls in the workspace within the
    cap's window. `legal_open` may pass `all_open(legal, now)` and `opening` (a callable) the
    windows' `next_common_opening` when the caller knows them (many candidates share them).
    """
    if legal and not (all_open(legal, now) if legal_open is None else legal_open):
        opening = opening() if opening is not None else next_common_opening((own_window, *legal), now)
        if opening is None:
            return Recheck(FINISH, status=str(TaskStatus.ARCHIVED), reason=str(CompletionReason.INELIGIBLE))
        return _reschedule(opening, end_at, HeldBy.LEGAL_HOURS)
    if policy.has_cap:
        release = cap_release(recent_calls, policy.cap_attempts, policy.cap_window, now)
        if release is not None:
            return _reschedule(release, end_at, HeldBy.FREQUENCY_CAP)
    return Recheck(DIAL)


def first_legal_attempt(policy, own_window, zones, at, end_at):
    """A new task's first attempt under the legal hours, judged when it is created so that a
    backlog outside them is not claimed only to be held: (instant or None, completion reason,
    `HeldBy`). `at` is its first attempt under its own settings (`first_attempt_at`; None: it has
    none). Country hours need the callee's country, which creation does not look up: with them the
    dispatcher's re-check alone decides (it always has the last word).

    >>> policy = policy_from_json({"legalHours": {"start": 800, "end": 2100}})
    >>> first_legal_attempt(policy, CallingWindow(dt.time(0), dt.time(0), "UTC"), ("America/New_York",),
    ...                     dt.datetime(2026, 6, 3, 7, tzinfo=dt.timezone.utc), None)
    (datetime.datetime(2026, 6, 3, 12, 0, tzinfo=datetime.timezone.utc), '', 'legal_hours')
    """
    if at is None:
        return None, str(CompletionReason.ENDED), ""
    if not policy.has_legal_hours or policy.country_hours:
        return at, "", ""
    legal = legal_windows(policy, zones, "")
    if all_open(legal, at):
        return at, "", ""
    opening = next_common_opening((own_window, *legal), at)
    if opening is None:
        return None, str(CompletionReason.INELIGIBLE), ""
    if end_at is not None and opening >= end_at:
        return None, str(CompletionReason.ENDED), ""
    return opening, "", str(HeldBy.LEGAL_HOURS)


def _reschedule(at, end_at, held_by):
    if end_at is not None and at >= end_at:
        return Recheck(FINISH, status=str(TaskStatus.ARCHIVED), reason=str(CompletionReason.ENDED))
    return Recheck(RESCHEDULE, at=at, reason=str(held_by))


def breaker_trips(outcomes, failure_rate, min_attempts, failed_outcome="failed"):
    """Whether the campaign's last finished attempts' `outcomes` (newest first) trip its breaker:
    at least `min_attempts` of them, and failures among the newest `min_attempts` reaching
    `failure_rate`.

    >>> breaker_trips(["failed"] * 9 + ["connected"] * 11, 0.5, 20), breaker_trips(["failed"] * 10 + ["busy"] * 10, 0.5, 20)
    (False, True)
    >>> breaker_trips(["failed"] * 19, 0.5, 20)
    False
    """
    window = list(outcomes)[:min_attempts]
    if len(window) < min_attempts:
        return False
    return sum(outcome == failed_outcome for outcome in window) / min_attempts >= failure_rate

