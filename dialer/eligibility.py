"""The dispatcher's last word on a claimed candidate, right before it is offered a slot. Pure.

A candidate was queued and due when it was claimed; `recheck` says whether it may be dialed now
or what becomes of it instead (docs/product.md §1: an attempt is never placed after the task's or
campaign's end, nor outside calling hours, nor past the attempt limit, nor to a number on the
do-not-call list, nor while the number has a live call in the organisation). The checks run in
that order, so a task both ended and listed is archived as ended.

>>> import datetime as dt
>>> from dialer.scheduling import TaskConfig
>>> from dialer.windows import CallingWindow
>>> at = lambda hour: dt.datetime(2026, 6, 3, hour, tzinfo=dt.timezone.utc)  # a Wednesday
>>> config = TaskConfig(agent_id=1, calling_number_id=None,
...     window=CallingWindow(dt.time(10), dt.time(20), "UTC"), start_after=at(0), end_at=at(23),
...     max_attempts=2, intervals_ms=(0,), priorities=None, retry_outcomes=frozenset())
>>> recheck(config, attempts_made=0, listed=False, number_live=False, now=at(12)).action
'dial'
>>> recheck(config, attempts_made=0, listed=False, number_live=False, now=at(8))
Recheck(action='reschedule', at=datetime.datetime(2026, 6, 3, 10, 0, tzinfo=datetime.timezone.utc), status='', reason='')
>>> recheck(config, attempts_made=0, listed=False, number_live=False, now=at(21)).reason  # tomorrow's opening is past the end
'ended'
>>> recheck(config, attempts_made=2, listed=False, number_live=False, now=at(12)).reason
'exhausted'
>>> recheck(config, attempts_made=0, listed=True, number_live=False, now=at(12)).reason
'dnc'
>>> recheck(config, attempts_made=0, listed=False, number_live=True, now=at(12)).action
'hold'
"""
import datetime as dt
from dataclasses import dataclass

from campaigns.vocabulary import CompletionReason, TaskStatus
from dialer.windows import is_open, next_opening

DIAL, HOLD, RESCHEDULE, FINISH = "dial", "hold", "reschedule", "finish"


@dataclass(frozen=True)
class Recheck:
    """`dial`; `hold` (stays queued as it is: the number's live call must end first);
    `reschedule` to `at` (the window's next opening); or `finish` as `status` with `reason`."""

    action: str
    at: dt.datetime | None = None
    status: str = ""
    reason: str = ""


def _finish(status, reason):
    return Recheck(FINISH, status=str(status), reason=str(reason))


def recheck(config, attempts_made, listed, number_live, now, window_open=None):
    """What becomes of a claimed candidate with `config` at `now` (see the module docstring).

    `listed`: its number is on the organisation's do-not-call list; `number_live`: the
    organisation has a live call to it. `window_open` may pass `is_open(config.window, now)`
    when the caller already knows it (many candidates share one window).
    """
    if config.end_at is not None and now >= config.end_at:
        return _finish(TaskStatus.ARCHIVED, CompletionReason.ENDED)
    if attempts_made >= config.max_attempts:
        return _finish(TaskStatus.COMPLETED, CompletionReason.EXHAUSTED)
    if listed:
        return _finish(TaskStatus.ARCHIVED, CompletionReason.DNC)
    if not (is_open(config.window, now) if window_open is None else window_open):
        opening = next_opening(config.window, now)
        if config.end_at is not None and opening >= config.end_at:
            return _finish(TaskStatus.ARCHIVED, CompletionReason.ENDED)
        return Recheck(RESCHEDULE, at=opening)
    if number_live:
        return Recheck(HOLD)
    return Recheck(DIAL)
