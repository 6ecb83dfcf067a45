"""Incremental checkpoints in the target's oms database (sync.checkpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.positions import BinlogPosition
from duosync.endpoints.mysql.connection import connect
from duosync.errors import ConfigError
from duosync.sync import checkpoint

pytestmark = pytest.mark.integration


def test_resume_only_from_our_own_incarnation(mariadb2: Endpoint) -> None:
    conn = connect(mariadb2)
    task = "ckpt-test"
    a = BinlogPosition(file="binlog.000001", offset=100, gtid="1-1-5")
    b = BinlogPosition(file="binlog.000002", offset=4)
    try:
        if _has_table(conn):
            checkpoint.forget(conn, task)
        assert checkpoint.prepare(conn, task, "one", 3, a) == [a, a, a]
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            checkpoint.advance(cur, task, 1, b, 1.0)
            cur.execute("COMMIT")
        # The same task life resumes from what the target says, per partition.
        assert checkpoint.prepare(conn, task, "one", 3, a) == [a, b, a]
        with pytest.raises(ConfigError, match="write_concurrency"):
            checkpoint.prepare(conn, task, "one", 4, a)
        # A new task of the same name never resumes from the old one's rows.
        assert checkpoint.prepare(conn, task, "two", 2, b) == [b, b]
    finally:
        checkpoint.forget(conn, task)
        conn.close()


def _has_table(conn: Any) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = 'duosync_checkpoint'"
        )
        return bool(cur.fetchone()[0])
