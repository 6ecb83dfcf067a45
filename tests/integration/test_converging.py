"""The decider of a converging pair (``sync.converging``) on real arbiters, for each
pair of crossing operations: the rows it leaves, the conflicts it records with their
winners, and (MariaDB) that every conflicting key's state is in the arbiter's binlog
after the decision, which is what the echo carries to the other side."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.events import Op, RowChange, Transaction
from duosync.core.positions import BinlogPosition
from duosync.spec import ConflictPolicy
from duosync.sync.applier import Applier
from duosync.sync.batch import Batch, TableMapping
from duosync.sync.conflict_log import list_conflicts
from duosync.sync.convergence import Part, Role
from tests.helpers import query, run_sql
from tests.integration.test_binlog_stream import position_now, stream_items

pytestmark = pytest.mark.integration

COLUMNS = ("id", "v", "ts")
START = BinlogPosition(file="binlog.000001", offset=4)
BASE = "2026-01-01 00:00:00"
ARB_TS = "2026-01-01 00:00:10"  # when the arbiter's application wrote (lww_column)

# key: (what the arbiter's application did to the common row, the follower's change)
# The follower's change has the common row (key, 'base') as its before image.
CASES: dict[int, tuple[str, str]] = {
    1: ("update", "update"),
    2: ("delete", "update"),
    3: ("update", "delete"),
    4: ("delete", "delete"),  # both gone: nothing to decide
    5: ("insert", "insert"),  # a new key on both sides
    6: ("none", "update"),  # no crossing: applied
    7: ("delete+insert", "delete"),
    8: ("none", "delete"),  # no crossing: applied
}
CROSSED = {1, 2, 3, 5, 7}


def _arbiter_sql() -> list[str]:
    """The arbiter's own writes, after the common state (keys 1-4, 6-8 'base')."""
    return [
        f"UPDATE t SET v = 'arb', ts = '{ARB_TS}' WHERE id IN (1, 3)",
        "DELETE FROM t WHERE id IN (2, 4, 7)",
        f"INSERT INTO t VALUES (5, 'arb', '{ARB_TS}'), (7, 'arb2', '{ARB_TS}')",
    ]


def _follower_changes(db: str, ts: str) -> list[RowChange]:
    def row(k: int, v: str) -> tuple[Any, ...]:
        return (k, v, ts)

    base = {k: (k, "base", BASE) for k in CASES if k != 5}
    out = []
    for k, (_theirs, ours) in CASES.items():
        if ours == "update":
            out.append(RowChange(Op.UPDATE, db, "t", COLUMNS, base[k], row(k, "fol")))
        elif ours == "delete":
            out.append(RowChange(Op.DELETE, db, "t", COLUMNS, base[k], None))
        else:
            out.append(RowChange(Op.INSERT, db, "t", COLUMNS, None, row(k, "fol")))
    return out


def _decide(target: Endpoint, db: str, role: Role, task: str, ts: str, commit_ts: float) -> int:
    mapping = TableMapping((db, "t"), COLUMNS, (0, 1, 2), (0,))

    def mapping_of(_change: RowChange) -> TableMapping:
        return mapping

    applier = Applier(target, task, 2, role.policy, role=role)
    try:
        applier.prepare(START, f"{time.time():.6f}")
        with applier.conns[0].cursor() as cur:
            cur.execute("DELETE FROM oms.duosync_conflict WHERE task = %s", (task,))
            cur.execute("DELETE FROM oms.duosync_row_version WHERE pair = %s", (role.pair,))
        applier.conns[0].commit()
        batch = Batch(2, mapping_of, checked=True)
        pos = BinlogPosition(file="binlog.000001", offset=1000)
        for change in _follower_changes(db, ts):
            batch.add(change, pos, commit_ts)
        batch.end_transaction(pos, commit_ts, time.monotonic())
        return applier.apply(batch)[1]
    finally:
        applier.close()


