"""Django's PostgreSQL backend, with a health check that costs no round trip when it passes.

Django checks a persistent connection (`CONN_HEALTH_CHECKS`) with a `SELECT 1` before its first
use in every request and Celery job. On the carrier path that is a round trip before each webhook
and each dispatcher and dial job: several per call, each waiting for the database on a busy
machine (a fifth of a webhook's wall time in gunicorn). An idle connection has nothing to read,
unless the server has closed it (a restart, `pg_terminate_backend`, an idle timeout): then its
socket is readable, holding the server's last message or the end of the stream. So the socket is
polled first, and only a readable one gets the `SELECT 1` (which also tells a harmless
asynchronous message, such as a parameter status after a configuration reload, from a closed
connection). A connection lost without the server closing it (a silent network failure) fails its
first query, as it would have failed `SELECT 1`.
"""
import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if self.pool or self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if self.connection.closed or (_has_input(self.connection.fileno()) and not self.is_usable()):
            self.close()
        self.health_check_done = True


def _has_input(fd):
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
