"""Retry policy for Celery jobs that meet a lost database connection.

A PostgreSQL restart or failover drops every connection: a job that was using one fails with
`OperationalError` (or `InterfaceError` on a connection already closed) and its transaction is
rolled back. Jobs that are safe to run again (idempotent by id, one transaction each) retry a
few times, seconds apart, by which time the database is back and Celery has replaced the broken
connection (its Django fix-up closes unusable connections before every job). The retries are
bounded so a database that stays down fails the job instead of feeding the queue forever; what
such a job would have done is redone by the periodic upkeep (`dialer.maintain`, the tick).
"""
from django.db import InterfaceError, OperationalError

TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)

RETRY_ON_LOST_DATABASE = dict(
    autoretry_for=TRANSIENT_DATABASE_ERRORS,
    max_retries=3,
    retry_backoff=1,  # 1 s, 2 s, 4 s (jittered): a restart takes seconds
    retry_backoff_max=8,
    retry_jitter=True,
)
