"""Comparing rows across MySQL-family and PostgreSQL sides, value by value."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from duosync.config import Endpoint
from duosync.core.catalog import Table
from tests.helpers import query


def mysql_rows(endpoint: Endpoint, table: Table) -> list[tuple[Any, ...]]:
    exprs = []
    for c in table.columns:
        q = f"`{c.name}`"
        if c.data_type == "float":
            exprs.append(f"CAST({q} AS DOUBLE)")
        elif c.data_type == "bit":
            exprs.append(f"LPAD(BIN({q}+0), {c.length}, '0')")
        else:
            exprs.append(q)
    rows = query(endpoint, f"SELECT {', '.join(exprs)} FROM `{table.database}`.`{table.name}`")
    return sorted((_canonical(table, r, json_text=True) for r in rows), key=lambda r: r[0])


def pg_rows(pg: psycopg.Connection[Any], table: Table) -> list[tuple[Any, ...]]:
    exprs = []
    for c in table.columns:
        q = f'"{c.name}"'
        if c.data_type == "float":
            exprs.append(f"{q}::float8")
        elif c.data_type == "bit":
            exprs.append(f"{q}::text")
        else:
            exprs.append(q)
    rows = pg.execute(
        f'SELECT {", ".join(exprs)} FROM "{table.database}"."{table.name}"'
    ).fetchall()
    return sorted((_canonical(table, r, json_text=False) for r in rows), key=lambda r: r[0])


def _canonical(table: Table, row: Any, *, json_text: bool) -> tuple[Any, ...]:
    """Values as Python compares them across the two drivers: CHAR without its
    padding, timestamps as naive UTC, JSON parsed, integers for numeric keys."""
    out = []
    for col, value in zip(table.columns, row, strict=True):
        if value is None:
            out.append(None)
        elif col.data_type == "char":
            out.append(str(value).rstrip(" "))
        elif isinstance(value, datetime) and value.tzinfo is not None:
            out.append(value.replace(tzinfo=None) - (value.utcoffset() or value.utcoffset()))
        elif col.data_type == "json":
            out.append(json.loads(value) if json_text or isinstance(value, str) else value)
        elif isinstance(value, bytearray | memoryview):
            out.append(bytes(value))
        else:
            out.append(value)
    return tuple(out)


def plain(value: Any) -> Any:
    """Numbers as text (BIGINT UNSIGNED is numeric on PostgreSQL: Decimal against
    int), bytes-like as bytes, the rest as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def same_rows(
    endpoint: Endpoint, pg: psycopg.Connection[Any], source: str, target: str, order: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every row of MySQL table *source* and PostgreSQL table *target* (schema.table,
    quoted), in *order*, each value ``plain``."""
    want = [
        tuple(map(plain, r)) for r in query(endpoint, f"SELECT * FROM {source} ORDER BY {order}")
    ]
    got = [
        tuple(map(plain, r))
        for r in pg.execute(f"SELECT * FROM {target} ORDER BY {order}").fetchall()
    ]
    return want, got
