"""Daily calling windows: may we call at this instant, and when may we next? Pure, no clock inside.

A window is a local start and end time in an IANA timezone, on some weekdays. Each allowed local
date D gives one *occurrence*, a real-time interval [opens, closes):

- `start < end`: from `start` on D to `end` on D;
- `end < start` (crosses midnight): from `start` on D to `end` on D + 1, so the weekday of such a
  window is the day it opens (Fri 22:00–02:00 covers Saturday 01:00);
- `start == end`: the whole local day D.

A local time is turned into an instant as "the first instant at which the local clock reads that
time or later". So a window starting in a skipped hour (spring forward) opens at the first valid
instant after it, and a window boundary in a repeated hour (fall back) is its first occurrence: the
repeated hour is never counted twice.
"""
import datetime as dt
import itertools
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.json_values import is_json_int

ALL_DAYS = frozenset(range(7))
MIDNIGHT = dt.time(0, 0)
UTC = dt.timezone.utc


class InvalidTimezone(ValueError):
    """The name is not an IANA timezone this system knows."""


def zone(name):
    """The ZoneInfo for an IANA name, or `InvalidTimezone`: a bad name fails closed at input.

    >>> zone("Asia/Kolkata").key
    'Asia/Kolkata'
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise InvalidTimezone(f"{name!r} is not an IANA timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimezone(f"{name!r} is not an IANA timezone") from exc


@dataclass(frozen=True)
class CallingWindow:
    """Daily calling hours `start`–`end` (local, in `timezone`) on `days` (0 = Monday … 6 = Sunday)."""

    start: dt.time
    end: dt.time
    timezone: str
    days: frozenset = ALL_DAYS

    def __post_init__(self):
        object.__setattr__(self, "days", frozenset(self.days))
        if not self.days:
            raise ValueError("a calling window needs at least one weekday")
        if not self.days <= ALL_DAYS:
            raise ValueError(f"weekdays are 0 (Monday) to 6 (Sunday), got {sorted(self.days)}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window start and end are local wall-clock times, without tzinfo")
        zone(self.timezone)

    @property
    def tz(self):
        return zone(self.timezone)


def hhmm_to_time(value):
    """The local time an HHMM integer names; 2400 means the midnight that ends a day.

    >>> hhmm_to_time(1000), hhmm_to_time(2400)
    (datetime.time(10, 0), datetime.time(0, 0))

    Raises `ValueError` for anything that is not a real HHMM time (1260, 2401, -5, "1000").
    """
    if not is_json_int(value):
        raise ValueError(f"{value!r} is not an HHMM integer")
    if value == 2400:
        return MIDNIGHT
    hours, minutes = divmod(value, 100)
    if value < 0 or hours > 23 or minutes > 59:
        raise ValueError(f"{value} is not an HHMM time")
    return dt.time(hours, minutes)


def time_to_hhmm(value):
    """The HHMM integer of a local time, the inverse of `hhmm_to_time`.

    >>> time_to_hhmm(dt.time(18, 30))
    1830
    """
    return value.hour * 100 + value.minute


def _as_utc(instant):
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("calling-window instants must be timezone-aware")
    return instant.astimezone(UTC)


def _wall(instant, tz):
    return instant.astimezone(tz).replace(tzinfo=None)


def _first_instant_at(day, local_time, tz):
    """The first instant at which the local clock on `day` reads `local_time` or later (UTC)."""
    naive = dt.datetime.combine(day, local_time)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == naive:
        return first  # exists; fold=0 is the first of two readings in a repeated hour
    # In a gap: the instant lies between the two offsets' readings; find the transition, to the second.
    other = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = int(min(first, other).timestamp()), int(max(first, other).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(dt.datetime.fromtimestamp(middle, UTC), tz) >= naive:
            high = middle
        else:
            low = middle
    return dt.datetime.fromtimestamp(high, UTC)


def _occurrence(window, day, tz):
    """The [opens, closes) interval of the window opening on local `day`, or None if there is none."""
    if day.weekday() not in window.days:
        return None
    next_day = day + dt.timedelta(days=1)
    if window.start == window.end:
        opens, closes = _first_instant_at(day, MIDNIGHT, tz), _first_instant_at(next_day, MIDNIGHT, tz)
    elif window.start < window.end:
        opens, closes = _first_instant_at(day, window.start, tz), _first_instant_at(day, window.end, tz)
    else:
        opens, closes = _first_instant_at(day, window.start, tz), _first_instant_at(next_day, window.end, tz)
    # A window lying wholly inside a skipped hour has no instant that day.
    return (opens, closes) if opens < closes else None


def is_open(window, instant):
    """Whether a call may be placed at `instant` (aware).

    >>> w = CallingWindow(dt.time(22, 0), dt.time(2, 0), "Europe/London", frozenset({4}))
    >>> is_open(w, dt.datetime(2024, 6, 8, 0, 30, tzinfo=UTC))  # Saturday 01:30 BST, Friday's window
    True
    """
    at = _as_utc(instant)
    tz = window.tz
    local_day = _wall(at, tz).date()
    # The occurrence holding `at` opened on the local day of `at` or the day before; a day either
    # side more covers clocks that fall back across midnight.
    for offset in (-2, -1, 0, 1):
        occurrence = _occurrence(window, local_day + dt.timedelta(days=offset), tz)
        if occurrence and occurrence[0] <= at < occurrence[1]:
            return True
    return False


def next_opening(window, instant):
    """The first instant at or after `instant` when the window is open (aware UTC).

    >>> w = CallingWindow(dt.time(2, 30), dt.time(5, 0), "America/New_York")
    >>> next_opening(w, dt.datetime(2024, 3, 10, 5, 0, tzinfo=UTC))  # 02:30 does not exist that day
    datetime.datetime(2024, 3, 10, 7, 0, tzinfo=datetime.timezone.utc)
    """
    at = _as_utc(instant)
    if is_open(window, at):
        return at
    tz = window.tz
    local_day = _wall(at, tz).date()
    # Occurrences open in local-date order, so the first one opening after `at` is the answer. A
    # non-empty set of weekdays recurs every week, so this ends within a few weeks.
    for offset in itertools.count(-2):
        occurrence = _occurrence(window, local_day + dt.timedelta(days=offset), tz)
        if occurrence and occurrence[0] >= at:
            return occurrence[0]


def occurrences(window, since, until):
    """The window's [opens, closes) intervals in order, from the first that closes after `since`
    through the first that closes after `until` (both aware).

    For any instant in [since, until], `next_opening` is max(instant, opens of the first interval
    closing after it) — which is how set-based re-timing applies the rule in SQL to many tasks.

    >>> w = CallingWindow(dt.time(10, 0), dt.time(18, 0), "UTC")
    >>> [(o.day, o.hour, c.hour) for o, c in occurrences(w, dt.datetime(2024, 6, 3, 19, 0, tzinfo=UTC),
    ...                                                  dt.datetime(2024, 6, 4, 12, 0, tzinfo=UTC))]
    [(4, 10, 18)]
    """
    since, until = _as_utc(since), _as_utc(until)
    tz = window.tz
    first_day = _wall(since, tz).date() - dt.timedelta(days=2)
    found = []
    for offset in itertools.count():
        occurrence = _occurrence(window, first_day + dt.timedelta(days=offset), tz)
        if occurrence is None or occurrence[1] <= since:
            continue
        found.append(occurrence)
        if occurrence[1] > until:
            return found
