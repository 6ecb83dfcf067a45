"""The DDL an OceanBase source's schema change yields, derived from two catalog
readings of a table's columns (``schema.compare.column_diff``,
``capture.schema_watch.ddl_for``), and how ``sync.ddl`` reads it back."""

from __future__ import annotations

import json

from duosync.core.catalog import Column, ColumnDefault, DefaultKind
from duosync.core.events import Op, RowChange, SchemaChange
from duosync.endpoints.oceanbase.capture.schema_watch import (
    Marker,
    SchemaTracker,
    TableVersion,
    ddl_for,
    read_marker,
)
from duosync.schema.compare import column_diff
from duosync.sync.ddl import parse


def _col(name: str, position: int, data_type: str = "int", **extra: object) -> Column:
    column_type = extra.pop("column_type", data_type)
    return Column(
        name=name,
        position=position,
        data_type=data_type,
        column_type=str(column_type),
        **extra,  # type: ignore[arg-type]
    )


ID, A, B = _col("id", 1, nullable=False), _col("a", 2), _col("b", 3, "varchar", length=20)


def test_nothing_changed_is_no_ddl() -> None:
    assert not column_diff([ID, A], [ID, A])
    assert ddl_for("d", "t", [ID, A], [ID, A]) is None
    # Positions renumbered by an earlier drop are not a change.
    assert not column_diff([ID, B.model_copy(update={"position": 3})], [ID, B])


def test_add_drop_and_modify_in_one_statement_keeping_the_order() -> None:
    new = [
        ID,
        _col("c", 2, default=ColumnDefault(kind=DefaultKind.LITERAL, value="5")),
        _col("a", 3, "bigint"),
    ]
    diff = column_diff([ID, A, B], new)
    assert diff.dropped == ("b",)
    assert [(c.name, after) for c, after in diff.added] == [("c", "id")]
    assert [(c.name, after) for c, after in diff.modified] == [("a", "c")]
    assert ddl_for("d", "t", [ID, A, B], new) == (
        "ALTER TABLE `d`.`t` DROP COLUMN `b`, ADD COLUMN `c` int NULL DEFAULT '5' AFTER `id`,"
        " MODIFY COLUMN `a` bigint NULL AFTER `c`"
    )


def test_a_column_added_first_and_a_move() -> None:
    assert ddl_for("d", "t", [ID], [_col("z", 1), _col("id", 2, nullable=False)]) == (
        "ALTER TABLE `d`.`t` ADD COLUMN `z` int NULL FIRST"
    )
    moved = ddl_for("d", "t", [ID, A, B], [ID, B, A])
    assert moved is not None and "MODIFY COLUMN `b`" in moved and "AFTER `id`" in moved


def test_create_from_nothing_and_drop_to_nothing() -> None:
    create = ddl_for("d", "t", [], [ID, A])
    assert create == "CREATE TABLE IF NOT EXISTS `d`.`t` (\n  `id` int NOT NULL,\n  `a` int NULL\n)"
    assert ddl_for("d", "t", [ID, A], []) == "DROP TABLE IF EXISTS `d`.`t`"
    assert ddl_for("d", "t", [], []) is None


def test_the_runner_side_parses_what_is_emitted() -> None:
    """``SchemaSync`` finds the kind and the table of every statement emitted (it
    renames the table, and reads a created table from the source catalog)."""
    for ddl, kind in (
        (ddl_for("d", "t`x", [ID], [ID, A]), "alter"),
        (ddl_for("d", "t", [], [ID]), "create"),
        (ddl_for("d", "t", [ID], []), "drop"),
    ):
        assert ddl is not None
        stmt = parse(ddl, "other")
        assert stmt is not None and stmt.kind == kind
        assert [(db, t) for _, _, db, t in stmt.names] == [("d", "t`x" if kind == "alter" else "t")]


def test_markers_round_trip() -> None:
    marker = Marker("begin", 4, 3, 123)
    image = json.dumps({"kind": "begin", "from": 3, "since": 123})
    assert read_marker(4, image) == marker


def _tracker(versions: dict[int, list[Column]]) -> SchemaTracker:
    return SchemaTracker(
        lambda _ref, ver: TableVersion(tuple(versions.get(ver, ()))),
        lambda _ref: ("id",),
        ddl=True,
    )


def test_tracker_yields_the_ddl_at_begin_then_holds_rows_until_ready() -> None:
    """Between BEGIN and READY a table's inserts are left to the READY re-read and
    its updates and deletes become deletes of the old key, in the new columns."""
    tracker = _tracker({1: [ID, A], 2: [ID, A, _col("c", 3)]})
    tracker._at[("d", "t")] = 1
    old_insert = RowChange(Op.INSERT, "d", "t", ("id", "a"), None, (1, 1))
    assert tracker.row(None, old_insert, 1, 10) == [old_insert]  # before BEGIN: as written
    got = tracker.marker(None, ("d", "t"), Marker("begin", 2, 1, 5), 20)
    assert got == [SchemaChange("d", "ALTER TABLE `d`.`t` ADD COLUMN `c` int NULL AFTER `a`")]
    assert tracker.at(("d", "t")) == 2
    assert tracker.row(None, old_insert, 1, 21) == []
    update = RowChange(Op.UPDATE, "d", "t", ("id", "a"), (1, 1), (2, 1))
    assert tracker.row(None, update, 1, 22) == [
        RowChange(Op.DELETE, "d", "t", ("id", "a", "c"), (1, 1, None), None)
    ]
    # A second BEGIN of the same version (a refresh redone) yields nothing again.
    assert tracker.marker(None, ("d", "t"), Marker("begin", 2, 1, 5), 23) == []


def test_tracker_without_ddl_notes_the_change_and_passes_rows_through() -> None:
    """A reverse task: the DDL is yielded (its runner only notes it), rows go as
    written, and READY reads nothing back."""
    tracker = SchemaTracker(
        lambda _r, v: TableVersion((ID,) if v == 1 else (ID, A)), lambda _r: ("id",), ddl=False
    )
    tracker._at[("d", "t")] = 1
    got = tracker.marker(None, ("d", "t"), Marker("begin", 2, 1, 5), 20)
    assert got == [SchemaChange("d", "ALTER TABLE `d`.`t` ADD COLUMN `a` int NULL AFTER `id`")]
    row = RowChange(Op.INSERT, "d", "t", ("id",), None, (1,))
    assert tracker.row(None, row, 1, 21) == [row]
    assert tracker.marker(None, ("d", "t"), Marker("ready", 2, 1, 5), 22) == []
