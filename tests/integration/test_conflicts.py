"""Conflict handling of incremental apply (sync.conflicts), on real targets: every
case of the reference page under both policies, checked on the target's rows and on
the conflict log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.events import Op, RowChange
from duosync.core.positions import BinlogPosition
from duosync.spec import ConflictPolicy
from duosync.sync.applier import Applier
from duosync.sync.batch import Batch, TableMapping
from duosync.sync.conflict_log import FAILED, KEPT_TARGET, OVERWRITTEN, list_conflicts
from tests.helpers import query, run_sql

pytestmark = pytest.mark.integration

COLUMNS = ("id", "email", "v")
START = BinlogPosition(file="binlog.000001", offset=4)


def _pos(n: int) -> BinlogPosition:
    return BinlogPosition(file="binlog.000001", offset=1000 + n)


def _changes(db: str) -> list[RowChange]:
    def ins(row: tuple[Any, ...]) -> RowChange:
        return RowChange(Op.INSERT, db, "t", COLUMNS, None, row)

    def upd(before: tuple[Any, ...], after: tuple[Any, ...]) -> RowChange:
        return RowChange(Op.UPDATE, db, "t", COLUMNS, before, after)

    def dele(before: tuple[Any, ...]) -> RowChange:
        return RowChange(Op.DELETE, db, "t", COLUMNS, before, None)

    return [
        ins((1, "z@x", 11)),  # the key exists on the target
        ins((4, "b@x", 40)),  # a new key whose email clashes with row 2
        upd((3, "c@x", 30), (3, "c@x", 33)),  # the row exists: applied
        upd((5, "e@x", 50), (5, "e@x", 55)),  # missing row: fails
        upd((6, "f@x", 60), (6, "c@x", 66)),  # would clash with row 3's email: fails
        dele((7, "g@x", 70)),  # missing row: fails
        dele((8, "h@x", 80)),  # exists: deleted
        ins((9, "i@x", 90)),  # plain insert
        ins((10, "j@x", 100)),  # inserted then updated within the batch: one insert
        upd((10, "j@x", 100), (10, "j@x", 101)),
        upd((11, "k@x", 110), (12, "k@x", 120)),  # key change of a missing row
    ]


def _apply(
    target: Endpoint, db: str, policy: ConflictPolicy, task: str, partitions: int = 2
) -> int:
    mapping = TableMapping((db, "t"), COLUMNS, (0, 1, 2), (0,), other_unique=True)

    def mapping_of(_change: RowChange) -> TableMapping:
        return mapping

    applier = Applier(target, task, partitions, policy)
    try:
        applier.prepare(START, f"{time.time():.6f}")
        _forget_conflicts(applier, task)
        batch = Batch(partitions, mapping_of, checked=True)
        for i, change in enumerate(_changes(db)):
            batch.add(change, _pos(i))
            batch.end_transaction(_pos(i), 1_700_000_000.0 + i, time.monotonic())
        _touched, conflicts = applier.apply(batch)
        return conflicts
    finally:
        applier.close()


def _forget_conflicts(applier: Applier, task: str) -> None:
    """Rows an earlier run of this test left (a reused sandbox)."""
    with applier.conns[0].cursor() as cur:
        cur.execute("DELETE FROM oms.duosync_conflict WHERE task = %s", (task,))


def _setup(target: Endpoint, db: str) -> None:
    run_sql(
        target,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE, v INT)",
            "INSERT INTO t VALUES (1, 'a@x', 10), (2, 'b@x', 20), (3, 'c@x', 30),"
            " (6, 'f@x', 60), (8, 'h@x', 80)",
        ],
        database=db,
    )


def _rows(target: Endpoint, db: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in query(target, "SELECT id, email, v FROM t ORDER BY id", database=db)]


EXPECTED_CONFLICTS = {
    # key: (op, resolution under ignore, resolution under overwrite)
    1: ("insert", KEPT_TARGET, OVERWRITTEN),
    4: ("insert", KEPT_TARGET, OVERWRITTEN),
    5: ("update", FAILED, FAILED),
    6: ("update", FAILED, FAILED),
    7: ("delete", FAILED, FAILED),
    11: ("delete", FAILED, FAILED),  # the old key of a key-changing update
}


@pytest.mark.parametrize(
    "policy", [ConflictPolicy.OVERWRITE, ConflictPolicy.IGNORE], ids=lambda p: p.value
)
@pytest.mark.parametrize("flavor", ["mariadb", "oceanbase"])
def test_every_conflict_case(
    flavor: str,
    policy: ConflictPolicy,
    mariadb2: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    target = mariadb2 if flavor == "mariadb" else oceanbase
    db = fresh_database(target)
    _setup(target, db)
    task = f"conflicts-{flavor}-{policy.value}"
    recorded = _apply(target, db, policy, task)

    rows = _rows(target, db)
    common = [(3, "c@x", 33), (6, "f@x", 60), (9, "i@x", 90), (10, "j@x", 101), (12, "k@x", 120)]
    if policy is ConflictPolicy.IGNORE:
        # The target keeps its rows 1 and 2; insert 4 (clashing email) is not applied.
        expected = [(1, "a@x", 10), (2, "b@x", 20), *common]
    else:
        # The source wins: row 1 replaced, row 2 removed for row 4's email.
        expected = [(1, "z@x", 11), (4, "b@x", 40), *common]
    assert rows == sorted(expected)

    log = list_conflicts(target, task, limit=100)
    assert recorded == len(log) == len(EXPECTED_CONFLICTS)
    got = {r.key[0]: r for r in log}
    assert set(got) == set(EXPECTED_CONFLICTS)
    for key, (op, if_ignore, if_overwrite) in EXPECTED_CONFLICTS.items():
        r = got[key]
        assert r.op == op, key
        assert r.resolution == (if_ignore if policy is ConflictPolicy.IGNORE else if_overwrite)
        assert r.table == f"{db}.t"
        assert r.columns == list(COLUMNS)
    # Images: the source's before/after and the target's row as it was.
    assert got[1].before is None and got[1].after == [1, "z@x", 11]
    assert got[1].current == ["1", "a@x", "10"]
    assert got[5].before == [5, "e@x", 50] and got[5].current is None
    assert got[6].current == ["6", "f@x", "60"] and "c@x" in got[6].reason
    assert got[7].after is None and got[7].before == [7, "g@x", 70]


def test_replay_raises_no_false_conflict(
    mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """After a crash the batch is read again; the partitions' checkpoints drop what
    they hold, so nothing is applied or recorded twice."""
    db = fresh_database(mariadb2)
    _setup(mariadb2, db)
    task = "conflicts-replay"
    mapping = TableMapping((db, "t"), COLUMNS, (0, 1, 2), (0,), other_unique=True)
    incarnation = f"{time.time():.6f}"
    for run in range(2):
        applier = Applier(mariadb2, task, 3, ConflictPolicy.IGNORE)
        try:
            checkpoints = applier.prepare(START, incarnation)
            if not run:
                _forget_conflicts(applier, task)
            batch = Batch(3, lambda _c: mapping, checkpoints if run else None, checked=True)
            for i, change in enumerate(_changes(db)):
                batch.add(change, _pos(i))
                batch.end_transaction(_pos(i), 1_700_000_000.0, time.monotonic())
            applier.apply(batch, all_partitions=True)
        finally:
            applier.close()
    assert len(list_conflicts(mariadb2, task)) == len(EXPECTED_CONFLICTS)
    assert _rows(mariadb2, db)[0] == (1, "a@x", 10)


@pytest.mark.parametrize("flavor", ["mariadb", "oceanbase"])
def test_a_unique_value_moving_between_rows_is_no_conflict(
    flavor: str, mariadb2: Endpoint, oceanbase: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """Row 21 is changed first, then row 20 frees an e-mail and row 21 takes it:
    merged per row, 21's final state comes first and clashes with 20 until 20 is
    written. Neither the order within a partition nor the partitions (a table with
    another unique key stays in one) may turn that into a conflict."""
    target = mariadb2 if flavor == "mariadb" else oceanbase
    db = fresh_database(target)
    run_sql(
        target,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE, v INT)",
            "INSERT INTO t VALUES (20, 'm@x', 1), (21, 'n@x', 1)",
        ],
        database=db,
    )
    task = f"conflicts-move-{flavor}"
    mapping = TableMapping((db, "t"), COLUMNS, (0, 1, 2), (0,), other_unique=True)
    changes = [
        RowChange(Op.UPDATE, db, "t", COLUMNS, (21, "n@x", 1), (21, "n@x", 2)),
        RowChange(Op.UPDATE, db, "t", COLUMNS, (20, "m@x", 1), (20, "o@x", 1)),
        RowChange(Op.UPDATE, db, "t", COLUMNS, (21, "n@x", 2), (21, "m@x", 3)),
        RowChange(Op.INSERT, db, "t", COLUMNS, None, (22, "n@x", 4)),  # takes 21's old one
    ]
    applier = Applier(target, task, 4, ConflictPolicy.IGNORE)
    try:
        applier.prepare(START, f"{time.time():.6f}")
        batch = Batch(4, lambda _c: mapping, checked=True)
        for i, change in enumerate(changes):
            batch.add(change, _pos(i))
            batch.end_transaction(_pos(i), 1_700_000_000.0, time.monotonic())
        assert sum(1 for part in batch.parts if part) == 1  # one partition holds the table
        _touched, conflicts = applier.apply(batch)
    finally:
        applier.close()
    assert conflicts == 0
    assert list_conflicts(target, task) == []
    assert _rows(target, db) == [(20, "o@x", 1), (21, "m@x", 3), (22, "n@x", 4)]
