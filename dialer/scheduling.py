"""A task's effective calling config, and when its attempts may be placed. Pure, no clock inside.

`resolve_config` reads attributes of a task and its campaign (saved or not) and never queries;
the timing functions take `now` or the end of the last attempt as arguments.
"""
import datetime as dt
from dataclasses import dataclass

from campaigns.vocabulary import CampaignType
from dialer.windows import CallingWindow, next_opening


# The longest gap between attempts, for campaigns and tasks alike: a leap year. Keeps every
# schedule computable (intervals are summed into datetimes).
MAX_RETRY_INTERVAL_MS = 366 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TaskConfig:
    """Everything that decides when and whether a task's attempts are placed.

    `max_attempts` counts every attempt (first included); `intervals_ms[k]` is the gap from the end
    of attempt k + 1 to attempt k + 2; `priorities[k]` ranks attempt k + 1 (realtime, higher first).
    """

    agent_id: int
    calling_number_id: int | None
    window: CallingWindow
    start_after: dt.datetime
    end_at: dt.datetime | None
    max_attempts: int
    intervals_ms: tuple
    priorities: tuple | None
    retry_outcomes: frozenset


def _first_set(*values):
    return next((value for value in values if value is not None), None)


def _latest(*instants):
    return max(instant for instant in instants if instant is not None)


def _earliest(*instants):
    present = [instant for instant in instants if instant is not None]
    return min(present) if present else None


def resolve_config(task, campaign):
    """The config `task` is dialled with: its own fields where set, else its campaign's.

    Windows and end times combine: the task starts no earlier than either start and ends at the
    earlier end. A batch campaign's retry settings apply to all its tasks (max_attempts =
    max_retries + 1, one interval per retry). E.g. a realtime task with `start_after` 09:00 in a
    campaign starting 10:00 and ending 18:00, with `end_after` 17:00, gets start_after 10:00 and
    end_at 17:00.
    """
    if campaign.type == CampaignType.BATCH:
        max_attempts = campaign.max_retries + 1
        intervals = (campaign.retry_interval_ms,) * campaign.max_retries
        priorities = None
        retry_outcomes = campaign.retry_outcomes
    else:
        max_attempts = _first_set(task.max_attempts, campaign.max_retries + 1)
        intervals = _first_set(task.intervals_ms, (campaign.retry_interval_ms,) * (max_attempts - 1))
        priorities = tuple(task.priorities) if task.priorities is not None else None
        retry_outcomes = _first_set(task.retry_outcomes, campaign.retry_outcomes)
    window = CallingWindow(
        start=_first_set(task.calling_start, campaign.calling_start),
        end=_first_set(task.calling_end, campaign.calling_end),
        timezone=task.timezone or campaign.timezone,
        days=frozenset(campaign.calling_days),
    )
    return TaskConfig(
        agent_id=_first_set(task.agent_id, campaign.agent_id),
        calling_number_id=_first_set(task.calling_number_id, campaign.calling_number_id),
        window=window,
        start_after=_latest(task.start_after, campaign.start_at),
        end_at=_earliest(task.end_after, campaign.end_at),
        max_attempts=max_attempts,
        intervals_ms=tuple(intervals),
        priorities=priorities,
        retry_outcomes=frozenset(retry_outcomes),
    )


def _before_end(config, instant):
    return instant if config.end_at is None or instant < config.end_at else None


def first_attempt_at(config, now):
    """When the first attempt may be placed: the window's first opening at or after both `now` and
    the start, or None when that is at or past the end (the task is then archived, reason `ended`).

    E.g. window 10:00–18:00 UTC, start_after Mon 12:00, now Mon 19:00 → Tue 10:00.
    """
    return _before_end(config, next_opening(config.window, max(now, config.start_after)))


def retry_interval(config, attempts_made):
    """The gap after attempt number `attempts_made` (1-based), as a timedelta.

    The last interval repeats if the list is shorter than the retries (only for configs that bypass
    validation); no intervals means no gap. E.g. intervals (180000, 600000): after attempt 2 → 10 min.
    """
    if not config.intervals_ms:
        return dt.timedelta(0)
    index = min(attempts_made, len(config.intervals_ms)) - 1
    return dt.timedelta(milliseconds=config.intervals_ms[max(index, 0)])


def next_attempt_after(config, attempts_made, ended_at):
    """When attempt `attempts_made + 1` may be placed after attempt `attempts_made` ended at `ended_at`:
    max(start, ended_at + interval) moved into the window; None at or past the end.

    E.g. window 10:00–18:00 UTC, interval 1 h, attempt ended Mon 17:30 → Tue 10:00; ended Mon
    11:00 → Mon 12:00. Whether there is a next attempt at all is `retry_policy`'s call.
    """
    earliest = max(config.start_after, ended_at + retry_interval(config, attempts_made))
    return _before_end(config, next_opening(config.window, earliest))


def dispatch_rank(campaign_type, attempts_made, priorities):
    """The within-campaign attempt layer of the product's order (docs/product.md §1)ing, lower dials first.

    Batch: attempts made (every first attempt before any second). Realtime: minus the next
    attempt's priority (higher first), 0 when the task gives none. E.g. realtime, priorities
    (100, 50), 1 attempt made → -50.
    """
    if campaign_type == CampaignType.BATCH:
        return attempts_made
    if priorities and attempts_made < len(priorities):
        return -priorities[attempts_made]
    return 0
