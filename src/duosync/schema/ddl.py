"""Render translated (target-side) neutral objects as MySQL-family DDL text.

Input is always the output of ``schema.translate``: names, charsets and
expressions are already what the target should have. Identifiers go through
``quote_ident``; the only literals are ENUM/SET members, defaults and comments,
through ``quote_literal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from duosync.config import Flavor
from duosync.core.catalog import Column, DefaultKind, ForeignKey, Index, Table, View
from duosync.endpoints.mysql.dialect import qualified, quote_ident, quote_literal
from duosync.endpoints.mysql.types import SPATIAL_TYPES

_TEXT_BLOB_JSON = frozenset(
    {
        "tinytext",
        "text",
        "mediumtext",
        "longtext",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "json",
    }
    | SPATIAL_TYPES
)


class Storage(StrEnum):
    """OceanBase table storage format (column groups)."""

    DEFAULT = "default"
    ROW = "row"
    COLUMN = "column"
    HYBRID = "hybrid"


_COLUMN_GROUPS = {
    Storage.ROW: "all columns",
    Storage.COLUMN: "each column",
    Storage.HYBRID: "all columns, each column",
}


def column_type_sql(col: Column, target: Flavor) -> str:
    """The column's type for *target*, built from the neutral fields."""
    t = col.data_type
    if t in ("tinyint", "smallint", "mediumint", "int", "bigint"):
        # Keep the display width only where it carries meaning: ZEROFILL padding and
        # TINYINT(1), which clients read as boolean.
        width = col.column_type[len(t) :].split(")")[0] + ")" if "(" in col.column_type else ""
        keep = col.zerofill or (t == "tinyint" and width == "(1)")
        sql = t + (width if keep else "")
    elif t == "decimal":
        sql = f"decimal({col.precision},{col.scale})"
    elif t in ("float", "double", "real"):
        sql = t + (f"({col.precision},{col.scale})" if col.precision is not None else "")
    elif t == "bit":
        sql = f"bit({col.length})"
    elif t in ("char", "varchar", "binary", "varbinary"):
        sql = f"{t}({col.length})"
    elif t in ("time", "datetime", "timestamp"):
        sql = t + (f"({col.fsp})" if col.fsp else "")
    elif t in ("enum", "set"):
        sql = f"{t}({', '.join(quote_literal(v) for v in col.values or ())})"
    else:
        # year, date, text/blob families, json, spatial: no parameters.
        sql = t
    if col.unsigned and t not in ("enum", "set"):
        sql += " unsigned"
    if col.zerofill:
        sql += " zerofill"
    if col.charset and t not in ("json",) and t not in SPATIAL_TYPES:
        sql += f" CHARACTER SET {col.charset}"
        if col.collation:
            sql += f" COLLATE {col.collation}"
    return sql


def column_sql(col: Column, target: Flavor) -> str:
    parts = [quote_ident(col.name), column_type_sql(col, target)]
    if col.generated is not None:
        kind = "STORED" if col.generated.stored else "VIRTUAL"
        parts.append(f"AS ({col.generated.expression}) {kind}")
        if not col.nullable:
            parts.append("NOT NULL")
    else:
        parts.append("NULL" if col.nullable else "NOT NULL")
        if col.default is not None:
            if col.default.kind is DefaultKind.EXPRESSION:
                parts.append(f"DEFAULT {col.default.value}")
            elif col.data_type not in _TEXT_BLOB_JSON:
                parts.append(f"DEFAULT {quote_literal(col.default.value)}")
        if col.on_update:
            parts.append(f"ON UPDATE {col.on_update}")
        if col.auto_increment:
            parts.append("AUTO_INCREMENT")
    if col.comment:
        parts.append(f"COMMENT {quote_literal(col.comment)}")
    return " ".join(parts)


def index_body(index: Index) -> str:
    cols = ", ".join(
        quote_ident(c.name)
        + (f"({c.prefix})" if c.prefix else "")
        + (" DESC" if c.descending else "")
        for c in index.columns
    )
    kind = {"FULLTEXT": "FULLTEXT KEY", "SPATIAL": "SPATIAL KEY"}.get(index.kind, "KEY")
    if index.unique:
        kind = "UNIQUE KEY"
    comment = f" COMMENT {quote_literal(index.comment)}" if index.comment else ""
    return f"{kind} {quote_ident(index.name)} ({cols}){comment}"


def deferred_indexes(table: Table) -> tuple[Index, ...]:
    """Indexes that post-indexing creates after the load: the non-unique ones.

    Unique keys stay in CREATE TABLE: they define row identity for conflicts."""
    return tuple(i for i in table.indexes if not i.unique)


def create_table_sql(
    table: Table,
    target: Flavor,
    *,
    post_indexing: bool = False,
    storage: Storage = Storage.DEFAULT,
) -> str:
    """CREATE TABLE for *table* (foreign keys excluded: they come after the data)."""
    lines = [column_sql(c, target) for c in table.columns]
    if table.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(quote_ident(c) for c in table.primary_key)})")
    deferred = set(deferred_indexes(table)) if post_indexing else set()
    lines.extend(index_body(i) for i in table.indexes if i not in deferred)
    body = ",\n  ".join(lines)
    options = []
    if target is not Flavor.OCEANBASE:
        options.append("ENGINE=InnoDB")
    if table.charset:
        options.append(f"DEFAULT CHARSET={table.charset}")
    if table.collation:
        options.append(f"COLLATE={table.collation}")
    if table.comment:
        options.append(f"COMMENT={quote_literal(table.comment)}")
    if target is Flavor.OCEANBASE and storage is not Storage.DEFAULT:
        options.append(f"WITH COLUMN GROUP({_COLUMN_GROUPS[storage]})")
    return f"CREATE TABLE {qualified(table.database, table.name)} (\n  {body}\n) " + " ".join(
        options
    )


def add_index_sql(table: Table, index: Index) -> str:
    return add_indexes_sql(table, [index])


def add_indexes_sql(table: Table, indexes: Sequence[Index]) -> str:
    """One ALTER adding every index in *indexes* (one DDL, one pass over the rows)."""
    adds = ", ".join(f"ADD {index_body(i)}" for i in indexes)
    return f"ALTER TABLE {qualified(table.database, table.name)} {adds}"


def add_foreign_key_sql(table: Table, fk: ForeignKey) -> str:
    return (
        f"ALTER TABLE {qualified(table.database, table.name)} ADD CONSTRAINT"
        f" {quote_ident(fk.name)} FOREIGN KEY ({', '.join(quote_ident(c) for c in fk.columns)})"
        f" REFERENCES {qualified(fk.ref_database, fk.ref_table)}"
        f" ({', '.join(quote_ident(c) for c in fk.ref_columns)})"
        f" ON DELETE {fk.on_delete} ON UPDATE {fk.on_update}"
    )


def create_view_sql(view: View) -> str:
    check = "" if view.check_option in ("NONE", "") else f" WITH {view.check_option} CHECK OPTION"
    return f"CREATE VIEW {qualified(view.database, view.name)} AS {view.definition}{check}"


def create_database_sql(name: str, charset: str, collation: str) -> str:
    return (
        f"CREATE DATABASE IF NOT EXISTS {quote_ident(name)}"
        f" DEFAULT CHARACTER SET {charset} COLLATE {collation}"
    )
