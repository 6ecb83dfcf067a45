"""Plain driver helpers for test set-up (never the code under test)."""

from __future__ import annotations

from typing import Any

import pymysql

from duosync.config import Endpoint
from duosync.sync.batch import partition_of


def admin_connection(endpoint: Endpoint, database: str | None = None) -> pymysql.Connection[Any]:
    """A plain driver connection for test set-up (not the code under test)."""
    return pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=endpoint.resolved_password(),
        database=database,
        autocommit=True,
        charset="utf8mb4",
        # Read TIMESTAMPs in UTC everywhere (OceanBase's default session is +08:00).
        init_command="SET time_zone = '+00:00'",
    )


def run_sql(endpoint: Endpoint, statements: str | list[str], database: str | None = None) -> None:
    """Run ';'-separated *statements* (no ';' inside literals, please)."""
    parts = statements if isinstance(statements, list) else statements.split(";")
    conn = admin_connection(endpoint, database)
    try:
        with conn.cursor() as cur:
            for sql in parts:
                if sql.strip():
                    cur.execute(sql)
    finally:
        conn.close()


def checkpoint_rows(endpoint: Endpoint, task: str) -> int:
    """The task's checkpoint rows on *endpoint* (one per partition once its sync has
    started; 0 before, also while ``oms.duosync_checkpoint`` does not exist)."""
    exists = query(
        endpoint,
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = 'duosync_checkpoint'",
    )[0][0]
    if not exists:
        return 0
    sql = "SELECT COUNT(*) FROM oms.duosync_checkpoint WHERE task = %s"
    return int(query(endpoint, sql, (task,))[0][0])


def query(
    endpoint: Endpoint, sql: str, args: Any = None, database: str | None = None
) -> list[tuple[Any, ...]]:
    conn = admin_connection(endpoint, database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


class MoveDatabase:
    """Renames for tests: one database to another, and optionally some columns."""

    def __init__(
        self, source: str, target: str, columns: dict[tuple[str, str], str] | None = None
    ) -> None:
        self.source, self.target = source, target
        self.columns = columns or {}

    def table(self, database: str, name: str) -> tuple[str, str]:
        return (self.target if database == self.source else database), name

    def column(self, database: str, table: str, column: str) -> str:
        return self.columns.get((table, column), column)


def covering_keys(target: tuple[str, str], start: int, most: int = 8) -> list[int]:
    """Integer keys from *start* up that reach every partition of target table
    *target* (``sync.batch.partition_of``) for every partition count up to *most*.

    Why: a task commits each partition of a batch in its own transaction, so one
    row seen on the target proves only that its own partition committed; a
    transaction writing all these keys reaches every partition of the batch it
    lands in, and seeing all of them proves the whole batch (and every batch
    before it) landed."""
    keys: list[int] = []
    missing = {(n, p) for n in range(2, most + 1) for p in range(n)}
    key = start
    while missing:
        hit = {(n, partition_of(target, (key,), n)) for n in range(2, most + 1)}
        if hit & missing:
            keys.append(key)
            missing -= hit
        key += 1
    return keys
