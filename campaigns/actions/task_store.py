"""Fast insertion of new tasks: ids drawn from the sequence in one query, rows sent with COPY.

Django's `bulk_create` builds its SQL field by field and costs ~0.6 ms a row for Task's 27
columns; even `execute_values` spends most of its time composing and parsing one huge statement.
COPY skips both, and drawing the ids first keeps what `bulk_create` gives: saved instances.

`copy_task_rows` is the one COPY into the task table: `insert_tasks` formats model instances for
it, the CSV import its own streamed rows (`campaigns/actions/csv_import.py`), in COPY's text format
(`NULL`, tab-separated, backslashes doubled).
"""
import io
import json

from django.contrib.postgres.fields import ArrayField
from django.db import connection, models

from campaigns.models import Task

_FIELDS = list(Task._meta.concrete_fields)
NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escaped(text):
    return text.translate(_COPY_ESCAPES) if "\\" in text or "\t" in text or "\n" in text or "\r" in text else text


def _array_element(value):
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _json(value):
    return _escaped(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def copy_array(value):
    """A list in COPY's text format as a PostgreSQL array literal."""
    return _escaped("{" + ",".join(_array_element(item) for item in value) + "}")


def _encoder(field):
    """How one column's Python value is written in COPY's text format (None → NULL)."""
    if isinstance(field, models.JSONField):
        encode = _json
    elif isinstance(field, ArrayField):
        encode = copy_array
    elif isinstance(field, models.DateTimeField | models.TimeField | models.DateField):
        encode = _isoformat
    elif isinstance(field, models.BooleanField):
        encode = _boolean
    elif isinstance(field, models.CharField | models.TextField):
        encode = _escaped
    else:
        encode = str
    return lambda value: NULL if value is None else encode(value)


def _isoformat(value):
    return value.isoformat()


def _boolean(value):
    return "t" if value else "f"


_COLUMNS = [(field.attname, _encoder(field)) for field in _FIELDS]
_AUTO_NOW = [field for field in _FIELDS if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)]


# Below this many rows one INSERT ... RETURNING (a single round trip) beats drawing ids and COPY.
COPY_FROM_ROWS = 20


def insert_tasks(tasks):
    """INSERT unsaved Task instances, filling in their ids (and auto timestamps) in place."""
    if len(tasks) < COPY_FROM_ROWS:
        return Task.objects.bulk_create(tasks)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [Task._meta.db_table, len(tasks)])
        ids = [row[0] for row in cursor.fetchall()]
        out = io.StringIO()
        for task, task_id in zip(tasks, ids, strict=True):
            task.id = task_id
            for field in _AUTO_NOW:
                field.pre_save(task, add=True)
            out.write("\t".join(encode(getattr(task, attname)) for attname, encode in _COLUMNS))
            out.write("\n")
    copy_task_rows([field.attname for field in _FIELDS], iter([out.getvalue()]))
    for task in tasks:
        task._state.adding = False
    return tasks


def copy_task_rows(attnames, chunks):
    """COPY rows in text format into the task table's columns for `attnames` (model attribute
    names). `chunks` is an iterator of text; psycopg2 sends each chunk as it reads it, so
    PostgreSQL stores one while the next is being formatted."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Task._meta.get_field(name).column) for name in attnames)
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {quote(Task._meta.db_table)} ({columns}) FROM STDIN", _ChunkReader(chunks))


class _ChunkReader:
    """The file COPY FROM STDIN reads, over an iterator of text chunks."""

    def __init__(self, chunks):
        self.chunks = chunks

    def read(self, size=-1):
        return next(self.chunks, "")
