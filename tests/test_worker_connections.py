"""A Celery worker keeps its database connections from job to job, as a web worker keeps them
from request to request (Celery's Django fixup would otherwise close them around every job)."""
import pytest
from django.db import connection

from config import jobs
from tests.factories import OrganisationFactory
from bench.live_system import ROOT, LiveSystem, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

LOG = ROOT / "test-artifacts" / "worker-0.log"


def sessions_opened():
    """Connections PostgreSQL has accepted to the test database since its statistics began."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def jobs_succeeded(since):
    text = LOG.read_bytes()[since:].decode(errors="replace")
    return sum("dialer.dispatch_organisation" in line and "succeeded" in line for line in text.splitlines())


def test_forty_jobs_on_one_worker_open_no_connection_per_job():
    organisation = OrganisationFactory()
    LOG.parent.mkdir(exist_ok=True)
    start = LOG.stat().st_size if LOG.exists() else 0
    with LiveSystem(beat=False, simulator=False, concurrency=2, DATABASE_CONN_MAX_AGE=60):
        for _ in range(4):  # both pool processes connect
            jobs.enqueue(jobs.Job.DISPATCH_ORGANISATION, organisation.id)
        wait_until(lambda: jobs_succeeded(start) >= 4, timeout=60, message="the worker's first jobs")
        before = sessions_opened()
        for _ in range(40):
            jobs.enqueue(jobs.Job.DISPATCH_ORGANISATION, organisation.id)
        wait_until(lambda: jobs_succeeded(start) >= 44, timeout=60, message="forty dispatcher runs")
        opened = sessions_opened() - before
    assert opened <= 2  # none needed; at most a pool process's reconnect
