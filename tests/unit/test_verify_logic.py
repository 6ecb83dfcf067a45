"""Pure parts of verification: value comparison, key SQL, report, sync lag."""

from __future__ import annotations

from duosync.config import Flavor
from duosync.core.catalog import Column, Table
from duosync.core.positions import BinlogPosition
from duosync.verify.normalize import any_key_sql, key_match_sql, value_sql, values_equal
from duosync.verify.recheck import Part, SyncState
from duosync.verify.report import TableReport, VerifyReport, ordered, render


def _col(name: str, data_type: str, charset: str | None = None) -> Column:
    return Column(
        name=name, position=1, data_type=data_type, column_type=data_type, charset=charset
    )


TABLE = Table(
    database="d",
    name="t",
    columns=(_col("id", "int"), _col("code", "varchar", "utf8mb4"), _col("j", "json")),
    primary_key=("id",),
)


def test_json_is_compared_as_documents() -> None:
    j = TABLE.column("j")
    assert values_equal(j, '{"b": 1, "a": [1, 2.5]}', '{"a":[1.0,2.50],"b":1e0}')
    assert values_equal(j, b'"\\u00e9"', '"é"')
    assert not values_equal(j, '{"a": 1}', '{"a": "1"}')
    assert not values_equal(j, '{"a": 1}', None)
    assert not values_equal(j, "not json", "not  json")
    # other types compare as the normalised text they are
    assert not values_equal(TABLE.column("code"), "a", "A")


def test_normalised_values_per_type() -> None:
    assert value_sql(_col("f", "float"), Flavor.MARIADB, Flavor.OCEANBASE) == (
        "(CAST(`f` AS DOUBLE) + 0e0)"
    )
    j = TABLE.column("j")
    assert value_sql(j, Flavor.MARIADB, Flavor.OCEANBASE) == "JSON_LOOSE(JSON_COMPACT(`j`))"
    assert value_sql(j, Flavor.OCEANBASE, Flavor.MARIADB) == "CAST(`j` AS CHAR)"
    assert value_sql(j, Flavor.MARIADB, Flavor.MARIADB) == "CONVERT(`j` USING utf8mb4)"


def test_text_keys_match_exactly_numbers_by_in_list() -> None:
    assert any_key_sql(TABLE, ["id"], [("1",), ("2",)]) == "`id` IN (1,2)"
    sql = key_match_sql(TABLE, ["id", "code"], ["1", "'a'"])
    assert sql == (
        "(`id` = 1 AND `code` = 'a'"
        " AND CAST(CONVERT(`code` USING utf8mb4) AS BINARY) = CAST('a' AS BINARY))"
    )


def test_keys_are_ordered_numbers_first_numerically() -> None:
    assert ordered([("10",), ("9",), ("'b'",), ("-3",), ("'a'",)]) == [
        ("-3",), ("9",), ("10",), ("'a'",), ("'b'",)
    ]  # fmt: skip


def test_render_caps_keys_and_says_how_many_more() -> None:
    t = TableReport("d.t", "d2.t", key=("id",), source_rows=10, target_rows=9, chunks=2)
    t.missing, t.missing_keys = 3, [("1",), ("2",)]
    report = VerifyReport("task", "a", "b", tables=[t, TableReport("d.u", "d.u")], seconds=1.0)
    lines = render(report)
    assert lines[0].startswith("d.t -> d2.t: DIFFERS: 3 missing, 0 extra, 0 different")
    assert lines[1] == "  missing (id): 1, 2 and 1 more"
    assert lines[2] == "d.u: equal (0 rows, 0 chunks)"
    assert lines[-1].endswith("1 table differs")
    assert report.differs and not report.tables[1].differs


def test_sync_lag_and_landing() -> None:
    def part(commit: float | None, applied: float, offset: int | None = None) -> Part:
        pos = BinlogPosition(file="bin.000002", offset=offset) if offset is not None else None
        return Part(commit, applied, pos)

    s = SyncState((part(100.0, 101.0), part(None, 105.0), part(103.0, 104.0)))
    assert s.lag(110.0) == 10.0
    # an idle checkpoint counts from when it was written: later rows may be in flight
    assert SyncState((part(None, 99.0),)).lag(110.0) == 11.0
    assert not s.landed(102.0, None)  # the first partition applied nothing since
    assert SyncState((part(103.0, 104.0), part(None, 105.0))).landed(102.0, None)
    assert not SyncState(()).landed(0.0, None)
    # with the source's binlog position: one partition at or past it is enough
    upto = BinlogPosition(file="bin.000002", offset=500)
    assert SyncState((part(1.0, 1.0, 400), part(1.0, 1.0, 500))).landed(9.0, upto)
    assert not SyncState((part(1.0, 1.0, 400), part(None, 1.0))).landed(9.0, upto)
