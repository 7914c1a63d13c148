"""Celery jobs keep their thread's database connection between jobs, as web requests do, and drop
it only when it is past DATABASE_CONN_MAX_AGE or broke (config/celery.py)."""
import time
import pytest
from celery.fixups.django import DjangoWorkerFixup
from celery.signals import task_postrun, task_prerun
from django.db import connection

from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


class Request:
    is_eager = False


class Job:
    """What the worker's signals are sent with: a task and its request."""
    name = "dialer.dial_calls"
    request = Request()


def run_jobs(count, fixup):
    """What a worker does around each job: the fixup's hooks, then ours, as Celery sends them."""
    job = Job()
    for _ in range(count):
        fixup.on_task_prerun(sender=job)
        task_prerun.send(sender=job, task=job, task_id="x", args=[], kwargs={})
        connection.ensure_connection()
        task_postrun.send(sender=job, task=job, task_id="x", args=[], kwargs={}, retval=None, state="SUCCESS")
        fixup.on_task_postrun(sender=job)


def test_jobs_in_one_thread_share_one_database_connection():
    connection.ensure_connection()
    opened = connection.connection
    run_jobs(5, DjangoWorkerFixup(app))
    assert connection.connection is opened


def test_a_connection_past_its_max_age_is_replaced_after_a_job():
    connection.ensure_connection()
    opened = connection.connection
    connection.close_at = time.monotonic() - 1
    run_jobs(1, DjangoWorkerFixup(app))
    connection.ensure_connection()
    assert connection.connection is not opened
