"""Periodic upkeep run by beat: what keeps the dialer honest when messages or processes are lost.

- Campaigns past their end are ended (pending tasks archived).
- Campaign controls whose job stopped making progress (a lost worker or message) are resumed.
- Expired slot leases are checked with the carrier before their slot is freed (docs/architecture.md, flow step 5).
- Calls admitted whose dial job vanished (a Redis restart empties the broker) are dialed again;
  placing is idempotent by call id, so a job that was only slow places no second call.
- Calls live for suspiciously long are checked with the carrier, which ends the ones it lost.
"""
import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from campaigns.actions.control_jobs import resume_stalled_controls
from campaigns.actions.controls import do_finish_ended_campaigns
from config.queues import Queue
from config.redis_client import get_redis
from dialer import keys, slots
from dialer.dispatch_lock import nudge_dispatcher
from dialer.dispatcher import PRIORITY_QUEUES, publish_dial_jobs_by_queue
from telephony.calls import check_call_with_carrier, place_calls
from telephony.models import LIVE_CALL_STATUSES, Call, CallStatus

logger = logging.getLogger(__name__)

REDIAL_ADMITTED_AFTER = dt.timedelta(seconds=settings.REDIAL_ADMITTED_AFTER_SECONDS)
STALE_CALL_AFTER = dt.timedelta(seconds=settings.STALE_CALL_CHECK_SECONDS)
ORPHAN_LEASE_AFTER = dt.timedelta(seconds=60)
STALE_CHECK_EVERY_SECONDS = 60
MAX_CHECKS_PER_RUN = 200


def place_admitted_calls(call_ids):
    """The dial job's body: the calls go to their carriers at once (`telephony.calls.place_calls`)."""
    place_calls(call_ids)


def run_maintenance(now=None):
    """Each step reads an index of what there is to keep (campaigns by end time, live calls,
    organisations given leases): its cost follows calls and leases, not tenants."""
    now = now or timezone.now()
    do_finish_ended_campaigns(now)
    resume_stalled_controls(now)
    for organisation_id in organisations_to_reap():
        reap_leases(organisation_id, now)
    redial_stranded_calls(now)
    check_stale_calls(now)


def organisations_to_reap():
    """Organisations that may hold a lease: given one since the reaper last found them empty
    (tracked by `slots` as leases are acquired), or with a live call in PostgreSQL (after Redis
    lost its data, the leases of those calls are rebuilt)."""
    live = set(Call.objects.filter(status__in=LIVE_CALL_STATUSES).values_list("organisation_id", flat=True)
               .order_by().distinct())
    return sorted(live | slots.organisations_with_leases())


def lease_still_needed(call_id):
    """Reaper's question for an expired lease: is the call still live (as far as the carrier knows)?"""
    call = Call.objects.filter(id=call_id).only("status").first()
    if call is None or not call.is_live:
        return False
    return check_call_with_carrier(call_id)


def reap_leases(organisation_id, now=None):
    """Free the organisation's expired and orphan leases; nudge its dispatcher when slots were
    freed (work may be waiting for them), and stop visiting it once it holds none."""
    slots.sync_allocations(organisation_id)
    report = slots.reap_expired(organisation_id, lease_still_needed)
    orphans = release_orphan_leases(organisation_id, now or timezone.now())
    if report.freed or orphans:
        nudge_dispatcher(organisation_id)
    slots.forget_organisation_if_leaseless(organisation_id)


def release_orphan_leases(organisation_id, now):
    """Free leases whose call is not live in PostgreSQL (its release was lost: a Redis error at
    commit, or a rebuild racing the call's end). Only leases older than ORPHAN_LEASE_AFTER count:
    a younger one may belong to an admission whose transaction has not committed yet."""
    lease_ms = settings.SLOT_LEASE_SECONDS * 1000
    cutoff_ms = (now - ORPHAN_LEASE_AFTER).timestamp() * 1000
    old_enough = {call_id: token for call_id, (token, expires_at_ms) in slots.lease_records(organisation_id).items()
                  if expires_at_ms - lease_ms < cutoff_ms}
    if not old_enough:
        return []
    orphans = slots.release_leases_of_ended_calls(organisation_id, old_enough)
    if orphans:
        logger.warning("released %d orphan leases in organisation %s", len(orphans), organisation_id)
    return orphans


def redial_stranded_calls(now):
    """Re-publish admitted calls whose dial job vanished, to the dial queue they were admitted to."""
    stranded = list(Call.objects.filter(status=CallStatus.ADMITTED, placed_at__isnull=True,
                                        created_at__lt=now - REDIAL_ADMITTED_AFTER)
                    .values_list("id", "is_callback", "campaign__priority")[:1000])
    publish_dial_jobs_by_queue([(Queue.DIAL_CALLBACK if is_callback else PRIORITY_QUEUES[priority], str(call_id))
                                for call_id, is_callback, priority in stranded])
    return len(stranded)


def check_stale_calls(now):
    """Ask the carrier about calls live longer than STALE_CALL_AFTER, each at most once a minute."""
    redis = get_redis()
    checked = 0
    # An admitted call not yet claimed by a dial job is only waiting in its queue: not stale.
    stale = (Call.objects.filter(status__in=LIVE_CALL_STATUSES, created_at__lt=now - STALE_CALL_AFTER)
             .exclude(status=CallStatus.ADMITTED, placed_at__isnull=True)
             .order_by("created_at").values_list("id", flat=True)[:1000])
    for call_id in stale:
        if checked >= MAX_CHECKS_PER_RUN:
            break
        if not redis.set(keys.stale_check(call_id), 1, nx=True, ex=STALE_CHECK_EVERY_SECONDS):
            continue
        checked += 1
        try:
            check_call_with_carrier(str(call_id))
        except Exception:
            logger.exception("carrier check of call %s failed", call_id)
    return checked
