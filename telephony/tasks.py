"""Celery tasks: thin wrappers that beat runs (the simulator tick, analysis timeouts, webhooks)."""
from celery import shared_task
from celery.signals import worker_init

from config.queues import Queue
from telephony import calls, events, simulator, webhooks_out

TASK_POLICY = {"acks_late": True, "reject_on_worker_lost": True, "queue": str(Queue.EVENTS), "ignore_result": True}


@shared_task(name="telephony.simulator_tick", **TASK_POLICY)
def simulator_tick(limit=2000, **kwargs):
    """Apply the simulated carrier's due events (for deployments without `run_simulator`)."""
    return simulator.process_due_events(limit=limit)


@shared_task(name="telephony.finalise_overdue_calls", **TASK_POLICY)
def finalise_overdue_calls(**kwargs):
    """End answered calls whose agent analysis did not arrive within ANALYSIS_WAIT_SECONDS."""
    return events.finalise_overdue_calls()


@shared_task(name="telephony.deliver_webhooks", **TASK_POLICY)
def deliver_webhooks(**kwargs):
    """Send outbound webhooks that are due (first tries and backoff retries)."""
    return webhooks_out.deliver_due_webhooks()


@worker_init.connect
def warm_up_placing(sender=None, **kwargs):
    """Before a worker takes its first job, so its first calls wait on no import or thread start.
    Placing threads only in a thread-pool worker: a prefork parent would never use its own. Their
    number follows the worker's `--concurrency`, an int by now unless it is `auto` (resolved
    only after this signal: then DIALER_CONCURRENCY's)."""
    concurrency = getattr(sender, "concurrency", None)
    calls.warm_up(placing_threads="thread" in str(getattr(sender, "pool_cls", "")),
                  job_threads=concurrency if isinstance(concurrency, int) else None)
