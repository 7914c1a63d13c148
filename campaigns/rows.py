"""Model instances to and from plain SQL, for hot paths where compiling the ORM's query costs more
CPU than the database spends answering it. A query selects each model's `select_list` in turn;
`instances_from_row` cuts the row back into instances, each field decoded as the ORM would;
`save_fields` writes some of an instance's fields back."""
import functools
import re

from django.db import DEFAULT_DB_ALIAS, connection, connections

from config.prepared import PreparedStatement


def select_list(model, alias):
    """The model's concrete columns, in field order, qualified by the table's alias in the query."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def instances_from_row(row, *models):
    """One instance per model from a row that selected each model's `select_list`, in that order."""
    db = connections[DEFAULT_DB_ALIAS]
    instances, start = [], 0
    for model in models:
        count, attnames, decoders = _decoding(model)
        values = list(row[start:start + count])
        if len(values) != count:
            raise ValueError(f"the row has {len(values)} of {model.__name__}'s {count} columns")
        start += count
        for index, decode in decoders:
            values[index] = decode(values[index], None, db)
        instances.append(model.from_db(DEFAULT_DB_ALIAS, attnames, values))
    return instances


@functools.cache
def _decoding(model):
    """(column count, attribute names, [(index, from_db_value)]) of a model's concrete fields:
    looked up once, not for every row (a tenth of a dial job's CPU)."""
    fields = model._meta.concrete_fields
    decoders = [(index, field.from_db_value) for index, field in enumerate(fields) if hasattr(field, "from_db_value")]
    return len(fields), [field.attname for field in fields], decoders


def save_fields(instance, names):
    """`instance.save(update_fields=names)` as one plain UPDATE by primary key, for models with no
    save signals; auto_now fields among `names` are stamped as the ORM would. No names: nothing."""
    if not names:
        return
    meta = type(instance)._meta
    fields = [meta.get_field(name) for name in sorted(names)]
    values = [field.get_db_prep_save(field.pre_save(instance, add=False), connection) for field in fields]
    with connection.cursor() as cursor:
        _update_statement(type(instance), tuple(field.column for field in fields)).execute(
            cursor, [*values, meta.pk.get_db_prep_value(instance.pk, connection)])


@functools.cache
def _update_statement(model, columns):
    """The UPDATE of these columns by primary key; each value cast to its column's type, which
    the EXECUTE of a prepared statement needs (an array of text is not a smallint[])."""
    meta = model._meta
    quote = connection.ops.quote_name
    by_column = {field.column: field for field in meta.concrete_fields}
    assignments = ", ".join(f"{quote(column)} = %s::{_cast(by_column[column])}" for column in columns)
    return PreparedStatement(f"UPDATE {quote(meta.db_table)} SET {assignments} "
                             f"WHERE {quote(meta.pk.column)} = %s::{_cast(meta.pk)}")


def _cast(field):
    """The field's column type as a cast: `varchar(64)` → `varchar`, `timestamp with time zone` →
    `timestamptz` (the length and precision checks stay the column's)."""
    db_type = re.sub(r"\(.*?\)", "", field.rel_db_type(connection) if field.is_relation else field.db_type(connection))
    return LONG_TYPE_NAMES.get(db_type, db_type)


LONG_TYPE_NAMES = {"timestamp with time zone": "timestamptz", "time without time zone": "time",
                   "double precision": "float8"}
