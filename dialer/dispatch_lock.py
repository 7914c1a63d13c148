"""Single-flight dispatch per organisation: a Redis lock with a token, and debounced nudges.

A nudge marks the organisation as wanting a run and publishes at most one dispatch job while a
mark is pending; the job clears the mark as it starts, so events arriving during a run cause
exactly one more run. A crashed lock holder's lock expires on its own.
"""
import secrets
from pathlib import Path

from config.jobs import Job, enqueue
from config.queues import Queue
from config.redis_client import get_redis
from config.redis_scripts import ScriptSet
from dialer import keys

LOCK_SECONDS = 30
NUDGE_PENDING_SECONDS = 5

_scripts = ScriptSet(Path(__file__).resolve().parent / "lua", ("lock_release", "lock_extend"))


class DispatchLock:
    """`with DispatchLock(org_id) as held:` — `held` is False when another dispatcher runs."""

    def __init__(self, organisation_id, seconds=LOCK_SECONDS):
        self.key = keys.dispatch_lock(organisation_id)
        self.seconds = seconds
        self.token = secrets.token_hex(16)
        self.held = False

    def __enter__(self):
        self.held = bool(get_redis().set(self.key, self.token, nx=True, ex=self.seconds))
        return self.held

    def extend(self):
        """Keep the lock through a long run; False if it expired and someone else took it."""
        return _scripts.run(get_redis(), "lock_extend", [self.key], [self.token, self.seconds * 1000]) == 1

    def __exit__(self, *exc):
        if self.held:
            _scripts.run(get_redis(), "lock_release", [self.key], [self.token])
        return False


def nudge_dispatcher(organisation_id):
    """Ask for a dispatcher run soon; a burst of nudges makes one job, not thousands."""
    if claim_nudge(organisation_id):
        enqueue(Job.DISPATCH_ORGANISATION, organisation_id, queue=Queue.EVENTS)


def claim_nudge(organisation_id):
    """True when this nudge should publish a dispatch job (none is pending yet)."""
    return bool(get_redis().set(keys.dispatch_nudged(organisation_id), 1, nx=True, ex=NUDGE_PENDING_SECONDS))


def clear_nudge(organisation_id):
    get_redis().delete(keys.dispatch_nudged(organisation_id))
