"""A database restart or failover, as the API's clients meet it: a live gunicorn with persistent
connections (DATABASE_CONN_MAX_AGE) in front of real PostgreSQL, whose backends are all killed."""
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests
from django.db import InterfaceError, OperationalError, connection

from dialer.tasks import dial_calls
from tests.factories import ApiKeyFactory, OrganisationFactory, WorkspaceFactory
from bench.live_system import ROOT, free_port, process_env

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def live_web(**env):
    """One gunicorn worker on a free loopback port, against the test database; yields its base URL."""
    port = free_port()
    log = open(ROOT / "test-artifacts" / "failover-web.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--no-control-socket"],
        cwd=ROOT, env=process_env(DATABASE_CONN_MAX_AGE=60, **env), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/api/v1/ready-check", timeout=10)  # a 404 that touches no database
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def kill_every_other_backend():
    """Every backend of the test database but this test's own: what a restart looks like to clients."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.fixture
def auth():
    workspace = WorkspaceFactory(organisation=OrganisationFactory(total_slots=10), slots=5)
    return {"Authorization": f"Bearer {ApiKeyFactory(workspace=workspace).raw_key}"}


def test_first_request_after_every_backend_was_killed_succeeds(auth):
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    with live_web() as base:
        assert requests.get(f"{base}/api/v1/campaigns", headers=auth, timeout=10).status_code == 200
        assert kill_every_other_backend() >= 1  # the web worker's persistent connection
        response = requests.get(f"{base}/api/v1/campaigns", headers=auth, timeout=10)
        assert response.status_code == 200, response.text


def test_a_request_that_meets_a_lost_connection_is_a_503_to_retry_and_the_next_one_succeeds(auth):
    # Without the health check the request meets the dead connection mid-way, as one in flight
    # during a failover does.
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    with live_web(DATABASE_CONN_HEALTH_CHECKS="false") as base:
        assert requests.get(f"{base}/api/v1/campaigns", headers=auth, timeout=10).status_code == 200
        assert kill_every_other_backend() >= 1
        failed = requests.get(f"{base}/api/v1/campaigns", headers=auth, timeout=10)
        assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
        assert failed.json()["errors"][0]["field"] is None
        assert requests.get(f"{base}/api/v1/campaigns", headers=auth, timeout=10).status_code == 200


@pytest.mark.parametrize("error", [OperationalError("server closed the connection unexpectedly"),
                                   InterfaceError("connection already closed")])
def test_a_dial_job_that_meets_a_lost_connection_is_retried(monkeypatch, error):
    runs = []

    def place_admitted_calls(call_ids):
        runs.append(call_ids)
        if len(runs) == 1:
            raise error

    monkeypatch.setattr("dialer.tasks.place_admitted_calls", place_admitted_calls)
    dial_calls.apply(args=[["call-1"]]).get()
    assert runs == [["call-1"], ["call-1"]]


def test_a_dial_job_gives_up_when_the_database_stays_down(monkeypatch):
    runs = []

    def place_admitted_calls(call_ids):
        runs.append(call_ids)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("dialer.tasks.place_admitted_calls", place_admitted_calls)
    with pytest.raises(OperationalError):
        dial_calls.apply(args=[["call-1"]]).get()
    assert len(runs) == 1 + dial_calls.max_retries
