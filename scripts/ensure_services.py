"""Make sure PostgreSQL answers and the application database exists, and that Redis answers.

Run before migrations by `make run` and `make test`; exits non-zero with a plain message otherwise.
"""
import os
import sys
import time

import dj_database_url
import psycopg2
import redis
from psycopg2 import sql


def wait_for(what, check, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except Exception as error:  # noqa: BLE001 - any failure means "not up yet"
            if time.monotonic() > deadline:
                sys.exit(f"{what} is not answering: {error}")
            time.sleep(0.5)


def ensure_database():
    config = dj_database_url.parse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dialer"))
    params = dict(host=config["HOST"] or None, port=config["PORT"] or None, user=config["USER"] or None,
                  password=config["PASSWORD"] or None)
    connection = wait_for("PostgreSQL", lambda: psycopg2.connect(dbname="postgres", **params))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
            print(f"created database {config['NAME']}")
    connection.close()


def ensure_redis():
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    wait_for("Redis", client.ping)


if __name__ == "__main__":
    ensure_database()
    ensure_redis()
