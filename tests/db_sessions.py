"""A database session of its own in a test: what another process (a dispatcher, a worker's batch)
would hold beside the test's connection."""
import psycopg2
from django.db import connection


def another_session():
    """A new psycopg2 connection to the test database, outside Django's connection handling."""
    db = connection.settings_dict
    return psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432)
