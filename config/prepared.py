"""Hot statements PostgreSQL plans once per connection instead of at every execution.

Planning the call path's joins costs the server more CPU than running them (the dial job's claim:
~2.2 ms to plan, ~0.3 ms to run; a call's locked read: 0.7 and 0.17). A `PreparedStatement`
is prepared (`PREPARE`) the first time a connection runs it and executed by name (`EXECUTE`)
after that. Its SQL is written as for `cursor.execute`, with `%s` or `%(name)s` placeholders;
a placeholder's cast (`%s::uuid[]`) is repeated on the EXECUTE's argument, since PostgreSQL
coerces those arguments only as an assignment would (an array of text is not a uuid[]).

Only runs with small arrays use the prepared statement: after five runs PostgreSQL may keep a
generic plan, which guesses every array's length (an `unnest` of 500 admissions planned as for
ten cost the dispatcher's large passes a fifth more than planning them each time). A run with an
array longer than `LARGEST_PREPARED_ARRAY` is planned for its own values, as a plain statement.

A statement prepared inside a transaction outlives its rollback: the record of what a connection
has prepared is kept per psycopg2 connection, so a reconnect prepares again. Select explicit
columns, never `*`: a prepared `*` fails once a migration adds a column. SQL-level PREPARE does
not survive a pooler in transaction mode (PgBouncer): `DATABASE_PREPARED_STATEMENTS=false` runs
every statement plainly.
"""
import itertools
import re
import weakref

from django.conf import settings

PLACEHOLDER = re.compile(r"%(?:\((?P<name>\w+)\))?s(?P<cast>::[\w\[\]]+)?")

LARGEST_PREPARED_ARRAY = 32  # a dial job's calls (20 at most) and a refill's few admissions fit
_numbers = itertools.count(1)
_prepared_by_connection = weakref.WeakKeyDictionary()  # psycopg2 connection → names prepared on it


class PreparedStatement:
    def __init__(self, sql):
        self.name = f"dialer_{next(_numbers)}"
        self.names = []  # the parameter each $n stands for: a name, or a position
        self.casts = []
        positions = itertools.count()

        def number(match):
            key = match["name"] if match["name"] is not None else next(positions)
            if key not in self.names:
                self.names.append(key)
                self.casts.append(match["cast"] or "")
            return f"${self.names.index(key) + 1}{match['cast'] or ''}"

        self.body = PLACEHOLDER.sub(number, sql).replace("%%", "%")  # PREPARE's text is sent as it is
        # A cast binds tighter than a minus sign: -2147483648::integer is out of range, (-2147483648)::integer is not.
        self.sql = PLACEHOLDER.sub(lambda match: f"({match.group(0).split('::')[0]}){match['cast']}" if match["cast"]
                                   else match.group(0), sql)
        arguments = ", ".join(f"(%s){cast}" if cast else "%s" for cast in self.casts)
        self.execute_sql = f"EXECUTE {self.name}({arguments})" if self.names else f"EXECUTE {self.name}"

    def execute(self, cursor, params=()):
        """Run the statement on `cursor` (a Django cursor) with `params` (a sequence, or a mapping
        for named placeholders), as `cursor.execute(sql, params)` would."""
        values = [params[key] for key in self.names] if isinstance(params, dict) else list(params)
        if not settings.DATABASE_PREPARED_STATEMENTS or any(
                isinstance(value, (list, tuple)) and len(value) > LARGEST_PREPARED_ARRAY for value in values):
            cursor.execute(self.sql, params)
            return
        raw = cursor.cursor.connection
        prepared = _prepared_by_connection.get(raw)
        if prepared is None:
            prepared = _prepared_by_connection[raw] = set()
        if self.name not in prepared:
            cursor.execute(f"PREPARE {self.name} AS {self.body}")
            prepared.add(self.name)
        cursor.execute(self.execute_sql, values)
