"""Fast insertion of new tasks: one multi-row INSERT ... RETURNING id per 1,000 rows.

Django's `bulk_create` builds its SQL field by field and costs ~0.6 ms a row for Task's 27
columns; `execute_values` with values prepared once per field is several times faster.
"""
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from psycopg2.extras import execute_values

from campaigns.models import Task

_FIELDS = [field for field in Task._meta.concrete_fields if not field.primary_key]


def insert_tasks(tasks):
    """INSERT unsaved Task instances, filling in their ids (and auto timestamps) in place."""
    if not tasks:
        return tasks
    for field in _FIELDS:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for task in tasks:
                field.pre_save(task, add=True)
    # psycopg2 adapts every column type of Task natively except JSON, which Django wraps.
    real_connection = connections[DEFAULT_DB_ALIAS]
    json_fields = {field.attname for field in _FIELDS if isinstance(field, models.JSONField)}
    rows = [[field.get_db_prep_save(getattr(task, field.attname), real_connection) if field.attname in json_fields
             else getattr(task, field.attname) for field in _FIELDS] for task in tasks]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in _FIELDS)
    sql = f"INSERT INTO {connection.ops.quote_name(Task._meta.db_table)} ({columns}) VALUES %s RETURNING id"
    with connection.cursor() as cursor:
        ids = execute_values(cursor.cursor, sql, rows, page_size=1000, fetch=True)
    for task, (task_id,) in zip(tasks, ids, strict=True):
        task.id = task_id
        task._state.adding = False
    return tasks
