"""The Celery app: Redis broker, late acks, prefetch 1, dial queues consumed in priority order."""
import contextlib
import os

from celery import Celery
from celery.signals import beat_embedded_init, task_postrun, task_prerun, worker_init
from django.db import close_old_connections, connections
from kombu import Queue as KombuQueue

from config.queues import ALL_QUEUES, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dialer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [KombuQueue(str(q), routing_key=str(q)) for q in ALL_QUEUES]
app.conf.task_default_queue = str(Queue.EVENTS)
# "priority" makes the Redis transport BRPOP the queues in the order the worker lists them
# (`-Q dial.callback,dial.high,dial.normal,dial.low`), so a callback is never starved, and
# (`-Q events,controls`) a dispatcher run never waits behind a campaign control's batches.
app.conf.broker_transport_options = {
    "queue_order_strategy": "priority",
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
}
app.conf.worker_prefetch_multiplier = 1
app.conf.task_acks_late = True
# Celery's Django fixup closes every database connection before and after each job unless this
# (read under its old-style name) is set: each dial and dispatch job then opened a new
# PostgreSQL connection, whose new backend reads the catalogue afresh for every table it touches
# (~50 ms of a dial job's claim). Jobs keep their thread's connection as web requests do, with
# DATABASE_CONN_MAX_AGE and the health check deciding (`close_old_connections` below); the fixup
# only recycles one thread's connections once in this many jobs.
app.conf["CELERY_DB_REUSE_MAX"] = int(os.environ.get("CELERY_DB_REUSE_MAX", "10000"))


@worker_init.connect
def _close_start_up_connections(**kwargs):
    """Close the connection the worker's start-up checks opened (the fixup closed it along with
    every job's): processes forked from the worker, an embedded beat, must not share it."""
    connections.close_all()


@beat_embedded_init.connect
def _drop_inherited_connections(**kwargs):
    """An embedded beat (`-B`) is forked from its worker, so a connection it finds is the worker's:
    its socket is closed first, as the fixup does for pool processes, so that closing it does not
    end the worker's session, and the beat opens its own."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            with contextlib.suppress(OSError):
                os.close(conn.connection.fileno())
        with contextlib.suppress(Exception):  # the closed socket's error, whatever the driver calls it
            conn.close()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task=None, **kwargs):
    """Drop this thread's connection when it is past DATABASE_CONN_MAX_AGE or broke (a database
    restart), as Django does around every request, so a retried job reconnects. Not around a job
    run eagerly: it runs inside its caller's transaction."""
    if not getattr(getattr(task, "request", None), "is_eager", False):
        close_old_connections()


# django-celery-beat's DatabaseScheduler copies these into its tables at start-up.
# `expires` drops ticks a busy worker could not take in time instead of letting them pile up.
app.conf.beat_schedule = {
    "dialer-tick": {"task": "dialer.tick", "schedule": 1.0, "options": {"queue": str(Queue.EVENTS), "expires": 5}},
    "dialer-reconcile-wakeups": {"task": "dialer.reconcile_wakeups", "schedule": 10.0,
                                 "options": {"queue": str(Queue.EVENTS), "expires": 30}},
    "dialer-maintain": {"task": "dialer.maintain", "schedule": 5.0,
                        "options": {"queue": str(Queue.EVENTS), "expires": 30}},
    "telephony-finalise-overdue-calls": {"task": "telephony.finalise_overdue_calls", "schedule": 5.0,
                                         "options": {"queue": str(Queue.EVENTS), "expires": 30}},
    "telephony-deliver-webhooks": {"task": "telephony.deliver_webhooks", "schedule": 2.0,
                                   "options": {"queue": str(Queue.EVENTS), "expires": 10}},
}
app.autodiscover_tasks()
