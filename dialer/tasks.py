"""Celery jobs of the dialer. Each is thin: ids in, one call into the domain."""
from celery import shared_task
from django.utils import timezone

from config.jobs import Job
from dialer import wakeups
from dialer.dispatch_lock import nudge_dispatcher
from dialer.dispatcher import dispatch_organisation
from dialer.maintenance import place_admitted_calls, run_maintenance

JOB_POLICY = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)


@shared_task(name=str(Job.DISPATCH_ORGANISATION), **JOB_POLICY)
def dispatch_organisation_job(organisation_id, **kwargs):
    return dispatch_organisation(organisation_id)


@shared_task(name=str(Job.DIAL_CALLS), **JOB_POLICY)
def dial_calls(call_ids, **kwargs):
    """Place admitted calls. Idempotent by call id, so a redelivered job places no second call."""
    place_admitted_calls(call_ids)


@shared_task(name="dialer.tick", **JOB_POLICY)
def tick(**kwargs):
    """Every second (beat): nudge the organisations whose wake-up instant has come."""
    for organisation_id in wakeups.take_due(timezone.now()):
        nudge_dispatcher(organisation_id)


@shared_task(name="dialer.reconcile_wakeups", **JOB_POLICY)
def reconcile_wakeups(**kwargs):
    """Every few seconds (beat): re-derive a page of organisations' wake-ups from PostgreSQL."""
    wakeups.reconcile(timezone.now())


@shared_task(name="dialer.maintain", **JOB_POLICY)
def maintain(**kwargs):
    """Every few seconds (beat): end campaigns past their end, reap leases, recover stuck calls."""
    run_maintenance()
