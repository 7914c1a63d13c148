"""Celery jobs of the dialer. Each is thin: ids in, one call into the domain."""
from celery import shared_task
from django.utils import timezone

from config.job_policy import RETRY_ON_LOST_DATABASE
from config.jobs import Job
from dialer import wakeups
from dialer.dispatch_lock import nudge_dispatcher
from dialer.dispatcher import dispatch_organisation
from dialer.maintenance import place_admitted_calls, run_maintenance

JOB_POLICY = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
# Dispatching and dialing are safe to run again after a lost database connection (one rolled-back
# transaction; dialing is idempotent by call id), and waiting for upkeep would delay calls by up
# to REDIAL_ADMITTED_AFTER_SECONDS. The beat jobs are not retried: the next tick runs them anyway.
RETRIED_JOB_POLICY = {**JOB_POLICY, **RETRY_ON_LOST_DATABASE}


@shared_task(name=str(Job.DISPATCH_ORGANISATION), **RETRIED_JOB_POLICY)
def dispatch_organisation_job(organisation_id, **kwargs):
    return dispatch_organisation(organisation_id)


@shared_task(name=str(Job.DIAL_CALLS), **RETRIED_JOB_POLICY)
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
