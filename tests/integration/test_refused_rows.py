"""Rows the target refuses during incremental apply (``options.on_data_error``),
on real targets: ``stop`` fails naming the row, its table and position and
applies nothing of its partition; ``skip`` records the refused rows in the
conflict log with their images and applies the rest with the checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.events import Op, RowChange
from duosync.core.positions import BinlogPosition
from duosync.errors import DataError
from duosync.spec import ConflictPolicy, OnDataError
from duosync.sync.applier import REFUSED, Applier
from duosync.sync.batch import Batch, TableMapping
from duosync.sync.checkpoint import TABLE as CHECKPOINTS
from duosync.sync.conflict_log import list_conflicts
from tests.helpers import query, run_sql

pytestmark = pytest.mark.integration

COLUMNS = ("id", "v")
START = BinlogPosition(file="binlog.000001", offset=4)
LAST = BinlogPosition(file="binlog.000001", offset=5000)


def _batch(db: str, partitions: int) -> Batch:
    mapping = TableMapping((db, "t"), COLUMNS, (0, 1), (0,))

    def mapping_of(_change: RowChange) -> TableMapping:
        return mapping

    batch = Batch(partitions, mapping_of)
    changes = [
        RowChange(Op.INSERT, db, "t", COLUMNS, None, (1, 10)),
        RowChange(Op.INSERT, db, "t", COLUMNS, None, (2, 1000)),  # TINYINT: refused
        RowChange(Op.INSERT, db, "t", COLUMNS, None, (3, 30)),
        RowChange(Op.UPDATE, db, "t", COLUMNS, (4, 40), (4, 4000)),  # refused
        RowChange(Op.DELETE, db, "t", COLUMNS, (5, 50), None),
    ]
    for i, change in enumerate(changes):
        position = BinlogPosition(file="binlog.000001", offset=1000 + i)
        batch.add(change, position)
        batch.end_transaction(position if i < len(changes) - 1 else LAST, 1.7e9 + i, 0.0)
    return batch


def _apply(target: Endpoint, db: str, task: str, mode: OnDataError) -> int:
    applier = Applier(target, task, 1, ConflictPolicy.OVERWRITE, on_data_error=mode)
    try:
        applier.prepare(START, f"{time.time():.6f}")
        with applier.conns[0].cursor() as cur:
            cur.execute("DELETE FROM oms.duosync_conflict WHERE task = %s", (task,))
        _touched, conflicts = applier.apply(_batch(db, 1))
        return conflicts
    finally:
        applier.close()


def _setup(target: Endpoint, db: str) -> None:
    run_sql(
        target,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v TINYINT NOT NULL)",
            "INSERT INTO t VALUES (4, 40), (5, 50)",
        ],
        database=db,
    )


def _rows(target: Endpoint, db: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in query(target, "SELECT id, v FROM t ORDER BY id", database=db)]


def _checkpoint(target: Endpoint, task: str) -> str:
    rows = query(target, f"SELECT position FROM {CHECKPOINTS} WHERE task = %s", (task,))
    return str(rows[0][0])


@pytest.fixture(params=["mariadb", "oceanbase"])
def target(request: pytest.FixtureRequest, mariadb2: Endpoint, oceanbase: Endpoint) -> Endpoint:
    return mariadb2 if request.param == "mariadb" else oceanbase


def test_a_refused_row_stops_the_task_naming_it(
    target: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(target)
    _setup(target, db)
    task = f"refused-stop-{target.flavor.value}"
    with pytest.raises(DataError) as caught:
        _apply(target, db, task, OnDataError.STOP)
    error = caught.value
    assert error.table == f"{db}.t"
    assert error.task == task
    assert error.position == str(LAST)
    assert "key (2,)" in error.message and "insert" in error.message
    assert "on_data_error: skip" in (error.hint or "")
    # nothing of the partition was applied, and its checkpoint did not move
    assert _rows(target, db) == [(4, 40), (5, 50)]
    assert "5000" not in _checkpoint(target, task)


def test_refused_rows_are_logged_and_skipped(
    target: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(target)
    _setup(target, db)
    task = f"refused-skip-{target.flavor.value}"
    assert _apply(target, db, task, OnDataError.SKIP) == 2
    # the rest of the batch is applied, with the checkpoint in the same transaction
    assert _rows(target, db) == [(1, 10), (3, 30), (4, 40)]
    assert "5000" in _checkpoint(target, task)
    logged = {tuple(c.key): c for c in list_conflicts(target, task)}
    assert set(logged) == {(2,), (4,)}
    assert logged[(2,)].op == "insert" and logged[(2,)].after == [2, 1000]
    assert logged[(4,)].op == "update" and logged[(4,)].before == [4, 40]
    assert logged[(4,)].after == [4, 4000]
    assert all(c.resolution == REFUSED for c in logged.values())
    assert all("refused by the target" in c.reason for c in logged.values())
