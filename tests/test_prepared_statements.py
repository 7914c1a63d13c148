"""Hot statements are prepared once per connection and give what the plain statement gives."""
import datetime as dt
import uuid

import pytest
from django.db import connection, transaction

from config.prepared import LARGEST_PREPARED_ARRAY, PreparedStatement

pytestmark = pytest.mark.django_db(transaction=True)


def prepared_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def run(statement, params=()):
    with connection.cursor() as cursor:
        statement.execute(cursor, params)
        return cursor.fetchall()


def test_positional_placeholders_keep_their_casts_and_a_negative_value_survives_its_cast():
    ids = [uuid.uuid4(), uuid.uuid4()]
    statement = PreparedStatement("SELECT %s::uuid[], %s::integer, %s, %s::timestamptz")
    at = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    [row] = run(statement, [[str(i) for i in ids], -(2**31), "plain", at])
    assert row == (ids, -(2**31), "plain", at)


def test_a_named_placeholder_used_twice_is_one_parameter():
    statement = PreparedStatement("SELECT %(a)s::integer + %(b)s::integer, %(a)s::integer * 10, '100%%'")
    assert statement.body == "SELECT $1::integer + $2::integer, $1::integer * 10, '100%'"
    assert run(statement, {"a": 4, "b": 1}) == [(5, 40, "100%")]


def test_it_is_prepared_once_per_connection_and_again_after_a_reconnect():
    statement = PreparedStatement("SELECT %s::integer + 1")
    assert run(statement, [1]) == [(2,)] and run(statement, [2]) == [(3,)]
    assert statement.name in prepared_names()
    connection.close()
    assert statement.name not in prepared_names()  # a new session
    assert run(statement, [3]) == [(4,)]
    assert statement.name in prepared_names()


def test_a_statement_prepared_in_a_transaction_that_rolls_back_is_still_there():
    statement = PreparedStatement("SELECT %s::integer * 2")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        assert run(statement, [2]) == [(4,)]
        raise Abort
    assert run(statement, [3]) == [(6,)]  # no second PREPARE (it would fail: the name exists)


def test_with_prepared_statements_off_it_runs_the_plain_statement(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    statement = PreparedStatement("SELECT %s::integer - 1")
    assert run(statement, [-(2**31) + 1]) == [(-(2**31),)]
    assert statement.name not in prepared_names()


def test_a_run_with_a_long_array_is_planned_for_its_own_values():
    statement = PreparedStatement("SELECT count(*) FROM unnest(%s::integer[])")
    assert run(statement, [list(range(LARGEST_PREPARED_ARRAY + 1))]) == [(LARGEST_PREPARED_ARRAY + 1,)]
    assert statement.name not in prepared_names()
    assert run(statement, [[1, 2]]) == [(2,)]
    assert statement.name in prepared_names()
