"""Periodic upkeep run by beat: what keeps the dialer honest when messages or processes are lost.

- Campaigns past their end are ended (pending tasks archived).
- Campaign controls whose job stopped making progress (a lost worker or message) are resumed.
- Expired slot leases are checked with the carrier before their slot is freed (DESIGN Flow 5).
- Calls admitted whose dial job vanished (a Redis restart empties the broker) are dialed again;
  placing is idempotent by call id, so a job that was only slow places no second call.
- Calls live for suspiciously long are checked with the carrier, which ends the ones it lost.
"""
import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from campaigns.controls import do_finish_ended_campaigns, resume_stalled_controls
from campaigns.models import Campaign, CampaignStatus, Organisation
from config.redis_client import get_redis
from dialer import slots
from telephony.calls import check_call_with_carrier, place_call
from telephony.models import LIVE_CALL_STATUSES, Call, CallStatus

logger = logging.getLogger(__name__)

REDIAL_ADMITTED_AFTER = dt.timedelta(seconds=settings.REDIAL_ADMITTED_AFTER_SECONDS)
STALE_CALL_AFTER = dt.timedelta(seconds=settings.STALE_CALL_CHECK_SECONDS)
ORPHAN_LEASE_AFTER = dt.timedelta(seconds=60)
STALE_CHECK_EVERY_SECONDS = 60
MAX_CHECKS_PER_RUN = 200


def organisations_to_dispatch(now=None):
    """Organisations with at least one campaign that may be dialing now."""
    now = now or timezone.now()
    return list(
        Campaign.objects.filter(status__in=[CampaignStatus.SCHEDULED, CampaignStatus.RUNNING], start_at__lte=now)
        .filter(Q(end_at__isnull=True) | Q(end_at__gt=now))
        .values_list("workspace__organisation_id", flat=True).distinct()
    )


def place_admitted_calls(call_ids):
    for call_id in call_ids:
        try:
            place_call(call_id)
        except Exception:  # one call's failure must not strand the others in this job
            logger.exception("placing call %s failed", call_id)


def run_maintenance(now=None):
    now = now or timezone.now()
    do_finish_ended_campaigns(now)
    resume_stalled_controls(now)
    for organisation_id in Organisation.objects.values_list("id", flat=True):
        reap_leases(organisation_id)
    redial_stranded_calls(now)
    check_stale_calls(now)


def lease_still_needed(call_id):
    """Reaper's question for an expired lease: is the call still live (as far as the carrier knows)?"""
    call = Call.objects.filter(id=call_id).only("status").first()
    if call is None or not call.is_live:
        return False
    return check_call_with_carrier(call_id)


def reap_leases(organisation_id, now=None):
    slots.sync_allocations(organisation_id)
    slots.reap_expired(organisation_id, lease_still_needed)
    release_orphan_leases(organisation_id, now or timezone.now())


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
    from dialer.tasks import dial_calls

    stranded = list(Call.objects.filter(status=CallStatus.ADMITTED, placed_at__isnull=True,
                                        created_at__lt=now - REDIAL_ADMITTED_AFTER)
                    .values_list("id", flat=True)[:1000])
    for start in range(0, len(stranded), 20):
        dial_calls.delay([str(call_id) for call_id in stranded[start:start + 20]])
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
        if not redis.set(f"stale-check:{call_id}", 1, nx=True, ex=STALE_CHECK_EVERY_SECONDS):
            continue
        checked += 1
        try:
            check_call_with_carrier(str(call_id))
        except Exception:
            logger.exception("carrier check of call %s failed", call_id)
    return checked