def _rows(target: Endpoint, db: str) -> dict[int, str]:
    return {int(r[0]): str(r[1]) for r in query(target, "SELECT id, v FROM t", database=db)}


def _setup(target: Endpoint, db: str) -> None:
    run_sql(
        target,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), ts DATETIME(6))",
            "INSERT INTO t VALUES "
            + ", ".join(f"({k}, 'base', '{BASE}')" for k in CASES if k != 5),
            *_arbiter_sql(),
        ],
        database=db,
    )


#: the arbiter's row of each key when the arbiter wins every crossing
ARBITER_WINS = {1: "arb", 3: "arb", 5: "arb", 6: "fol", 7: "arb2"}
#: ... and when the follower's change wins every crossing
FOLLOWER_WINS = {1: "fol", 2: "fol", 5: "fol", 6: "fol"}


@pytest.mark.parametrize(
    ("flavor", "policy", "later", "expected"),
    [
        ("mariadb", ConflictPolicy.SITE_PRIORITY, True, ARBITER_WINS),
        ("oceanbase", ConflictPolicy.SITE_PRIORITY, True, ARBITER_WINS),
        # by commit time on OceanBase (ORA_ROWSCN dates the arbiter's rows)
        ("oceanbase", ConflictPolicy.LAST_WRITER_WINS, True, FOLLOWER_WINS),
        ("oceanbase", ConflictPolicy.LAST_WRITER_WINS, False, ARBITER_WINS),
        # by the application's column on MariaDB
        ("mariadb-column", ConflictPolicy.LAST_WRITER_WINS, True, FOLLOWER_WINS),
        ("mariadb-column", ConflictPolicy.LAST_WRITER_WINS, False, ARBITER_WINS),
    ],
)
def test_crossing_pairs(
    flavor: str,
    policy: ConflictPolicy,
    later: bool,
    expected: dict[int, str],
    request: pytest.FixtureRequest,
    fresh_database: Callable[..., str],
) -> None:
    target: Endpoint = request.getfixturevalue("oceanbase" if flavor == "oceanbase" else "mariadb2")
    db = fresh_database(target, "conv")
    _setup(target, db)
    task = f"conv-{flavor}-{policy.value}-{later}"
    role = Role(
        Part.DECIDER,
        policy,
        pair=task,
        rowscn=flavor == "oceanbase",
        lww_columns={f"{db}.t": "ts"} if flavor == "mariadb-column" else {},
    )
    # The follower's changes: committed long after the arbiter's (later) or before.
    commit_ts = time.time() + 3600 if later else 1_000_000.0
    # lww_column: the same, by the application's clock. (A row the arbiter's
    # application deleted is dated when the decider finds it: later means after now.)
    ts = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 3600))
        if later
        else "2026-01-01 00:00:05"
    )
    start = position_now(target) if flavor != "oceanbase" else None
    recorded = _decide(target, db, role, task, ts, commit_ts)
    assert _rows(target, db) == expected

    conflicts = {int(c.key[0]): c for c in list_conflicts(target, task)}
    assert recorded == len(conflicts)
    assert set(conflicts) == CROSSED
    for key, c in conflicts.items():
        assert c.winner == (
            "source"
            if expected.get(key) == "fol"
            or (key not in expected and CASES[key][1] == "delete" and later)
            else "target"
        ), (key, c)
        assert c.resolution in ("source won", "target won")
    if start is not None:
        # Every crossed key's state is written in the arbiter's log after the
        # decision: the echo applies it to the follower side.
        items = stream_items(target, start, position_now(target))
        touched = {
            int(ch.after[0] if ch.after is not None else ch.before[0])
            for t in items
            if isinstance(t, Transaction)
            for ch in t.changes
            if isinstance(ch, RowChange) and ch.table == "t" and ch.database == db
        }
        assert touched >= CROSSED

    # Deciding the same keys again (a replay) changes nothing more on the arbiter.
    _decide(target, db, role, task, ts, commit_ts)
    assert _rows(target, db) == expected
