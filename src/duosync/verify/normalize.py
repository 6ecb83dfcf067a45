"""The SQL that renders a row the same way on MariaDB and OceanBase.

Verification hashes rows inside each database, so the text hashed must be equal on
both sides whenever the data is, although the two servers legitimately store and
print some values differently. What we normalise, and how (each measured on the
sandbox, MariaDB 10.11 and OceanBase 4.3.5):

- time zones: every duosync session is pinned to ``+00:00`` (``connection.connect``),
  so TIMESTAMP values print in UTC on both sides whatever the server default
  (OceanBase: +08:00); DATETIME, DATE, TIME and YEAR print identically;
- floats: FLOAT is widened to DOUBLE (its own text has only 6 digits) and ``+ 0e0``
  turns OceanBase's ``-0`` into ``0`` (MariaDB never prints ``-0``); both servers
  print doubles with the same shortest round-trip text (``1.7976931348623157e308``)
  and ``DOUBLE(12,4)``'s padding disappears in the addition;
- character sets and collations: text is converted to utf8mb4 and hashed as its
  bytes, so latin1 on MariaDB and utf8mb4 on OceanBase agree, and a collation
  (case-insensitive or not) never makes two different values compare equal;
- JSON: OceanBase (like MySQL) stores it parsed and prints MySQL's canonical text (``", "`` and
  ``": "`` separators, keys sorted); MariaDB stores the text it was given. Facing
  OceanBase, MariaDB's text is re-spaced with ``JSON_LOOSE(JSON_COMPACT(..))``, which
  matches for documents whose keys are already in order. Other documents make the
  chunk differ, and the row comparison (``values_equal``) then compares the parsed
  documents: they are never reported as different when they are equal.
- BIT as its number, binary strings and spatial values as hex.

The row text is unambiguous: text and JSON are quoted (``QUOTE``; NULL is the bare
word), binary values are hex, and numbers and temporal values (which never contain
a comma or a quote) are written bare, NULL as ``N``. Text pieces are converted to the
``binary`` character set, so columns of different collations never meet in one
``CONCAT`` (which may refuse).

Chunk checksums sum ``CRC32`` of the row text (``checksum_sql``); the row digests of
the row comparison are ``MD5`` (``row_hash_sql``). CRC32 is 3-4 times cheaper than
MD5 on MariaDB (measured: 4.1M against 0.95M rows/s for a five-column table) and
the checksum is the bulk of the work; a changed chunk keeps its count and CRC sum
with a probability of about 2^-32, which is also pt-table-checksum's default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from duosync.config import Flavor
from duosync.core.catalog import Column, Table
from duosync.endpoints.mysql.dialect import quote_ident
from duosync.endpoints.mysql.literals import value_expr
from duosync.endpoints.mysql.types import SPATIAL_TYPES

_BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})


def is_binary(col: Column) -> bool:
    return (
        col.data_type in _BINARY_TYPES or col.data_type in SPATIAL_TYPES or col.charset == "binary"
    )


def is_character(col: Column) -> bool:
    """Text compared under a collation (CHAR, VARCHAR, TEXT, ENUM, SET, MariaDB JSON)."""
    return col.charset is not None and not is_binary(col)


def value_sql(col: Column, own: Flavor, peer: Flavor) -> str:
    """The normalised value of *col* on a side of flavour *own* facing *peer*; NULL
    stays NULL. Binary values stay raw here (``piece_sql`` hexes them)."""
    q = quote_ident(col.name)
    dt = col.data_type
    if dt == "float":
        return f"(CAST({q} AS DOUBLE) + 0e0)"
    if dt == "double":
        return f"({q} + 0e0)"
    if dt == "bit":
        return f"({q} + 0)"
    if is_binary(col):
        return q
    if dt == "json":
        if own is not Flavor.MARIADB:  # native JSON (OceanBase, MySQL): canonical text
            return f"CAST({q} AS CHAR)"
        if peer is not Flavor.MARIADB:
            return f"JSON_LOOSE(JSON_COMPACT({q}))"
        return f"CONVERT({q} USING utf8mb4)"
    if col.charset is not None:
        return f"CONVERT({q} USING utf8mb4)"
    return q  # integers, DECIMAL, temporal types: the same text on both sides


def piece_sql(col: Column, own: Flavor, peer: Flavor) -> str:
    """One column's part of the row text (see the module docstring)."""
    value = value_sql(col, own, peer)
    if is_binary(col):
        return f"IFNULL(HEX({value}),'N')"
    if col.charset is not None or col.data_type == "json":
        return f"CONVERT(QUOTE({value}) USING binary)"
    return f"IFNULL({value},'N')"


