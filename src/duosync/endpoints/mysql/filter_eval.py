"""Row filter conditions evaluated on change events, by the server they were
written for (MariaDB, MySQL, OceanBase in MySQL mode).

A filter means what the full copy made it mean: ``SELECT ... FROM db.t WHERE
(<condition>)`` on the source server, in a duosync session (``sessions.text_connect``:
UTC, the server's sql_mode). To give events that same meaning, the rows a change
carries are written into a scratch table whose columns have the source table's
exact types (created by ``CREATE TABLE ... AS SELECT <the columns> FROM db.t WHERE
0``: types, charsets, collations, ENUM and SET labels), and the condition is
evaluated there by the server, in one transaction that is rolled back:

    BEGIN; INSERT INTO scratch VALUES (0, <row 0>), (1, <row 1>) ...;
    SELECT row, ((<condition>)) IS TRUE FROM scratch AS `t`; ROLLBACK

So collations, NULLs (a NULL result does not match, as in WHERE), functions and
the session time zone are the server's own. Nothing is ever committed: the rows
are seen by no other session and never reach a binlog. The scratch table is a
TEMPORARY one (in the table's own database, InnoDB so that the rollback removes
the rows) on MariaDB/MySQL; OceanBase has no temporary tables in MySQL mode, so
there it is a table in the ``oms`` database named after the task, the table and
its columns, dropped by ``close``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from duosync.config import Endpoint, Flavor
from duosync.endpoints.mysql.connection import driver_errors, translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.sessions import text_connect
from duosync.errors import ConfigError, DuosyncError, RetriableError

#: rows per INSERT into the scratch table: fixed shapes (OceanBase plans every new
#: statement text; a short batch is padded with copies of its last row)
_SIZES = (1, 4, 16, 64, 256, 1024)
_ROW = "__duosync_row"


@dataclass(frozen=True)
class FilterTable:
    """Where a condition is evaluated: a table on the evaluating server."""

    database: str
    table: str
    condition: str
    #: the spec key the condition came from ("db.table"), for messages
    origin: str


class FilterEvaluator:
    """Evaluates conditions on rows, on one server; one connection, opened lazily."""

    def __init__(self, endpoint: Endpoint, task: str) -> None:
        self.endpoint = endpoint
        self.task = task
        self._conn: Any = None
        #: (table, columns) -> the scratch table (qualified) and its columns there
        self._scratch: dict[tuple[FilterTable, tuple[str, ...]], tuple[str, list[int]]] = {}
        #: OceanBase scratch tables made (kept across reconnects): ``close`` drops them
        self._made: set[str] = set()

    def prepare(self, where: FilterTable, columns: tuple[str, ...]) -> None:
        """Create the scratch table of *where* and evaluate the condition on no row
        (a pre-check: privileges, the condition against the table's columns)."""
        scratch, _ = self._scratch_for(where, columns)
        try:
            with self._connection().cursor() as cur:
                cur.execute(
                    f"SELECT (({where.condition})) IS TRUE FROM {scratch}"
                    f" AS {quote_ident(where.table)} WHERE 0"
                )
                cur.fetchall()
        except pymysql.err.MySQLError as exc:
            self._reset()
            raise self._error(exc, where) from None

    def matches(
        self, where: FilterTable, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> list[bool]:
        """Whether each of *rows* (values in the order of *columns*) satisfies the
        condition of *where*."""
        if not rows:
            return []
        conn = self._connection()
        scratch, kept = self._scratch_for(where, columns)
        result: list[bool] = []
        try:
            with conn.cursor() as cur:
                for start in range(0, len(rows), _SIZES[-1]):
                    part = rows[start : start + _SIZES[-1]]
                    result += self._evaluate(cur, where, scratch, kept, part)
        except pymysql.err.MySQLError as exc:
            self._reset()
            raise self._error(exc, where) from None
        return result

    def _evaluate(
        self,
        cur: Any,
        where: FilterTable,
        scratch: str,
        kept: list[int],
        rows: Sequence[tuple[Any, ...]],
    ) -> list[bool]:
        size = next(s for s in _SIZES if s >= len(rows))
        padded = list(rows) + [rows[-1]] * (size - len(rows))
        marks = "(" + ", ".join(["%s"] * (len(kept) + 1)) + ")"
        args: list[Any] = []
        for i, row in enumerate(padded):
            args.append(i if i < len(rows) else -1)
            args.extend(row[k] for k in kept)
        cur.execute("BEGIN")
        try:
            cur.execute(f"INSERT INTO {scratch} VALUES {', '.join([marks] * size)}", args)
            cur.execute(
                f"SELECT {quote_ident(_ROW)}, (({where.condition})) IS TRUE"
                f" FROM {scratch} AS {quote_ident(where.table)}"
            )
            got = {int(r[0]): int(r[1]) == 1 for r in cur.fetchall()}
        finally:
            cur.execute("ROLLBACK")
        return [got[i] for i in range(len(rows))]

    def _scratch_for(self, where: FilterTable, columns: tuple[str, ...]) -> tuple[str, list[int]]:
        key = (where, columns)
        if key in self._scratch:
            return self._scratch[key]
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (where.database, where.table),
                )
                there = {str(r[0]).lower() for r in cur.fetchall()}
                if not there:
                    raise ConfigError(
                        f"filters.{where.origin}: the table {where.database}.{where.table}"
                        " the filter is evaluated on does not exist on"
                        f" {self.endpoint.display}",
                        task=self.task,
                    )
                # Columns the table no longer has (dropped since the change) cannot
                # appear in a condition that still works on the table.
                kept = [i for i, c in enumerate(columns) if c.lower() in there]
                scratch = self._create(cur, where, [columns[i] for i in kept])
        except pymysql.err.MySQLError as exc:
            self._reset()
            raise self._error(exc, where) from None
        self._scratch[key] = (scratch, kept)
        return scratch, kept

    def _create(self, cur: Any, where: FilterTable, columns: list[str]) -> str:
        alias = quote_ident(where.table)
        select = ", ".join(f"{alias}.{quote_ident(c)}" for c in columns)
        digest = hashlib.sha1(
            "\0".join([self.task, where.database, where.table, *columns]).encode()
        ).hexdigest()[:16]
        name = f"duosync_filter_{digest}"
        body = (
            f"SELECT 0 AS {quote_ident(_ROW)}, {select}"
            f" FROM {qualified(where.database, where.table)} AS {alias} WHERE 0"
        )
        if self.endpoint.flavor is Flavor.OCEANBASE:
            scratch = qualified("oms", name)
            cur.execute("CREATE DATABASE IF NOT EXISTS oms")
            cur.execute(f"DROP TABLE IF EXISTS {scratch}")
            cur.execute(f"CREATE TABLE {scratch} AS {body}")
            self._made.add(scratch)
        else:
            scratch = qualified(where.database, name)
            cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {scratch}")
            cur.execute(f"CREATE TEMPORARY TABLE {scratch} ENGINE=InnoDB AS {body}")
        return scratch

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = text_connect(self.endpoint, timeout=self.endpoint.io_timeout)
        return self._conn

    def _error(self, exc: pymysql.err.MySQLError, where: FilterTable) -> DuosyncError:
        error = translate(exc, self.endpoint, table=f"{where.database}.{where.table}")
        if isinstance(error, RetriableError):
            error.task = self.task
            return error
        return ConfigError(
            f"filters.{where.origin}: the source server cannot evaluate the filter"
            f" {where.condition!r} on a changed row: {error.message}",
            task=self.task,
            endpoint=self.endpoint.display,
            table=f"{where.database}.{where.table}",
            hint="fix the condition in the spec (it must work on the table's columns)",
        )

    def _reset(self) -> None:
        """Forget the connection (and with it the temporary tables) after an error."""
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.Error):
                self._conn.close()
        self._conn = None
        self._scratch.clear()

    def close(self) -> None:
        """Drop what was made (temporary tables go with the connection)."""
        if self._made:
            with driver_errors(self.endpoint), self._connection().cursor() as cur:
                for scratch in sorted(self._made):
                    cur.execute(f"DROP TABLE IF EXISTS {scratch}")
            self._made.clear()
        self._reset()
