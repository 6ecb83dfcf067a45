"""PostgreSQL's ``SchemaSink``: the schema phase and what follows the copy.

A MySQL-family database becomes a schema of the target database (the URL's, else
``postgres``). ``create`` makes a table without its secondary indexes; ``finish``
builds them after the copy, moves each identity sequence past the copied keys and
adds the foreign keys. Both are idempotent (a task run again after a crash does
only what is missing); a table that already exists is accepted only if the task
created it (its copy begun: the caller says so), never someone else's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.endpoints.postgres.connection import connect_endpoint, translate
from duosync.endpoints.postgres.ddl import (
    create_schema_sql,
    foreign_key_ddl,
    index_name,
    table_ddl,
)
from duosync.endpoints.postgres.dialect import qualified, quote_ident, quote_literal
from duosync.errors import FatalError


class PostgresSchemaSink:
    """``core.interfaces.SchemaSink`` on one autocommit psycopg connection."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn = connect_endpoint(endpoint, autocommit=True)

    def _run(self, sql: str, table: str | None = None) -> Any:
        try:
            return self._conn.execute(sql)
        except psycopg.Error as exc:
            raise translate(exc, self.endpoint.display, table=table) from None

    def exists(self, table: Table) -> bool:
        try:
            row = self._conn.execute(
                "SELECT to_regclass(%s)", (qualified(table.database, table.name),)
            ).fetchone()
        except psycopg.Error as exc:
            raise translate(exc, self.endpoint.display, table=table.qualified) from None
        return bool(row and row[0] is not None)

    def holds_rows(self, table: Table) -> bool:
        if not self.exists(table):
            return False
        target = qualified(table.database, table.name)
        row = self._run(f"SELECT EXISTS (SELECT 1 FROM {target})", table.qualified).fetchone()
        return bool(row and row[0])

    def create(self, table: Table) -> list[str]:
        """Create *table* (its schema too); the notes on what did not translate."""
        try:
            ddl = table_ddl(table)
        except ValueError as exc:
            raise FatalError(
                str(exc), endpoint=self.endpoint.display, table=table.qualified
            ) from None
        self._run(create_schema_sql(table.database), table.qualified)
        for statement in ddl.create:
            self._run(statement, table.qualified)
        return ddl.notes

    def finish(self, tables: Sequence[Table], say: Callable[[str], None]) -> None:
        """Indexes, identity sequences and foreign keys of *tables*, once copied."""
        for table in tables:
            for statement in table_ddl(table).indexes:
                self._run(statement, table.qualified)
            for col in table.columns:
                if col.auto_increment:
                    self._move_identity(table, col.name)
        for table in tables:
            for fk in table.foreign_keys:
                if not self._has_constraint(table, index_name(table.name, fk.name)):
                    self._run(foreign_key_ddl(table, fk), table.qualified)
                    say(f"created foreign key {table.qualified}.{fk.name}")

    def _move_identity(self, table: Table, column: str) -> None:
        # the copy wrote the source's keys: the next generated one follows the largest
        target = qualified(table.database, table.name)
        self._run(
            f"SELECT setval(pg_get_serial_sequence({quote_literal(target)},"
            f" {quote_literal(column)}), GREATEST(COALESCE((SELECT max({quote_ident(column)})"
            f" FROM {target}), 0), 1), (SELECT count(*) > 0 FROM {target}))",
            table.qualified,
        )

    def _has_constraint(self, table: Table, name: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = to_regclass(%s)",
            (name, qualified(table.database, table.name)),
        ).fetchone()
        return row is not None

    def close(self) -> None:
        self._conn.close()
