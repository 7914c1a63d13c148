"""Calls-per-second limit per calling number (carriers impose one), shared by every worker.

A GCRA bucket in Redis per number (`lua/cps_take.lua`): up to `calls_per_second` calls may start
in any one second. A dial job waits its turn briefly rather than being re-queued: the wait is
bounded by the job's own size divided by the rate.
"""
import time
from pathlib import Path

from config.redis_client import get_redis

SCRIPT = (Path(__file__).resolve().parent / "lua" / "cps_take.lua").read_text()
MAX_WAIT_SECONDS = 30


def bucket_key(number):
    return f"cps:{number}"


def take(number, calls_per_second, now_ms=None):
    """0 if a call from `number` may start now (and counts it), else the ms to wait first."""
    script = get_redis().register_script(SCRIPT)  # hashes locally; runs by EVALSHA
    return int(script(keys=[bucket_key(number)], args=[calls_per_second, "" if now_ms is None else now_ms]))


def wait_for_turn(number, calls_per_second, sleep=time.sleep):
    """Block until a call from `number` may start; True when it may, False after MAX_WAIT_SECONDS."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while (wait_ms := take(number, calls_per_second)) > 0:
        if time.monotonic() + wait_ms / 1000 > deadline:
            return False
        sleep(wait_ms / 1000)
    return True
