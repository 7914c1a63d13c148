"""Calls-per-second limit per calling number (carriers impose one), applied at admission.

A GCRA bucket in Redis per number (`lua/cps_take.lua`): up to `calls_per_second` calls may start
in any one second, and no more than that many at once. The dispatcher asks for the turns its
ordered candidates need before it leases their slots (`take_turns`), admits only the candidates
that got one, and gives back the turns of those the slot leases then refused (`give_back`). A
candidate without a turn stays queued and is eligible at the bucket's next turn; nothing ever
waits for one, so a rate-limited number holds no worker.

Worked example, a number allowed 3 calls per second, 5 candidates at t = 0 ms:
    take_turns({"+14155550100": (3, 5)}, now_ms=0)  → {"+14155550100": Turns(granted=3, wait_ms=334)}
    take_turns({"+14155550100": (3, 2)}, now_ms=334) → granted 1: one turn came back per 1/3 s.

Runs in the dispatcher's process; telephony knows nothing of tasks, only numbers and counts.
"""
from dataclasses import dataclass
from pathlib import Path

from config.redis_client import get_redis
from config.redis_scripts import ScriptSet
from telephony import keys

_scripts = ScriptSet(Path(__file__).resolve().parent / "lua", ("cps_take", "cps_give_back"))


@dataclass(frozen=True)
class Turns:
    granted: int
    wait_ms: int  # until the bucket's next turn after these (0 when one is free now)


bucket_key = keys.cps_bucket


def take_turns(wanted, now_ms=None):
    """Take turns for calls about to start: {number: (calls_per_second, count)} → {number: Turns}.

    One pipelined round trip for every number. `now_ms` None = Redis TIME.
    """
    if not wanted:
        return {}
    numbers = list(wanted)
    replies = _scripts.run_many(get_redis(), [
        _scripts.command("cps_take", [bucket_key(number)], [*wanted[number], "" if now_ms is None else int(now_ms)])
        for number in numbers])
    return {number: Turns(int(granted), int(wait_ms)) for number, (granted, wait_ms) in zip(numbers, replies)}


def give_back(unused):
    """Return turns taken but not used: {number: (calls_per_second, count)}."""
    unused = {number: (rate, count) for number, (rate, count) in unused.items() if count > 0}
    if not unused:
        return
    _scripts.run_many(get_redis(), [_scripts.command("cps_give_back", [bucket_key(number)], [rate, count])
                                     for number, (rate, count) in unused.items()])

