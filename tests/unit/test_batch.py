"""Merging a batch's row changes per key, partitioning, and replay filtering."""

from __future__ import annotations

import time
import zlib

from duosync.core.events import Op, RowChange
from duosync.core.positions import BinlogPosition
from duosync.sync import runner
from duosync.sync.batch import Batch, TableMapping, partition_of

COLS = ("id", "v")
MAPPING = TableMapping(("dst", "t"), ("id", "v"), (0, 1), (0,))
KEYLESS = TableMapping(("dst", "k"), ("id", "v"), (0, 1), ())


def pos(n: int) -> BinlogPosition:
    return BinlogPosition(file="binlog.000001", offset=n)


def change(op: Op, before: tuple[int, str] | None, after: tuple[int, str] | None) -> RowChange:
    return RowChange(op, "src", "t", COLS, before, after)


def batch(partitions: int = 1, skip: list[BinlogPosition] | None = None) -> Batch:
    return Batch(partitions, lambda c: MAPPING if c.table == "t" else None, skip)


def final(b: Batch) -> dict[tuple[object, ...], tuple[object, ...] | None]:
    out: dict[tuple[object, ...], tuple[object, ...] | None] = {}
    for part in b.parts:
        for changes in part.values():
            out.update(changes.final)
    return out


def test_insert_then_update_is_the_updated_row() -> None:
    b = batch()
    b.add(change(Op.INSERT, None, (1, "a")), pos(10))
    b.add(change(Op.UPDATE, (1, "a"), (1, "b")), pos(20))
    assert final(b) == {(1,): (1, "b")}


def test_update_then_delete_is_a_delete() -> None:
    b = batch()
    b.add(change(Op.UPDATE, (1, "a"), (1, "b")), pos(10))
    b.add(change(Op.DELETE, (1, "b"), None), pos(20))
    assert final(b) == {(1,): None}


def test_delete_then_insert_is_the_new_row() -> None:
    b = batch()
    b.add(change(Op.DELETE, (1, "a"), None), pos(10))
    b.add(change(Op.INSERT, None, (1, "c")), pos(20))
    assert final(b) == {(1,): (1, "c")}


def test_key_change_deletes_the_old_key() -> None:
    b = batch()
    b.add(change(Op.UPDATE, (1, "a"), (2, "a")), pos(10))
    assert final(b) == {(1,): None, (2,): (2, "a")}
    tc = next(iter(b.parts[0].values()))
    assert tc.deletes() == [(1,)] and tc.upserts() == [(2, "a")]


def test_unselected_tables_are_dropped_but_counted_as_nothing() -> None:
    b = batch()
    b.add(RowChange(Op.INSERT, "src", "other", COLS, None, (1, "x")), pos(10))
    assert final(b) == {} and b.rows == 0


def test_partitions_are_stable_and_keep_one_row_together() -> None:
    assert partition_of(("d", "t"), (42,), 8) == partition_of(("d", "t"), (42,), 8)
    spread = {partition_of(("d", "t"), (i,), 8) for i in range(200)}
    assert len(spread) == 8
    b = batch(partitions=4)
    b.add(change(Op.INSERT, None, (7, "a")), pos(10))
    b.add(change(Op.UPDATE, (7, "a"), (7, "b")), pos(20))
    holders = [p for p, part in enumerate(b.parts) if part]
    assert holders == [partition_of(("dst", "t"), (7,), 4)]


def test_partitions_keep_the_values_checkpoints_were_written_with() -> None:
    """Checkpoints are per partition: a row must land where it landed in any
    earlier version, whose rule was CRC-32 of repr((target, key))."""
    pinned = {
        (("d", "t"), (42,), 8): 1,
        (("shop", "orders"), (1, "a"), 4): 0,
        (("x'y", "z"), ("\u00fc", None), 3): 1,
        (("d", "t"), (), 7): 5,
    }
    for (target, key, n), expected in pinned.items():
        assert partition_of(target, key, n) == expected
        assert expected == zlib.crc32(repr((target, key)).encode()) % n
    for i in range(500):
        key = (i, f"k{i}", None if i % 3 else b"\x00")
        rule = zlib.crc32(repr((("db", "t"), key)).encode()) % 5
        assert partition_of(("db", "t"), key, 5) == rule


