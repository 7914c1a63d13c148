"""The database backend's health check (config/postgres): a connection the server closed is replaced
before its next query; a healthy idle one is trusted without a round trip."""
import select

import pytest
from django.db import connection

from tests.db_sessions import another_session

pytestmark = pytest.mark.django_db(transaction=True)


def last_query_of(backend_pid):
    with another_session() as session, session.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [backend_pid])
        return cursor.fetchone()[0]


def wait_until_readable(raw_connection, timeout=5):
    poller = select.poll()
    poller.register(raw_connection.fileno(), select.POLLIN)
    assert poller.poll(timeout * 1000), "the server sent nothing to the connection"


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def start_of_next_request():
    """What Django does between two requests or jobs on a persistent connection, then the check it
    makes before the next request's first query."""
    connection.close_if_unusable_or_obsolete()
    connection.close_if_health_check_failed()


@pytest.fixture(autouse=True)
def health_checks_on():
    connection.ensure_connection()
    connection.health_check_enabled = True
    yield
    connection.close()


def test_a_healthy_idle_connection_is_checked_without_a_query():
    pid = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last query of the request'")
    start_of_next_request()
    assert connection.connection is not None
    assert last_query_of(pid) == "SELECT 'the last query of the request'"
    assert backend_pid() == pid


def test_a_connection_the_server_closed_is_replaced_before_the_next_query():
    pid = backend_pid()
    raw = connection.connection
    with another_session() as session, session.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_until_readable(raw)
    start_of_next_request()
    assert raw.closed
    assert backend_pid() != pid  # a new connection, and the query on it succeeded


def test_a_readable_connection_that_is_still_healthy_is_kept():
    # A notification stands for what a server may send an idle session unasked (a parameter
    # status after a configuration reload): the socket is readable, the connection is fine.
    pid = backend_pid()
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute("LISTEN health_check_test")
    with another_session() as session, session.cursor() as cursor:
        session.autocommit = True
        cursor.execute("NOTIFY health_check_test")
    wait_until_readable(raw)
    start_of_next_request()
    assert connection.connection is raw and not raw.closed
    assert last_query_of(pid) == "SELECT 1"  # it was asked, not trusted
    assert backend_pid() == pid
