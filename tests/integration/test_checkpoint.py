"""Incremental checkpoints in the target's oms database (sync.checkpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.positions import BinlogPosition
from duosync.endpoints.mysql.connection import connect
from duosync.errors import ConfigError, Fenced, RetriableError
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


@pytest.fixture(params=["mariadb2", "oceanbase"])
def target(request: pytest.FixtureRequest) -> Endpoint:
    endpoint: Endpoint = request.getfixturevalue(request.param)
    return endpoint


def _commit(conn: Any, task: str, part: int, pos: BinlogPosition, tenure: Any) -> None:
    """One applier transaction: a row change is not needed to test the fence."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            checkpoint.advance(cur, task, part, pos, 1.0, tenure)
            checkpoint.confirm(tenure, task, pos)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise


def test_an_older_epoch_commits_nothing_once_a_newer_one_fenced(target: Endpoint) -> None:
    old_conn, new_conn = connect(target), connect(target)
    task = "ckpt-fence"
    a = BinlogPosition(file="binlog.000001", offset=100)
    b = BinlogPosition(file="binlog.000001", offset=200)
    c = BinlogPosition(file="binlog.000001", offset=300)
    old, new = checkpoint.Tenure(10), checkpoint.Tenure(20)
    refused = checkpoint.REFUSED.value
    try:
        if _has_table(old_conn):
            checkpoint.forget(old_conn, task)
        assert checkpoint.prepare(old_conn, task, "life", 2, a, old) == [a, a]
        _commit(old_conn, task, 0, b, old)
        # the task moves: the new run fences before it reads, and sees b
        assert checkpoint.prepare(new_conn, task, "life", 2, a, new) == [b, a]
        with pytest.raises(Fenced, match="epoch is 10"):
            _commit(old_conn, task, 1, c, old)
        # the old run cannot take the rows back either
        with pytest.raises(Fenced, match="newer assignment"):
            checkpoint.prepare(old_conn, task, "life", 2, a, old)
        _commit(new_conn, task, 1, c, new)
        assert checkpoint.prepare(new_conn, task, "life", 2, a, new) == [b, c]
        assert checkpoint.REFUSED.value == refused + 1
        # a run that lost its membership commits nothing, even under its epoch
        lost = checkpoint.Tenure(20, lambda: False)
        with pytest.raises(RetriableError, match="not confirmed"):
            _commit(new_conn, task, 0, c, lost)
        assert checkpoint.prepare(new_conn, task, "life", 2, a, new) == [b, c]
        # a new life of the task replaces the rows, whatever epoch they carry
        assert checkpoint.prepare(new_conn, task, "life2", 2, a, checkpoint.Tenure(5)) == [a, a]
    finally:
        checkpoint.forget(old_conn, task)
        old_conn.close()
        new_conn.close()


def test_a_run_outside_a_cluster_ignores_epochs(mariadb2: Endpoint) -> None:
    conn = connect(mariadb2)
    task = "ckpt-noepoch"
    a = BinlogPosition(file="binlog.000001", offset=100)
    b = BinlogPosition(file="binlog.000001", offset=200)
    try:
        if _has_table(conn):
            checkpoint.forget(conn, task)
        checkpoint.prepare(conn, task, "life", 1, a, checkpoint.Tenure(99))
        # the task once ran in a cluster; a single service (no tenure) still resumes
        assert checkpoint.prepare(conn, task, "life", 1, a) == [a]
        _commit(conn, task, 0, b, None)
        assert checkpoint.prepare(conn, task, "life", 1, a) == [b]
    finally:
        checkpoint.forget(conn, task)
        conn.close()
