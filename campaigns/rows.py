"""Model instances from plain SQL rows, for hot paths where compiling the ORM's query costs more
CPU than the database spends answering it. A query selects each model's `select_list` in turn;
`instances_from_row` cuts the row back into instances, each field decoded as the ORM would."""
from django.db import connection


def select_list(model, alias):
    """The model's concrete columns, in field order, qualified by the table's alias in the query."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def instances_from_row(row, *models):
    """One instance per model from a row that selected each model's `select_list`, in that order."""
    instances, start = [], 0
    for model in models:
        fields = model._meta.concrete_fields
        values = row[start:start + len(fields)]
        start += len(fields)
        converted = [field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
                     for field, value in zip(fields, values, strict=True)]
        instances.append(model.from_db(connection.alias, [field.attname for field in fields], converted))
    return instances
