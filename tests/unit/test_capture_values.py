"""Trigger capture's pure parts: value decoding, position order, the duplicate rule."""

from __future__ import annotations

import pytest

from duosync.core.catalog import Column
from duosync.core.events import Op, RowChange
from duosync.core.positions import (
    ALL_OF_VERSION,
    BinlogPosition,
    TriggerLogPosition,
    position_from,
)
from duosync.endpoints.oceanbase.capture.stream import _Entry, _same_write
from duosync.endpoints.oceanbase.capture.values import UnsupportedColumn, decoder, value_expr


def col(data_type: str, **kw: object) -> Column:
    return Column(name="c", position=1, data_type=data_type, column_type=data_type, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fsp", "epoch", "text"),
    [
        (6, "1704067200.123456", "2024-01-01 00:00:00.123456"),
        (3, "1704067200.123000", "2024-01-01 00:00:00.123"),
        (0, "1704067200", "2024-01-01 00:00:00"),
        (6, "2147483647.999999", "2038-01-19 03:14:07.999999"),
        (0, "1", "1970-01-01 00:00:01"),
        (2, "0", "0000-00-00 00:00:00.00"),
    ],
)
def test_timestamps_decode_from_the_epoch_to_utc_text(fsp: int, epoch: str, text: str) -> None:
    assert decoder(col("timestamp", fsp=fsp))(epoch) == text


def test_values_decode_to_event_types() -> None:
    assert decoder(col("bigint", unsigned=True))(18446744073709551615) == 18446744073709551615
    assert decoder(col("bit"))(5) == 5
    assert decoder(col("varbinary"))("00FF") == b"\x00\xff"
    assert decoder(col("char", charset="binary"))("61") == b"a"
    assert decoder(col("float"))("3.1415927410125732") == 3.1415927410125732
    assert decoder(col("decimal"))("-0.500") == "-0.500"
    assert decoder(col("varchar", charset="utf8mb4"))("😀") == "😀"
    assert decoder(col("point"))(None) is None


def test_expressions_keep_values_exact_and_refuse_unknown_types() -> None:
    assert value_expr(col("timestamp"), "NEW") == "CAST(UNIX_TIMESTAMP(NEW.`c`) AS CHAR)"
    assert value_expr(col("float"), "OLD") == "CAST(CAST(OLD.`c` AS DOUBLE) AS CHAR)"
    assert value_expr(col("blob"), "NEW") == "HEX(NEW.`c`)"
    with pytest.raises(UnsupportedColumn, match="vector"):
        value_expr(col("vector"), "NEW")


def test_trigger_positions_order_and_round_trip() -> None:
    a = TriggerLogPosition(scn=10, tx=5)
    assert (
        a
        < TriggerLogPosition(scn=10, tx=6)
        < TriggerLogPosition(scn=10)
        < TriggerLogPosition(scn=11, tx=0)
    )
    assert TriggerLogPosition(scn=10).tx == ALL_OF_VERSION
    assert position_from(a.model_dump()) == a
    assert position_from(a.model_dump_json()) == a
    old = {"file": "binlog.000002", "offset": 4, "gtid": None}  # stored before kinds existed
    assert position_from(old) == BinlogPosition(file="binlog.000002", offset=4)
    with pytest.raises(TypeError):
        assert a < BinlogPosition(file="b.1", offset=1)


def _entry(
    ver: int, columns: tuple[str, ...], after: tuple[object, ...], op: Op = Op.INSERT
) -> _Entry:
    return _Entry(("d", "t"), ver, RowChange(op, "d", "t", columns, None, after))


def test_a_write_recorded_by_two_trigger_versions_counts_once() -> None:
    old = _entry(1, ("id", "a"), (1, 2))
    assert _same_write(old, _entry(2, ("id", "a", "b"), (1, 2, None)))
    assert not _same_write(old, _entry(2, ("id", "a", "b"), (2, 2, None)))  # another row
    assert not _same_write(old, _entry(1, ("id", "a"), (1, 2)))  # same version: two writes
    assert not _same_write(old, _entry(2, ("id", "a"), (1, 2), Op.DELETE))
