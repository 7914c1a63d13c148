"""A benchmark's own database, on the server of DATABASE_URL, created and dropped around the run.

`use_throwaway_database(name)` points DATABASE_URL (before Django loads its settings) at `name`
and returns a `ThrowawayDatabase` whose `recreate()` and `drop()` run on the server's `postgres`
database.
"""
import os
from urllib.parse import urlparse, urlunparse

import psycopg2


class ThrowawayDatabase:
    def __init__(self, name, source_url):
        self.name = name
        self.source = urlparse(source_url)

    def _admin_connection(self):
        connection = psycopg2.connect(host=self.source.hostname, port=self.source.port or 5432,
                                      user=self.source.username or "postgres",
                                      password=self.source.password or None, dbname="postgres")
        connection.autocommit = True
        return connection

    def recreate(self):
        self.drop()
        connection = self._admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.name}"')
        connection.close()

    def drop(self):
        connection = self._admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        connection.close()


def use_throwaway_database(name):
    source_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dialer")
    os.environ["DATABASE_URL"] = urlunparse(urlparse(source_url)._replace(path=f"/{name}"))
    return ThrowawayDatabase(name, source_url)
