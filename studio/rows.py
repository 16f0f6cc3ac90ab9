"""Model instances from hand-written SELECTs that join several tables.

The pages every member keeps open (the polled job status above all) spend more CPU in Django
compiling their querysets than in anything else. A fixed statement built once from the models'
own metadata, with each row turned back into instances by the fields' own database converters
(exactly what the ORM applies), costs a fraction of that and works on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from django.db import connection


class Columns:
    """One model's columns in a joined SELECT, under a table alias."""

    def __init__(self, model, alias: str, names: tuple[str, ...] | None = None):
        """`names`: only these fields (the primary key among them); the rest are deferred."""
        self.model, self.alias = model, alias
        self.fields = [
            field
            for field in model._meta.concrete_fields
            if names is None or field.name in names or field.attname in names
        ]
        self.attnames = [field.attname for field in self.fields]
        self._converters = None

    def sql(self) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(field.column)}" for field in self.fields)

    def digest_sql(self) -> str:
        """One SQL expression that changes when any of these columns does. PostgreSQL hashes
        the row with each type's own hash function (64 bits; no value is turned into text);
        elsewhere it is the MD5 of the values as text (SQLite's MD5 is Django's), each written
        after its length so that no two rows run together into the same text, NULL as '-'."""
        quote = connection.ops.quote_name
        columns = [f"{self.alias}.{quote(field.column)}" for field in self.fields]
        if connection.vendor == "postgresql":
            return f"hash_record_extended(ROW({', '.join(columns)}), 0)"
        texts = [f"CAST({column} AS TEXT)" for column in columns]
        parts = [f"COALESCE(CAST(LENGTH({text}) AS TEXT) || ':' || {text}, '-')" for text in texts]
        return f"MD5({' || '.join(parts)})"

    @property
    def table(self) -> str:
        return connection.ops.quote_name(self.model._meta.db_table)

    def instance(self, row, start: int):
        """The instance held by row[start:start + len(fields)], or None for a LEFT JOIN's miss;
        and where the next model's columns start."""
        end = start + len(self.fields)
        values = list(row[start:end])
        if values[self.fields.index(self.model._meta.pk)] is None:
            return None, end
        for position, converters in self.converters():
            value = values[position]
            for convert in converters:
                value = convert(value, self.fields[position], connection)
            values[position] = value
        return self.model.from_db(connection.alias, self.attnames, values), end

    def converters(self) -> list:
        if self._converters is None:
            found = []
            for position, field in enumerate(self.fields):
                column = field.get_col(self.model._meta.db_table)
                chain = connection.ops.get_db_converters(column) + field.get_db_converters(
                    connection
                )
                if chain:
                    found.append((position, chain))
            self._converters = found
        return self._converters
