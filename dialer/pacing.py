"""Calls-per-second as an admission rule: which of a pass's ordered candidates may start now.

The dispatcher orders its candidates (docs/product.md §1), then, just before leasing their slots,
asks each calling number's bucket (`telephony.cps`) for as many turns as it has candidates. The
first candidates of each number, in that order, take the turns granted; the others stay queued
and are eligible again at their bucket's next turn (`Paced.next_turn_at`). Turns of candidates
the slot leases then refuse are given back, so a full campaign does not use up a number's rate.

Candidates without a calling number (the carrier's default caller ID) are not paced.
"""
import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection

from campaigns.models import CallingNumber
from telephony import cps


@dataclass
class Paced:
    allowed: list  # the candidates that took a turn (or need none), in the order given
    next_turn_at: dt.datetime | None  # the earliest instant a held candidate may go; None when none is held
    numbers: list = field(default_factory=list)  # per allowed candidate, its (number, rate), or None


def first_per_number(numbers, granted):
    """Which positions keep their place: the first `granted[n]` of each number n, in order.

    Pure. A position whose number is None is never held.

    >>> first_per_number(["A", "B", "A", None, "A"], {"A": 2, "B": 0})
    [True, False, True, True, False]
    """
    used = Counter()
    kept = []
    for number in numbers:
        if number is None:
            kept.append(True)
            continue
        kept.append(used[number] < granted.get(number, 0))
        used[number] += 1
    return kept


def take_turns_in_order(candidates, calling_number_ids, now):
    """Take calls-per-second turns for ordered candidates; `calling_number_ids[i]` is the calling
    number of `candidates[i]` (or None). Judged on the pass's own clock, `now`."""
    settings_by_id = _number_settings({i for i in calling_number_ids if i is not None})
    numbers = [settings_by_id.get(i) for i in calling_number_ids]
    wanted = defaultdict(int)
    rates = {}
    for entry in numbers:
        if entry is not None:
            number, rate = entry
            wanted[number] += 1
            rates[number] = rate
    now_ms = int(now.timestamp() * 1000)
    turns = cps.take_turns({number: (rates[number], count) for number, count in wanted.items()}, now_ms=now_ms)
    kept = first_per_number([entry[0] if entry else None for entry in numbers],
                            {number: t.granted for number, t in turns.items()})
    held_waits = [turns[number].wait_ms for number in wanted if turns[number].granted < wanted[number]]
    next_turn_at = now + dt.timedelta(milliseconds=min(held_waits)) if held_waits else None
    return Paced(allowed=[c for c, keep in zip(candidates, kept) if keep], next_turn_at=next_turn_at,
                 numbers=[entry for entry, keep in zip(numbers, kept) if keep])


def give_back_unused(paced, admitted):
    """Return the turns of allowed candidates the slot leases refused (`admitted[i]` False)."""
    unused = defaultdict(int)
    rates = {}
    for entry, was_admitted in zip(paced.numbers, admitted):
        if entry is not None and not was_admitted:
            unused[entry[0]] += 1
            rates[entry[0]] = entry[1]
    cps.give_back({number: (rates[number], count) for number, count in unused.items()})


def _number_settings(number_ids):
    if not number_ids:
        return {}
    # Plain SQL: every dispatcher pass asks, and compiling the ORM query costs more than running it.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, number, calls_per_second FROM {CallingNumber._meta.db_table} WHERE id = ANY(%s)",
                       [list(number_ids)])
        return {number_id: (number, rate) for number_id, number, rate in cursor.fetchall()}
