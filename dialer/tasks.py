"""Celery jobs of the dialer. Each is thin: ids in, one call into the domain."""
from celery import shared_task

from config.job_policy import RETRY_ON_LOST_DATABASE
from config.queues import Queue
from dialer.dispatch_lock import claim_nudge

JOB_POLICY = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
# Dispatching and dialing are safe to run again after a lost database connection (one rolled-back
# transaction; dialing is idempotent by call id), and waiting for upkeep would delay calls by up
# to REDIAL_ADMITTED_AFTER_SECONDS. The beat jobs are not retried: the next tick runs them anyway.
RETRIED_JOB_POLICY = {**JOB_POLICY, **RETRY_ON_LOST_DATABASE}


def nudge_dispatcher(organisation_id):
    """Ask for a dispatcher run soon; a burst of nudges makes one job, not thousands."""
    if claim_nudge(organisation_id):
        dispatch_organisation_job.apply_async(args=[organisation_id], queue=str(Queue.EVENTS))


@shared_task(name="dialer.dispatch_organisation", **RETRIED_JOB_POLICY)
def dispatch_organisation_job(organisation_id, **kwargs):
    from dialer.dispatcher import dispatch_organisation

    return dispatch_organisation(organisation_id)


@shared_task(name="dialer.dial_calls", **RETRIED_JOB_POLICY)
def dial_calls(call_ids, **kwargs):
    """Place admitted calls. Idempotent by call id, so a redelivered job places no second call."""
    from dialer.maintenance import place_admitted_calls

    place_admitted_calls(call_ids)


@shared_task(name="dialer.tick", **JOB_POLICY)
def tick(**kwargs):
    """Every second (beat): nudge every organisation that has something to dial."""
    from dialer.maintenance import organisations_to_dispatch

    for organisation_id in organisations_to_dispatch():
        nudge_dispatcher(organisation_id)


@shared_task(name="dialer.maintain", **JOB_POLICY)
def maintain(**kwargs):
    """Every few seconds (beat): end campaigns past their end, reap leases, recover stuck calls."""
    from dialer.maintenance import run_maintenance

    run_maintenance()