def row_text_sql(columns: Sequence[Column], own: Flavor, peer: Flavor) -> str:
    return "CONCAT_WS(','," + ",".join(piece_sql(c, own, peer) for c in columns) + ")"


def row_hash_sql(columns: Sequence[Column], own: Flavor, peer: Flavor) -> str:
    """MD5 (32 hex digits) of the row's normalised text."""
    return f"MD5({row_text_sql(columns, own, peer)})"


def checksum_sql(columns: Sequence[Column], own: Flavor, peer: Flavor) -> str:
    """Select list giving ``COUNT(*)`` and an order-independent checksum of rows: the
    exact sum of every row's CRC32 (a sum, not BIT_XOR, so two equal rows of a table
    without key do not cancel out)."""
    return f"COUNT(*), SUM(CRC32({row_text_sql(columns, own, peer)}))"


def key_literal_sql(table: Table, key: Sequence[str]) -> list[str]:
    """SQL rendering each key column as a literal (``endpoints.mysql.literals``). The text is
    the same on both sides for the same value, so it is the key's identity across
    servers (a binary comparison) and can be written back into a statement."""
    return [value_expr(table, k) for k in key]


def key_match_sql(table: Table, key: Sequence[str], literals: Sequence[str]) -> str:
    """Condition selecting the row whose key renders as *literals*, exactly.

    ``k = 'a'`` under a case- or accent-insensitive (or PAD SPACE) collation also
    matches 'A' or 'a '; the second, binary comparison keeps only the very value, and
    the first lets the server use the key's index.
    """
    parts: list[str] = []
    for name, lit in zip(key, literals, strict=True):
        q = quote_ident(name)
        col = table.column(name)
        if col.data_type == "float":
            # the literal is the float widened to a double (value_expr); FLOAT = 0.1
            # compares the float with the double 0.1 and never matches
            parts.append(f"CAST({q} AS DOUBLE) = {lit}")
            continue
        parts.append(f"{q} = {lit}")
        if is_character(col):
            parts.append(f"CAST(CONVERT({q} USING utf8mb4) AS BINARY) = CAST({lit} AS BINARY)")
    return "(" + " AND ".join(parts) + ")"


def any_key_sql(table: Table, key: Sequence[str], keys: Sequence[Sequence[str]]) -> str:
    """Condition selecting the rows of any of *keys* (literal tuples)."""
    col = table.column(key[0])
    if len(key) == 1 and not is_character(col) and col.data_type != "float":
        return f"{quote_ident(key[0])} IN ({','.join(k[0] for k in keys)})"
    return "(" + " OR ".join(key_match_sql(table, key, k) for k in keys) + ")"


# -- comparing fetched values in Python --------------------------------------------------


def _json(value: Any) -> Any:
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    # Decimal for every number: 1, 1.0 and 1e0 are one JSON number, and a double
    # would round long integers.
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def values_equal(col: Column, a: Any, b: Any) -> bool:
    """Whether two normalised values (``value_sql``, read as text) are the same data."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    if col.data_type == "json":
        try:
            return bool(_json(a) == _json(b))
        except ValueError:
            return False
    return False
