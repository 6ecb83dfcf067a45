"""A MySQL-family table as PostgreSQL DDL: a database becomes a schema.

``table_ddl`` renders CREATE TABLE (types from ``types.map_column``, the CHECKs
keeping the source's domains, identity for AUTO_INCREMENT, stored generated
columns), then its indexes and comments; ``foreign_key_ddl`` the foreign keys, run
once every table exists. What does not translate is kept out with a note naming
table and column, never silently: ON UPDATE clauses, FULLTEXT and SPATIAL indexes,
expressions the SQL translator cannot read.

Index names are per schema in PostgreSQL but per table in MySQL, so an index is
named ``<table>_<index>`` (cut to 63 bytes with a hash when longer).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from duosync.core.catalog import Column, DefaultKind, ForeignKey, Index, Table
from duosync.endpoints.postgres.dialect import qualified, quote_ident, quote_literal
from duosync.endpoints.postgres.types import map_column

_NAME_BYTES = 63
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_NOW = re.compile(r"current_timestamp(\((\d)?\))?|now\((\d)?\)", re.I)
_BIT = re.compile(r"b'([01]*)'", re.I)
_FK_ACTIONS = {"RESTRICT", "CASCADE", "SET NULL", "NO ACTION", "SET DEFAULT"}


@dataclass
class TableDdl:
    """Statements creating one table on PostgreSQL, and the notes.

    ``create`` makes the table (with its primary key, CHECKs and comments);
    ``indexes`` its secondary and unique indexes, built after the copy (COPY into
    a table without them, then one sort per index, is the fast way to load)."""

    create: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def statements(self) -> list[str]:
        return self.create + self.indexes


def index_name(table: str, index: str) -> str:
    """A schema-unique index name for MySQL index *index* of *table*."""
    name = f"{table}_{index}"
    if len(name.encode()) <= _NAME_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.encode()[: _NAME_BYTES - 9].decode(errors="ignore") + "_" + digest


def create_schema_sql(schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}"


def table_ddl(table: Table) -> TableDdl:
    """CREATE TABLE, its indexes and comments for *table* (its database is the schema)."""
    out = TableDdl()
    where = table.qualified
    parts = [_column_sql(table, col, out) for col in table.columns]
    for col in table.columns:
        check = map_column(col).check
        if check:
            parts.append(f"CHECK ({check})")
    if table.primary_key:
        parts.append(f"PRIMARY KEY ({', '.join(quote_ident(c) for c in table.primary_key)})")
    statements = [f"CREATE TABLE {qualified(table.database, table.name)} ({', '.join(parts)})"]
    for index in table.indexes:
        sql = _index_sql(table, index, out)
        if sql:
            out.indexes.append(sql)
    if table.comment:
        statements.append(
            f"COMMENT ON TABLE {qualified(table.database, table.name)}"
            f" IS {quote_literal(table.comment)}"
        )
    for col in table.columns:
        if col.comment:
            statements.append(
                f"COMMENT ON COLUMN {qualified(table.database, table.name)}."
                f"{quote_ident(col.name)} IS {quote_literal(col.comment)}"
            )
    # one note per kind of change, naming its columns (not one per column)
    by_note: dict[str, list[str]] = {}
    for col in table.columns:
        note = map_column(col).note
        if note:
            by_note.setdefault(note, []).append(col.name)
    for note, names in by_note.items():
        out.notes.append(f"{where}.{','.join(names)}: {note}")
    out.create = statements
    return out


def foreign_key_ddl(table: Table, fk: ForeignKey) -> str:
    """ALTER TABLE adding *fk* (the referenced database is the referenced schema)."""
    actions = []
    for clause, action in (("ON DELETE", fk.on_delete), ("ON UPDATE", fk.on_update)):
        if action.upper() in _FK_ACTIONS:
            actions.append(f"{clause} {action.upper()}")
    return (
        f"ALTER TABLE {qualified(table.database, table.name)} ADD CONSTRAINT"
        f" {quote_ident(index_name(table.name, fk.name))} FOREIGN KEY"
        f" ({', '.join(quote_ident(c) for c in fk.columns)}) REFERENCES"
        f" {qualified(fk.ref_database, fk.ref_table)}"
        f" ({', '.join(quote_ident(c) for c in fk.ref_columns)}) {' '.join(actions)}"
    ).rstrip()


def _column_sql(table: Table, col: Column, out: TableDdl) -> str:
    pg = map_column(col)
    where = f"{table.qualified}.{col.name}"
    kind = pg.sql
    if col.auto_increment and kind.startswith("numeric"):
        # an identity column must be an integer type: BIGINT UNSIGNED keys beyond
        # 2^63-1 cannot be held (the copy refuses such a row by name)
        kind = "bigint"
        out.notes.append(f"{where}: BIGINT UNSIGNED AUTO_INCREMENT becomes bigint identity")
    sql = f"{quote_ident(col.name)} {kind}"
    if col.generated is not None:
        expression = translate_expression(col.generated.expression)
        if expression is None:
            raise ValueError(
                f"{where}: generated column expression {col.generated.expression!r}"
                " cannot be translated to PostgreSQL"
            )
        if not col.generated.stored:
            out.notes.append(f"{where}: VIRTUAL generated column becomes STORED")
        return f"{sql} GENERATED ALWAYS AS ({expression}) STORED"
    if col.auto_increment:
        # BY DEFAULT: the copy writes the source's keys; the sequence is moved past
        # them after the copy
        sql += " GENERATED BY DEFAULT AS IDENTITY"
    elif col.default is not None:
        default = _default_sql(col)
        if default is None:
            out.notes.append(f"{where}: default {col.default.value!r} not translated")
        else:
            sql += f" DEFAULT {default}"
    if col.on_update:
        out.notes.append(
            f"{where}: ON UPDATE {col.on_update} has no PostgreSQL counterpart;"
            " the sync writes the source's values"
        )
    if not col.nullable:
        sql += " NOT NULL"
    return sql


def _default_sql(col: Column) -> str | None:
    default = col.default
    assert default is not None
    value = default.value
    if default.kind is DefaultKind.EXPRESSION:
        now = _NOW.fullmatch(value.strip())
        if now:
            digits = now.group(2) or now.group(3)
            return f"CURRENT_TIMESTAMP({digits})" if digits else "CURRENT_TIMESTAMP"
        return translate_expression(value)
    if col.data_type == "bit":
        bits = _BIT.fullmatch(value)
        return f"B'{bits.group(1).zfill(col.length or 1)}'" if bits else None
    if _NUMBER.fullmatch(value) and map_column(col).sql.split("(")[0] in _NUMERIC_PG:
        return value
    return quote_literal(value)


_NUMERIC_PG = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}


def _index_sql(table: Table, index: Index, out: TableDdl) -> str | None:
    where = f"{table.qualified} index {index.name}"
    if index.kind in ("FULLTEXT", "SPATIAL"):
        out.notes.append(f"{where}: {index.kind} index not created (no counterpart here)")
        return None
    keys = []
    for part in index.columns:
        col = quote_ident(part.name)
        if part.prefix:
            key = f"(left({col}, {part.prefix}))"
            if table.column(part.name).data_type in ("binary", "varbinary") or (
                map_column(table.column(part.name)).sql == "bytea"
            ):
                key = f"(substring({col} from 1 for {part.prefix}))"
        else:
            key = col
        keys.append(key + (" DESC" if part.descending else ""))
    unique = "UNIQUE " if index.unique else ""
    name = quote_ident(index_name(table.name, index.name))
    # IF NOT EXISTS: built again after a crash, only what is missing is built
    return (
        f"CREATE {unique}INDEX IF NOT EXISTS {name} ON {qualified(table.database, table.name)}"
        f" ({', '.join(keys)})"
    )


def translate_expression(expression: str) -> str | None:
    """A MySQL expression in PostgreSQL's SQL, or None when it cannot be read."""
    import sqlglot  # only a schema with expressions pays for the import
    from sqlglot.errors import SqlglotError

    try:
        out = sqlglot.transpile(expression, read="mysql", write="postgres")
    except SqlglotError:
        return None
    return out[0] if len(out) == 1 else None