def test_replay_skips_what_a_partition_already_holds() -> None:
    p_of_1 = partition_of(("dst", "t"), (1,), 2)
    skip = [pos(0), pos(0)]
    skip[p_of_1] = pos(15)  # that partition committed up to offset 15
    b = batch(partitions=2, skip=skip)
    b.add(change(Op.INSERT, None, (1, "a")), pos(10))  # already applied there
    assert final(b) == {}
    b.add(change(Op.UPDATE, (1, "a"), (1, "b")), pos(20))  # after its checkpoint
    assert final(b) == {(1,): (1, "b")}


def test_keyless_tables_keep_every_change_in_order() -> None:
    b = Batch(1, lambda c: KEYLESS)
    b.add(RowChange(Op.INSERT, "src", "k", COLS, None, (1, "a")), pos(10))
    b.add(RowChange(Op.INSERT, "src", "k", COLS, None, (1, "a")), pos(11))
    b.add(RowChange(Op.DELETE, "src", "k", COLS, (1, "a"), None), pos(12))
    (tc,) = [c for (table, _m), c in b.parts[0].items() if table == ("dst", "k")]
    assert [op for op, _, _ in tc.ordered] == [Op.INSERT, Op.INSERT, Op.DELETE]


def test_positions_order_across_files() -> None:
    assert BinlogPosition(file="binlog.000002", offset=4) > BinlogPosition(
        file="binlog.000001", offset=999999
    )
    assert BinlogPosition(file="binlog.000010", offset=4) > BinlogPosition(
        file="binlog.000009", offset=4
    )


def test_a_tables_rows_under_two_column_lists_stay_apart_in_order() -> None:
    """An OceanBase reverse stream may give one table's rows with the old and the
    new columns in one batch (around a schema change): neither set is lost."""
    old = TableMapping(("dst", "t"), ("id", "a"), (0, 1), (0,), False)
    new = TableMapping(("dst", "t"), ("id", "a", "c"), (0, 1, 2), (0,), False)
    by_columns = {("id", "a"): old, ("id", "a", "c"): new}
    b = Batch(1, lambda ch: by_columns[ch.columns])
    b.add(RowChange(Op.INSERT, "src", "t", ("id", "a"), None, (1, 10)), pos(1))
    b.add(RowChange(Op.INSERT, "src", "t", ("id", "a", "c"), None, (2, 20, 7)), pos(2))
    parts = list(b.parts[0].values())
    assert [tc.mapping for tc in parts] == [old, new]
    assert [tc.upserts() for tc in parts] == [[(1, 10)], [(2, 20, 7)]]


def test_a_live_batch_waits_less_than_a_backlog_batch() -> None:
    """Once caught up (the newest transaction is recent) lag is the batch's wait,
    so it is short; a backlog is batched long, for fewer target commits."""
    b = batch()
    assert runner._delay(b) == runner.MAX_DELAY  # nothing in it yet
    b.add(change(Op.INSERT, None, (1, "a")), pos(10), time.time() - 60)
    b.end_transaction(pos(10), time.time() - 60, time.monotonic())
    assert runner._delay(b) == runner.MAX_DELAY
    b.add(change(Op.INSERT, None, (2, "a")), pos(20), time.time())
    b.end_transaction(pos(20), time.time(), time.monotonic())
    assert runner._delay(b) == runner.LIVE_DELAY < runner.MAX_DELAY


def test_identity_mappings_keep_the_row_and_others_project_it() -> None:
    same = TableMapping(("dst", "t"), ("id", "v"), (0, 1), (0,))
    fewer = TableMapping(("dst", "t"), ("v",), (1,), ())
    swapped = TableMapping(("dst", "t"), ("v", "id"), (1, 0), (1,))
    assert same.identity and not fewer.identity and not swapped.identity
    assert same == TableMapping(("dst", "t"), ("id", "v"), (0, 1), (0,))
    row = (7, "x")
    for mapping, want in ((same, (7, "x")), (fewer, ("x",)), (swapped, ("x", 7))):
        b = Batch(1, lambda c, m=mapping: m)
        b.add(change(Op.INSERT, None, row), pos(10))
        (tc,) = b.parts[0].values()
        got = tc.ordered[0][2] if not mapping.key else tc.upserts()[0]
        assert got == want
    # a source row wider than the mapping (a column the target lacks) is projected
    b = Batch(1, lambda c: same)
    b.add(RowChange(Op.INSERT, "src", "t", ("id", "v", "w"), None, (7, "x", "y")), pos(10))
    assert next(iter(b.parts[0].values())).upserts() == [(7, "x")]
    assert b.nbytes == 8 + 1 + 1  # the source image: an int (8) and two 1-character texts
