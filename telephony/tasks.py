"""Celery tasks: thin wrappers that beat runs (the simulator tick, analysis timeouts, webhooks)."""
from celery import shared_task

from config.queues import Queue
from telephony import events, simulator, webhooks_out

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
