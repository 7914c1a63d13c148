"""The order in which eligible candidates are offered slots (docs/product.md §1, Ordering). Pure.

The two layers do not share one sort key: within a campaign the attempt layer (`dispatch_rank`)
decides, even against an earlier next-eligible time, while between campaigns of one priority the
earliest next-eligible time decides. So `order_candidates` sorts each campaign's candidates into a
stream by `within_campaign_key`, then merges the streams with a heap over their heads, keyed by
`ordering_key`: a campaign's first attempts all go before its seconds, yet a second attempt in
campaign A can still go before a first attempt in campaign B that became eligible later.

Due callbacks (callback_at <= now) outrank everything in both keys, earliest requested first.
`tie_break` is a random number fixed per task, so ties fall at random but the same way every pass.
Ordering only arranges what it is given: eligibility and slots are the caller's.
"""
import datetime as dt
import heapq
from collections import Counter
from dataclasses import dataclass

PRIORITY_LEVELS = {"high": 0, "normal": 1, "low": 2}


@dataclass(frozen=True)
class Candidate:
    task_id: int
    campaign_id: int
    campaign_priority: str
    dispatch_rank: int
    next_attempt_at: dt.datetime
    callback_at: dt.datetime | None
    tie_break: int


def _due_callback(candidate, now):
    return candidate.callback_at is not None and candidate.callback_at <= now


def within_campaign_key(candidate, now):
    """Sort key inside one campaign: due callbacks, then attempt layer, time, tie-break.

    E.g. batch: (rank 0, 12:05) goes before (rank 1, 09:00): all first attempts before any second.
    """
    if _due_callback(candidate, now):
        return (0, candidate.callback_at, candidate.tie_break, candidate.task_id)
    return (1, candidate.dispatch_rank, candidate.next_attempt_at, candidate.tie_break, candidate.task_id)


def ordering_key(candidate, now):
    """Sort key between campaign heads: due callbacks, then campaign priority, then earliest
    next-eligible time, then tie-break.

    E.g. a `normal` head eligible at 09:00 goes before a `normal` head eligible at 09:01, and both
    after any `high` head; a callback due at 08:59 goes before all three.
    """
    if _due_callback(candidate, now):
        return (0, candidate.callback_at, candidate.tie_break, candidate.task_id)
    return (1, PRIORITY_LEVELS[candidate.campaign_priority], candidate.next_attempt_at, candidate.tie_break,
            candidate.task_id)


def order_candidates(candidates, now):
    """The candidates in dispatch order, as a list: per-campaign streams merged by their heads.

    Campaign A (high) with a first and a second attempt, campaign B (normal) with a first attempt
    that waited longer: A's first, then A's second (priority wins between campaigns), then B's.

    >>> now = dt.datetime(2026, 6, 3, 12, 0, tzinfo=dt.timezone.utc)
    >>> def task(task_id, campaign, priority, rank, minutes_ago):
    ...     return Candidate(task_id, campaign, priority, rank, now - dt.timedelta(minutes=minutes_ago), None, 0)
    >>> [c.task_id for c in order_candidates([task(3, "B", "normal", 0, 60), task(2, "A", "high", 1, 5),
    ...                                        task(1, "A", "high", 0, 1)], now)]
    [1, 2, 3]

    100 equal tasks of one batch campaign are ordered by their random tie-breaks.
    """
    streams = {}
    for candidate in candidates:
        streams.setdefault(candidate.campaign_id, []).append(candidate)
    heads = []
    for campaign_id, stream in streams.items():
        stream.sort(key=lambda c: within_campaign_key(c, now), reverse=True)  # pop() from the end
        head = stream[-1]
        heads.append((ordering_key(head, now), campaign_id))
    heapq.heapify(heads)
    ordered = []
    while heads:
        _, campaign_id = heapq.heappop(heads)
        stream = streams[campaign_id]
        ordered.append(stream.pop())
        if stream:
            heapq.heappush(heads, (ordering_key(stream[-1], now), campaign_id))
    return ordered


def rank_tier(candidate, now):
    """The coarse rank no later candidate can beat: a due callback (0,), else (1, priority level).

    `order_candidates` never puts a lower tier before a higher one.
    """
    if _due_callback(candidate, now):
        return (0,)
    return (1, PRIORITY_LEVELS[candidate.campaign_priority])


def cut_behind_short_claims(ordered, last_claimed, now):
    """The prefix of `ordered` that may be offered slots, and whether anything was cut.

    `last_claimed` maps each campaign whose claim fell short — it claimed its limit, then lost
    some candidates to the re-check, so tasks it did not claim may rank above what was claimed
    elsewhere — to the last candidate it claimed. Its unclaimed tasks rank at or below that
    candidate's tier, so once the campaign's own candidates are used up nothing of that tier or
    below is offered; higher tiers still are.

    High campaign H claimed h1 and h2 and lost h2 to the re-check; normal campaign N claimed n1.
    H's unclaimed next task outranks n1, so n1 waits for the next pass:

    >>> now = dt.datetime(2026, 6, 3, 12, 0, tzinfo=dt.timezone.utc)
    >>> h1, h2, n1 = (Candidate(i, c, p, 0, now, None, 0) for i, c, p in [(1, "H", "high"), (2, "H", "high"),
    ...                                                                    (3, "N", "normal")])
    >>> cut_behind_short_claims([h1, n1], {"H": h2}, now) == ([h1], True)
    True
    """
    left = Counter(c.campaign_id for c in ordered if c.campaign_id in last_claimed)
    barriers = [rank_tier(last_claimed[campaign_id], now) for campaign_id in last_claimed if not left[campaign_id]]
    for index, candidate in enumerate(ordered):
        if barriers and rank_tier(candidate, now) >= min(barriers):
            return ordered[:index], True
        if candidate.campaign_id in left:
            left[candidate.campaign_id] -= 1
            if not left[candidate.campaign_id]:
                barriers.append(rank_tier(last_claimed[candidate.campaign_id], now))
    return ordered, False
