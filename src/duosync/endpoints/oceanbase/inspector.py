"""Catalog inspection for OceanBase in MySQL mode: only what differs from MySQL.

Measured differences (OceanBase 4.3.5 seekdb):

* ``VERSION()`` claims MySQL 5.7.25; the product version is in ``@@version_comment``.
* ``log_bin`` answers ON, but the server writes no binlog we can read: changes are
  captured with triggers (capture method ``trigger``).
* The default global ``time_zone`` is ``+08:00``; we report it and never rely on it
  (connections pin ``+00:00``, see ``endpoints/mysql/connection.py``).
* ``SHOW CREATE TABLE`` appends OceanBase-only clauses (ORGANIZATION, COMPRESSION,
  BLOCK_SIZE, TABLET_SIZE, PCTFREE, column groups); they are not in
  information_schema, so they are read from there into ``Table.dialect_options``.
* ``NUMERIC_PRECISION`` of integer columns is the display width; the neutral model
  carries no precision for integers, so nothing to undo.
* ``COLUMN_DEFAULT`` of a generated column holds its expression; the model keeps the
  expression in ``generated`` only.
* ENUM/SET members are printed between quotes without escaping (``'it's'``).
* A spatial index shows in information_schema as a BTREE on hidden columns
  (``__cellid_N``, ``__mbr_N``); ``geometrycollection`` is spelled ``geomcollection``.
* A DEFAULT CURRENT_TIMESTAMP of a DATETIME(6) column is shown without its precision.
* Only the ``utf8mb4`` and ``binary`` character sets exist (seekdb): ``latin1`` and
  friends must be mapped by schema migration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from duosync.config import Endpoint
from duosync.core.catalog import Catalog, Index, IndexColumn, ServerInfo, Table
from duosync.endpoints.mysql import types
from duosync.endpoints.mysql.connection import Connection
from duosync.endpoints.mysql.dialect import qualified
from duosync.endpoints.mysql.inspector import SYSTEM_DATABASES, MySQLInspector, Row

OCEANBASE_SYSTEM_DATABASES = SYSTEM_DATABASES | {"oceanbase", "__recyclebin", "__public"}

# Table options that the neutral model already carries (or that are per-instance
# state, like the next AUTO_INCREMENT value); everything else is kept verbatim.
_MODELLED_OPTIONS = {
    "AUTO_INCREMENT",
    "DEFAULT CHARSET",
    "DEFAULT CHARACTER SET",
    "CHARACTER SET",
    "CHARSET",
    "DEFAULT COLLATE",
    "COLLATE",
    "COMMENT",
    "ENGINE",
}
_OPTION = re.compile(
    r"(?P<cg>WITH\s+COLUMN\s+GROUP\s*\((?P<cgv>[^)]*)\))"
    r"|(?P<part>PARTITION\s+BY\s+.*)$"
    r"|(?P<key>DEFAULT\s+CHARACTER\s+SET|DEFAULT\s+CHARSET|DEFAULT\s+COLLATE|CHARACTER\s+SET"
    r"|[A-Z_]+)\s*(?:=\s*)?(?P<value>'(?:[^']|'')*'|\S+)",
    re.IGNORECASE | re.DOTALL,
)


def _column_list_end(text: str) -> int:
    """Index of the ')' closing the column list; parentheses inside quoted strings
    (comments, defaults) and backquoted names do not count."""
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == "'":
                i += 1  # skip the escaped character
            elif ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    i += 1  # doubled quote inside the string
                else:
                    quote = None
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def parse_table_options(create_table: str) -> tuple[tuple[str, str], ...]:
    """OceanBase-only clauses after the column list of ``SHOW CREATE TABLE`` text."""
    end = _column_list_end(create_table)
    if end < 0:
        return ()
    tail = create_table[end + 1 :]
    options: list[tuple[str, str]] = []
    pos = 0
    while pos < len(tail):
        m = _OPTION.search(tail, pos)
        if not m:
            break
        pos = m.end()
        if m.group("cg") is not None:
            options.append(("COLUMN GROUP", m.group("cgv").strip()))
        elif m.group("part") is not None:
            options.append(("PARTITION BY", m.group("part").strip()[len("PARTITION BY") :].strip()))
        else:
            key = " ".join(m.group("key").upper().split())
            if key not in _MODELLED_OPTIONS:
                options.append((key, m.group("value")))
    return tuple(options)


_SPATIAL_KEY = re.compile(r"^\s*SPATIAL KEY `((?:[^`]|``)+)` \(([^)]*)\)", re.MULTILINE)


def parse_spatial_keys(create_table: str) -> dict[str, list[str]]:
    """``SPATIAL KEY `name` (`col`)`` lines of SHOW CREATE TABLE: index name -> columns."""
    return {
        m.group(1).replace("``", "`"): [
            c.strip().strip("`").replace("``", "`") for c in m.group(2).split(",")
        ]
        for m in _SPATIAL_KEY.finditer(create_table)
    }


class OceanBaseInspector(MySQLInspector):
    """``Inspector`` for OceanBase (MySQL mode)."""

    system_databases = OCEANBASE_SYSTEM_DATABASES

    def __init__(self, endpoint: Endpoint, conn: Connection[Any] | None = None) -> None:
        super().__init__(endpoint, conn)
        self._create_text: dict[tuple[str, str], str] = {}

    def catalog(self, databases: Sequence[str] | None = None) -> Catalog:
        self._create_text.clear()  # one consistent look per call
        return super().catalog(databases)

    def server_info(self) -> ServerInfo:
        row = self._query("SELECT VERSION() AS v, @@version_comment AS c")[0]
        comment = str(row["c"])
        m = re.search(r"OceanBase\s+(\d+(?:\.\d+)+)", comment)
        v = self.variables()
        return ServerInfo(
            flavor="oceanbase",
            version=m.group(1) if m else str(row["v"]),
            version_string=f"{row['v']} ({comment})",
            capture="trigger",
            log_bin=False,
            binlog_format=None,
            binlog_row_image=None,
            binlog_row_metadata=None,
            gtid_mode=None,
            gtid_position=None,
            server_id=int(v["server_id"]) if v.get("server_id") else None,
            time_zone=v.get("time_zone", "+08:00"),
            system_time_zone=v.get("system_time_zone"),
        )

    def _enum_values(self, column_type: str) -> tuple[str, ...]:
        return types.split_unescaped_list(column_type)

    def _show_create(self, database: str, table: str) -> str:
        key = (database, table)
        if key not in self._create_text:
            rows = self._query(f"SHOW CREATE TABLE {qualified(database, table)}")
            self._create_text[key] = str(rows[0]["Create Table"]) if rows else ""
        return self._create_text[key]

    def _dialect_options(self, database: str, table: str) -> tuple[tuple[str, str], ...]:
        return parse_table_options(self._show_create(database, table))

    def _table(
        self,
        t: Row,
        columns: list[Row],
        stats: list[Row],
        fks: list[Row],
        json_columns: set[tuple[str, str, str]],
    ) -> Table:
        table = super()._table(t, columns, stats, fks, json_columns)
        spatial = parse_spatial_keys(self._show_create(table.database, table.name))
        if not spatial:
            return table
        # information_schema lists a spatial index on hidden columns (__cellid_N,
        # __mbr_N) as BTREE; SHOW CREATE TABLE has the real definition.
        fixed = tuple(
            Index(
                name=i.name,
                columns=tuple(IndexColumn(name=c) for c in spatial[i.name]),
                unique=False,
                kind="SPATIAL",
                comment=i.comment,
            )
            if i.name in spatial
            else i
            for i in table.indexes
        )
        return table.model_copy(update={"indexes": fixed})
