"""Single-flight dispatch per organisation: a Redis lock with a token, and debounced nudges.

A nudge marks the organisation as wanting a run and publishes at most one dispatch job while a
mark is pending; the job clears the mark as it starts, so events arriving during a run cause
exactly one more run. While a run holds the lock, a nudge publishes nothing and leaves the
run's rerun mark instead: the holder looks at that mark after every pass and once more after it
releases the lock (`dialer.dispatcher.dispatch_organisation`), and the nudge's check of the lock
and its mark are one script, so the holder's last look comes after it. A crashed lock holder's
lock expires on its own.
"""
import secrets
from pathlib import Path

from config.jobs import Job, enqueue
from config.queues import Queue
from config.redis_client import get_redis
from config.redis_scripts import ScriptSet
from dialer import keys, wakeups

LOCK_SECONDS = 30
SUB_TICK_SECONDS = 1.0  # beat's tick period (config/celery.py)
NUDGE_PENDING_SECONDS = 5
RERUN_MARK_SECONDS = 60

_scripts = ScriptSet(Path(__file__).resolve().parent / "lua", ("lock_release", "lock_extend", "nudge"))


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


def nudge_dispatcher(organisation_id, held_number=None):
    """Ask for a dispatcher run soon; a burst of nudges makes one job, not thousands, and a nudge
    while a run holds the lock makes none (that run makes one more pass).

    `held_number`: the end of a call whose slot was freed before (wrap-up) asks for a run only if
    a pass held a task back for its number (`hold_numbers`); a run under way is marked anyway."""
    script_keys = [keys.dispatch_lock(organisation_id), keys.dispatch_rerun(organisation_id),
                   keys.dispatch_nudged(organisation_id)]
    args = [RERUN_MARK_SECONDS, NUDGE_PENDING_SECONDS]
    if held_number is not None:
        script_keys.append(keys.held_numbers(organisation_id))
        args.append(held_number)
    if _scripts.run(get_redis(), "nudge", script_keys, args) == 1:
        enqueue(Job.DISPATCH_ORGANISATION, organisation_id, queue=Queue.EVENTS)


def hold_numbers(organisation_id, numbers, seconds):
    """Record the numbers a pass held tasks back for, while it holds the dispatch lock."""
    pipe = get_redis().pipeline()
    pipe.sadd(keys.held_numbers(organisation_id), *numbers)
    pipe.expire(keys.held_numbers(organisation_id), seconds)
    pipe.execute()


def nudge_dispatcher_for(organisation_id, due_at, now):
    """Ask for a run for tasks that became dialable and are due at `due_at` (None: unknown, at once):
    a nudge when beat's next tick would come later, else the wake-up schedule moved to `due_at`,
    atomically with a rerun mark for a run under way (`wakeups.wake_for_new_work`)."""
    if due_at is None or (due_at - now).total_seconds() < SUB_TICK_SECONDS:
        nudge_dispatcher(organisation_id)
        return
    wakeups.wake_for_new_work(organisation_id, due_at, RERUN_MARK_SECONDS)


def nudge_dispatcher_at(organisation_id, instant, now):
    """Ask for a run at `instant` when it comes sooner than beat's next tick could take it (a
    calls-per-second turn a fraction of a second away); later instants are the wake-up schedule's."""
    delay = (instant - now).total_seconds()
    if delay < SUB_TICK_SECONDS and claim_nudge(organisation_id):
        enqueue(Job.DISPATCH_ORGANISATION, organisation_id, queue=Queue.EVENTS, countdown=max(delay, 0))


def claim_nudge(organisation_id):
    """True when this nudge should publish a dispatch job (none is pending yet)."""
    return bool(get_redis().set(keys.dispatch_nudged(organisation_id), 1, nx=True, ex=NUDGE_PENDING_SECONDS))


def clear_nudge(organisation_id):
    get_redis().delete(keys.dispatch_nudged(organisation_id))
