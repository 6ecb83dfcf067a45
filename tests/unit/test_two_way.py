"""Two-way sync without servers: the spec's topology and reverse options, the
reverse task's derived objects (renames inverted), the loop guard's verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from duosync.core.catalog import Column, Table
from duosync.core.events import Op, RowChange, SchemaChange, Transaction
from duosync.core.positions import BinlogPosition
from duosync.errors import ConfigError
from duosync.service.phases.twoway import reverse_spec
from duosync.spec import ConflictPolicy, MigrationType, Topology
from duosync.specfile import parse_spec
from duosync.sync.loopguard import LoopGuard
from tests.unit.test_spec import SECRET, base, error, spec


def two_way(**overrides: Any) -> dict[str, Any]:
    return base(topology="two-way", types=["schema", "full", "incremental"], **overrides)


def test_two_way_defaults() -> None:
    s = parse_spec(two_way())
    assert s.topology is Topology.TWO_WAY
    assert s.reverse is None
    assert s.reverse_name == "t1.reverse"
    # A two-way task resolves conflicts by overwriting unless told otherwise; a
    # one-way task applies idempotently, without a policy.
    assert s.conflict_policy is ConflictPolicy.OVERWRITE
    assert spec().conflict_policy is None
    assert spec(options={"conflict": "ignore"}).conflict_policy is ConflictPolicy.IGNORE


def test_two_way_needs_incremental() -> None:
    msg = error(base(topology="two-way"))
    assert "topology: two-way needs 'incremental' in types" in msg


def test_reverse_only_with_two_way() -> None:
    assert "reverse: only for topology: two-way" in error(base(reverse={"write_concurrency": 2}))


@pytest.mark.parametrize("field", ["select", "rename", "filters", "types", "source"])
def test_reverse_objects_cannot_be_edited(field: str) -> None:
    msg = error(two_way(reverse={field: {"databases": ["x"]}}))
    assert f"reverse: {field}: the reverse task's objects" in msg
    assert "cannot be edited" in msg
    assert SECRET not in msg


def test_reverse_options_checked() -> None:
    assert "reverse.write_concurrency" in error(two_way(reverse={"write_concurrency": 513}))
    assert "did you mean conflict" in error(two_way(reverse={"conflicts": "ignore"}))
    assert "reverse.conflict" in error(two_way(reverse={"conflict": "merge"}))


def test_two_way_name_leaves_room_for_the_reverse_name() -> None:
    assert "at most 56 characters" in error(two_way(name="n" * 57))
    assert "must not end with '.reverse'" in error(two_way(name="a.reverse"))


def _table(db: str, name: str, *cols: str, key: tuple[str, ...] = ("id",)) -> Table:
    columns = tuple(
        Column(name=c, position=i, data_type="int", column_type="int")
        for i, c in enumerate(cols, 1)
    )
    return Table(database=db, name=name, columns=columns, primary_key=key)


def test_reverse_spec_inverts_renames() -> None:
    forward = parse_spec(
        two_way(
            select={"databases": ["shop"], "objects": ["crm.people"]},
            rename={
                "databases": {"shop": "shop2"},
                "tables": {"crm.people": "hr.staff"},
                "columns": {"shop.orders": {"qty": "quantity"}},
            },
            reverse={"write_concurrency": 7, "conflict": "ignore"},
        )
    )
    tables = [
        _table("shop", "orders", "id", "qty"),
        _table("shop", "items", "id"),
        _table("crm", "people", "id"),
    ]
    r = reverse_spec(forward, tables)
    assert r.name == "t1.reverse"
    assert (r.source, r.target) == (forward.target, forward.source)
    assert r.types == (MigrationType.INCREMENTAL,)
    assert r.topology is Topology.ONE_WAY
    assert r.select.objects == ("shop2.orders", "shop2.items", "hr.staff")
    # Every target table maps back onto its source table, columns too.
    assert r.rename.table("shop2", "orders") == ("shop", "orders")
    assert r.rename.table("shop2", "items") == ("shop", "items")
    assert r.rename.table("hr", "staff") == ("crm", "people")
    assert r.rename.column("shop2", "orders", "quantity") == "qty"
    assert r.options.write_concurrency == 7
    assert r.conflict_policy is ConflictPolicy.IGNORE


def test_reverse_spec_needs_two_way_and_tables() -> None:
    with pytest.raises(ConfigError, match="not a two-way sync"):
        reverse_spec(spec(types=["incremental"]), [_table("shop", "t", "id")])
    with pytest.raises(ConfigError, match="selects no table"):
        reverse_spec(parse_spec(two_way()), [])


POS = BinlogPosition(file="b.000001", offset=4)


def _marker(task: str, columns: tuple[str, ...] = ("task", "part", "position")) -> RowChange:
    before = (task, 0, "{}")
    return RowChange(Op.UPDATE, "oms", "duosync_checkpoint", columns, before, before)


def _txn(*changes: RowChange | SchemaChange) -> Transaction:
    return Transaction("1-1-1", 1, 0.0, POS, changes)


def test_loop_guard_drops_only_the_opposite_tasks_transactions() -> None:
    guard = LoopGuard("fwd.reverse", "fwd")
    row = RowChange(Op.INSERT, "shop", "t", ("id",), None, (1,))
    assert guard.echo(_txn(row, _marker("fwd")))
    assert guard.echo(_txn(_marker("fwd", ("TASK", "part", "position"))))
    assert not guard.echo(_txn(row))
    # our own marker: read back when both sides are one server
    assert guard.echo(_txn(row, _marker("fwd.reverse")))
    assert not guard.echo(_txn(row, _marker("other")))
    assert LoopGuard("one-way").echo(_txn(_marker("one-way")))
    # binary task values (a trigger log or a binary column) compare as text
    binary = RowChange(Op.UPDATE, "oms", "duosync_checkpoint", ("task",), (b"fwd",), (b"fwd",))
    assert guard.echo(_txn(binary))
    # the same name in a user table is not a marker
    lookalike = RowChange(Op.INSERT, "shop", "duosync_checkpoint", ("task",), None, ("fwd",))
    assert not guard.echo(_txn(lookalike))
    assert guard.dropped == 4
