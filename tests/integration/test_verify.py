"""``duosync verify``: chunk checksums, row diff, recheck during a sync, --fix.

Every target is built by duosync's own full migration, then changed behind its back
(planted differences); verification must name exactly those rows, and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from duosync.config import Endpoint
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.spec import TaskSpec
from duosync.specfile import parse_spec
from duosync.verify import VerifyReport, render, verify_task
from duosync.verify import fix as fixing
from tests.helpers import admin_connection, checkpoint_rows, query, run_sql

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
SCHEMA = (HERE / "schema_all_types.sql").read_text()
FIDELITY = (HERE / "fidelity_rows.sql").read_text()

# Rows for schema_all_types.sql's tables: extremes, NULLs, latin1 text (utf8mb4 on
# OceanBase), JSON whose text MariaDB keeps but OceanBase re-prints (keys sorted,
# spacing, 1e2 -> 100.0), FLOAT(7,3)/DOUBLE(12,4) display widths, spatial values,
# duplicate rows in the keyless table.
ALL_TYPES_ROWS = [
    "INSERT INTO all_types (c_tinyint, c_utinyint, c_bool, c_smallint, c_usmallint,"
    " c_mediumint, c_umediumint, c_int, c_uint, c_bigint, c_decimal, c_decimal2, c_float,"
    " c_float2, c_double, c_double2, c_bit1, c_bit64, c_year, c_date, c_time, c_time6,"
    " c_datetime, c_datetime6, c_timestamp, c_timestamp6, c_char, c_varchar, c_binary,"
    " c_varbinary, c_tinytext, c_text, c_mediumtext, c_longtext, c_tinyblob, c_blob,"
    " c_mediumblob, c_longblob, c_enum, c_set, c_json, c_comment) VALUES"
    " (-128, 255, 0, -32768, 7, -8388608, 16777215, -1073741824, 4294967295,"
    "  -9223372036854775808, '-12345678901234567890.123456789012345678901234567890', 0.50,"
    "  -3.4e38, 1234.567, 1.7976931348623157e308, 12345678.1234, b'1', b'101', 1901,"
    "  '1000-01-01', '-838:59:59', '12:34:56.000001', '1000-01-01 00:00:00',"
    "  '2020-02-29 23:59:59.999999', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999',"
    "  'é ü ß', 'it''s \\\\ \"q\"', x'0001', x'', 't', 'line\\nnext', 'm', 'l', x'00', x'ff00',"
    "  x'', x'01', 'it''s', 'a,c',"
    '  \'{"b":1,"a":[1,2.50,1e2],"zz":{"y":null,"x":true}}\', 7),'
    " (0, NULL, NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL, 0.1, 0.001, -0.0,"
    "  0.0001, b'0', b'1111111111111111111111111111111111111111111111111111111111111111',"
    "  2155, '9999-12-31', '838:59:59', '-00:00:00.5', '9999-12-31 23:59:59', NULL, NULL,"
    "  NULL, '', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'small',"
    "  '', '[]', NULL),"
    " (1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 3.1415927, -1.5, 0.1, -2.5, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL, NULL, 'medium', NULL, '\"\\u00e9\"', NULL)",
    "INSERT INTO parent VALUES ('FR', 1, 'Zoë'), ('de', 2, 'Łukasz'), ('FR', 3, '李雷 😀')",
    "INSERT INTO child VALUES (1, 'FR', 1, 'a'), (2, 'de', 2, NULL), (3, NULL, NULL, 'x')",
    "INSERT INTO no_pk VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL), (2, 'b')",
    "INSERT INTO uk_only VALUES ('Abc', 1), ('abd', NULL), ('é', 3)",
    "INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1 2)'), POINT(-1.5, 2.25),"
    " ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'), ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'),"
    " ST_GeomFromText('MULTIPOINT(0 0, 1 1)'), ST_GeomFromText('MULTILINESTRING((0 0,1 1))'),"
    " ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))'),"
    " ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1))')),"
    " (2, NULL, POINT(0, 0), NULL, NULL, NULL, NULL, NULL, NULL)",
]


def spec_for(
    name: str, source: Endpoint, target: Endpoint, body: dict[str, Any] | None = None
) -> TaskSpec:
    data: dict[str, Any] = {
        "name": name,
        "source": f"{source.flavor.value}://root@{source.host}:{source.port}",
        "target": f"{target.flavor.value}://root@{target.host}:{target.port}",
    }
    data.update(body or {})
    return parse_spec(data, name)


def migrate(spec: TaskSpec, home: Path) -> None:
    with MetadataStore.in_home(home) as store:
        run_spec(spec, store, lambda _line: None)


def verify(spec: TaskSpec, **kw: Any) -> VerifyReport:
    report = verify_task(spec, say=lambda _line: None, **kw)
    print("\n".join(render(report)))  # shown when a test fails
    return report


def fix(report: VerifyReport, spec: TaskSpec) -> int:
    return fixing.apply(spec.target, fixing.statements(report, spec.source))


def keys(*values: Any) -> list[tuple[str, ...]]:
    """Key lists as the report shows them: one tuple of literal texts per key."""
    return [v if isinstance(v, tuple) else (str(v),) for v in values]


# -- identical data reports zero -------------------------------------------------------------


def _all_types_source(endpoint: Endpoint, db: str) -> None:
    run_sql(endpoint, SCHEMA, database=db)
    run_sql(endpoint, ALL_TYPES_ROWS, database=db)
    run_sql(endpoint, FIDELITY, database=db)


def test_identical_data_of_every_type_is_equal_mariadb_to_mariadb(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _all_types_source(mariadb1, src)
    spec = spec_for(
        "v-types-mm",
        mariadb1,
        mariadb2,
        {"select": {"databases": [src]}, "rename": {"databases": {src: dst}}},
    )
    migrate(spec, tmp_path / "home")
    report = verify(spec)
    assert not report.differs
    assert {t.source.split(".")[1] for t in report.tables} == {
        "all_types", "parent", "child", "no_pk", "uk_only", "geo", "fidelity"
    }  # fmt: skip
    assert report.table(f"{src}.fidelity").source_rows == 4
    assert report.table(f"{src}.no_pk").target_rows == 4
    assert any("no primary key" in n for n in report.table(f"{src}.no_pk").notes)


def test_identical_data_of_every_type_is_equal_through_oceanbase_and_back(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """MariaDB -> OceanBase -> MariaDB, verified at each hop. The sides really print
    values differently (checked below), so equality here is the normalisation's."""
    src = fresh_database(mariadb1, "src")
    mid = fresh_database(oceanbase, "mid")
    dst = fresh_database(mariadb2, "dst")
    _all_types_source(mariadb1, src)
    there = spec_for(
        "v-types-mo",
        mariadb1,
        oceanbase,
        {"select": {"databases": [src]}, "rename": {"databases": {src: mid}}},
    )
    migrate(there, tmp_path / "home")
    back = spec_for(
        "v-types-om",
        oceanbase,
        mariadb2,
        {"select": {"databases": [mid]}, "rename": {"databases": {mid: dst}}},
    )
    migrate(back, tmp_path / "home")

    # What normalisation has to absorb: OceanBase re-prints JSON (key order, spacing,
    # numbers) and its sessions default to +08:00, so TIMESTAMPs would read 8 hours
    # off; the latin1 column is utf8mb4 there.
    sql = "SELECT CAST(c_json AS CHAR) FROM all_types ORDER BY id"
    assert query(mariadb1, sql, database=src) != query(oceanbase, sql, database=mid)
    assert query(oceanbase, "SELECT @@global.time_zone") == [("+08:00",)]

    for spec in (there, back):
        report = verify(spec)
        assert not report.differs, spec.name
        assert len(report.tables) == 7
    # Identical JSON text but for key order is compared row by row, never reported.
    assert verify(there).table(f"{src}.all_types").chunks_differing == 1
    assert verify(back).table(f"{mid}.all_types").chunks_differing == 0


# -- planted differences are found exactly -----------------------------------------------------


def _shop(endpoint: Endpoint, db: str) -> None:
    run_sql(
        endpoint,
        [
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2),"
            " seen TIMESTAMP NULL)",
            "INSERT INTO items SELECT seq, CONCAT('item ', seq), seq / 4,"
            " FROM_UNIXTIME(1600000000 + seq) FROM seq_1_to_3000",
            # text key, case-insensitive collation; renamed table and column
            "CREATE TABLE people (login VARCHAR(20) PRIMARY KEY, full_name VARCHAR(60),"
            " country CHAR(2)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
            "INSERT INTO people VALUES ('alice', 'Alice A', 'FR'), ('bob', 'Bob B', 'DE'),"
            " ('Carol', 'Carol C', 'FR'), ('dave', 'Dave D', 'US'), ('émile', 'Émile E', 'FR')",
            # composite key, row filter
            "CREATE TABLE order_lines (order_id INT, line_no SMALLINT, qty INT, note VARCHAR(10),"
            " PRIMARY KEY (order_id, line_no))",
            "INSERT INTO order_lines SELECT 1 + seq DIV 4, seq MOD 4, seq,"
            " IF(seq MOD 3 = 0, NULL, 'n') FROM seq_1_to_400",
        ],
        database=db,
    )


SHOP_BODY = {
    "options": {"chunk_rows": 500},
}


def _shop_spec(name: str, source: Endpoint, target: Endpoint, src: str, dst: str) -> TaskSpec:
    return spec_for(
        name,
        source,
        target,
        {
            "select": {"databases": [src]},
            "rename": {
                "databases": {src: dst},
                "tables": {f"{src}.people": "users"},
                "columns": {f"{src}.people": {"full_name": "display_name"}},
            },
            # the target holds the first 50 orders' lines only
            "filters": {f"{src}.order_lines": "order_id <= 50"},
            **SHOP_BODY,
        },
    )


def _plant(target: Endpoint, dst: str) -> None:
    run_sql(
        target,
        [
            # items: two missing (in different chunks), one extra, two different
            "DELETE FROM items WHERE id IN (17, 2999)",
            "INSERT INTO items (id, name) VALUES (5000, 'stray')",
            "UPDATE items SET price = price + 0.01 WHERE id = 1200",
            "UPDATE items SET seen = NULL WHERE id = 2500",
            # users (renamed): one different in the renamed column, one whose key
            # differs only in case (missing 'alice', extra 'Alice'), one extra
            "UPDATE users SET display_name = 'Bobby' WHERE login = 'bob'",
            "UPDATE users SET login = 'Alice' WHERE login = 'alice'",
            "INSERT INTO users VALUES ('zed', 'Zed Z', 'NZ')",
            # lines (filtered): a row the filter leaves out is extra; one missing
            "INSERT INTO order_lines VALUES (90, 1, 1, 'x')",
            "DELETE FROM order_lines WHERE order_id = 50 AND line_no = 2",
        ],
        database=dst,
    )


def _assert_planted(report: VerifyReport, src: str, dst: str) -> None:
    items = report.table(f"{src}.items")
    assert (items.missing, items.extra, items.different) == (2, 1, 2)
    assert items.missing_keys == keys(17, 2999)
    assert items.extra_keys == keys(5000)
    assert items.different_keys == keys(1200, 2500)
    assert items.columns_differing == {"price": 1, "seen": 1}
    assert items.chunks == 7 and items.chunks_differing == 5
    people = report.table(f"{src}.people")
    assert people.target == f"{dst}.users"
    assert (people.missing, people.extra, people.different) == (1, 2, 1)
    assert people.missing_keys == keys("'alice'")
    assert people.extra_keys == keys("'Alice'", "'zed'")
    assert people.different_keys == keys("'bob'")
    assert people.columns_differing == {"display_name": 1}
    lines = report.table(f"{src}.order_lines")
    assert lines.source_rows == 199  # order_id <= 50: 1..199 (seq 1..199)
    assert (lines.missing, lines.extra, lines.different) == (1, 1, 0)
    assert lines.missing_keys == [("50", "2")]
    assert lines.extra_keys == [("90", "1")]


@pytest.mark.parametrize(
    ("source_name", "target_name"),
    [("mariadb1", "mariadb2"), ("mariadb1", "oceanbase1"), ("oceanbase1", "mariadb2")],
)
def test_planted_differences_are_found_exactly_then_fixed(
    source_name: str,
    target_name: str,
    tmp_path: Path,
    sandbox_servers: dict[str, Endpoint],
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    source, target = sandbox_servers[source_name], sandbox_servers[target_name]
    if source_name == "oceanbase1":
        # OceanBase has no Sequence engine: build the shop on MariaDB, copy it over.
        seed = fresh_database(mariadb1, "seed")
        _shop(mariadb1, seed)
        src = fresh_database(source, "src")
        migrate(
            spec_for(
                "v-seed",
                mariadb1,
                source,
                {"select": {"databases": [seed]}, "rename": {"databases": {seed: src}}},
            ),
            tmp_path / "seed",
        )
    else:
        src = fresh_database(source, "src")
        _shop(source, src)
    dst = fresh_database(target, "dst")
    spec = _shop_spec(f"v-plant-{source_name}-{target_name}", source, target, src, dst)
    migrate(spec, tmp_path / "home")
    assert not verify(spec).differs

    _plant(target, dst)
    report = verify(spec)
    assert report.differs
    _assert_planted(report, src, dst)

    # --fix: the statements make the target equal; a second run finds nothing.
    assert fix(report, spec) == 2 + 1 + 2 + (1 + 2 + 1) + (1 + 1)
    again = verify(spec)
    assert not again.differs
    assert query(target, "SELECT login, display_name FROM users ORDER BY login", database=dst) == [
        ("alice", "Alice A"), ("bob", "Bob B"), ("Carol", "Carol C"), ("dave", "Dave D"),
        ("émile", "Émile E"),
    ]  # fmt: skip


def test_missing_tables_columns_and_keyless_tables(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _shop(mariadb1, src)
    run_sql(
        mariadb1,
        [
            "CREATE TABLE logs (at DATETIME, msg VARCHAR(20))",
            "INSERT INTO logs VALUES ('2024-01-01 00:00:00', 'a'), ('2024-01-01 00:00:00', 'a')",
        ],
        database=src,
    )
    spec = _shop_spec("v-missing", mariadb1, mariadb2, src, dst)
    migrate(spec, tmp_path / "home")
    assert not verify(spec).differs
    run_sql(
        mariadb2,
        [
            "DROP TABLE order_lines",
            "ALTER TABLE users DROP COLUMN country",
            # a third copy of a duplicated row: only the count and checksum can tell
            "INSERT INTO logs VALUES ('2024-01-01 00:00:00', 'a')",
        ],
        database=dst,
    )
    report = verify(spec)
    assert report.differs
    assert report.table(f"{src}.order_lines").problem == "the target has no such table"
    assert "country" in (report.table(f"{src}.people").problem or "")
    assert not report.table(f"{src}.items").differs
    logs = report.table(f"{src}.logs")
    assert logs.keyless_differs and (logs.source_rows, logs.target_rows) == (2, 3)
    assert any("cannot be named or fixed" in n for n in logs.notes)
    assert any("no key" in n for n in fixing.notes(report))


def test_a_row_filter_with_a_percent_sign(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """The filter is user SQL: its '%' is not a placeholder, in chunk range queries
    (bound arguments) and in lookups by key (none) alike."""
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _shop(mariadb1, src)
    migrate(_shop_spec("v-percent", mariadb1, mariadb2, src, dst), tmp_path / "home")
    data = _shop_spec("v-percent", mariadb1, mariadb2, src, dst).model_dump(mode="json")
    # the same rows as the migration's filter, written with LIKE '%'
    data["filters"] = {f"{src}.order_lines": "order_id <= 50 AND (note LIKE '%' OR note IS NULL)"}
    data["options"]["chunk_rows"] = 100
    spec = parse_spec(data)
    assert not verify(spec).differs
    run_sql(mariadb2, ["INSERT INTO order_lines VALUES (77, 1, 1, 'x')"], database=dst)
    lines = verify(spec).table(f"{src}.order_lines")
    assert lines.extra_keys == [("77", "1")] and lines.chunks == 5
    fix(verify(spec), spec)
    assert not verify(spec).differs


# -- large tables: chunk by chunk ---------------------------------------------------------------


def test_large_table_is_compared_chunk_by_chunk(
    tmp_path: Path, mariadb1: Endpoint, oceanbase: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """60k rows in 1000-row chunks: only the chunks holding a planted difference are
    read row by row, the rest is two numbers per chunk and side."""
    src, dst = fresh_database(mariadb1, "src"), fresh_database(oceanbase, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE big (id INT PRIMARY KEY, a VARCHAR(32), b DOUBLE, c DATETIME(6))",
            "INSERT INTO big SELECT seq, MD5(seq), seq / 7, TIMESTAMP'2020-01-01 00:00:00'"
            " + INTERVAL seq * 1001 MICROSECOND FROM seq_1_to_60000",
        ],
        database=src,
    )
    spec = spec_for(
        "v-big",
        mariadb1,
        oceanbase,
        {
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            "options": {"chunk_rows": 1000},
        },
    )
    migrate(spec, tmp_path / "home")
    equal = verify(spec).table(f"{src}.big")
    assert not equal.differs
    assert equal.chunks == 61 and equal.chunks_differing == 0 and equal.rows_fetched == 0
    assert equal.source_rows == equal.target_rows == 60000

    run_sql(
        oceanbase,
        ["UPDATE big SET b = 0 WHERE id = 12345", "DELETE FROM big WHERE id = 40001"],
        database=dst,
    )
    found = verify(spec).table(f"{src}.big")
    assert found.different_keys == keys(12345) and found.missing_keys == keys(40001)
    assert found.chunks == 61 and found.chunks_differing == 2
    # two chunks, both sides, at most chunk_rows each: the rest was never fetched
    assert found.rows_fetched == 4 * 1000 - 1


# -- the command ------------------------------------------------------------------------------


def _duosync(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
        check=False,
        env={**os.environ},
    )


def test_cli_exit_status_sql_file_and_apply(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _shop(mariadb1, src)
    spec = _shop_spec("v-cli", mariadb1, mariadb2, src, dst)
    migrate(spec, tmp_path / "home")
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    home = tmp_path / "cli-home"

    ok = _duosync("verify", "-f", str(task), home=home)
    assert ok.returncode == 0, ok.stderr
    assert "source and target are equal" in ok.stdout

    _plant(mariadb2, dst)
    found = _duosync("verify", "-f", str(task), "--max-keys", "1", home=home)
    assert found.returncode == 1, found.stderr
    assert f"{src}.items -> {dst}.items: DIFFERS: 2 missing, 1 extra, 2 different" in found.stdout
    assert "missing (id): 17 and 1 more" in found.stdout

    # --fix alone prints the statements (the report goes to stderr); nothing changes
    printed = _duosync("verify", "-f", str(task), "--fix", home=home)
    assert printed.returncode == 1
    assert "SET time_zone = '+00:00';" in printed.stdout
    assert f"DELETE FROM `{dst}`.`items` WHERE `id` IN (5000);" in printed.stdout
    assert "DIFFERS" in printed.stderr and "DIFFERS" not in printed.stdout

    sql = tmp_path / "fix.sql"
    written = _duosync("verify", "-f", str(task), "--sql", str(sql), home=home)
    assert written.returncode == 1
    assert sql.read_text() == printed.stdout

    refused = _duosync("verify", "-f", str(task), "--apply", home=home, stdin="y\n")
    assert refused.returncode == 2  # no terminal to confirm on, and no --yes
    assert "--yes" in refused.stderr

    applied = _duosync("verify", "-f", str(task), "--yes", home=home)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.rstrip().endswith("source and target are equal")
    assert _duosync("verify", "-f", str(task), home=home).returncode == 0

    bad = tmp_path / "bad.yaml"
    bad.write_text(task.read_text().replace("select:", "selekt:"))
    assert _duosync("verify", "-f", str(bad), home=home).returncode == 2


# -- while a sync runs ------------------------------------------------------------------------


def _wait_for(check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_rows_in_flight_during_a_sync_are_rechecked_not_reported(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    syncing: Callable[[TaskSpec], None],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE acct (id INT PRIMARY KEY, balance INT NOT NULL)",
            "INSERT INTO acct SELECT seq, 100 FROM seq_1_to_2000",
        ],
        database=src,
    )
    spec = spec_for(
        f"v-sync-{time.time_ns()}",  # the target's oms checkpoints outlive a test run
        mariadb1,
        mariadb2,
        {
            "types": ["schema", "full", "incremental"],
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            # a slow applier: a burst of changes stays in flight for seconds
            "options": {"rate_rows_per_second": 150},
        },
    )
    syncing(spec)
    # checkpoint rows exist once the copy is done and incremental sync has started
    _wait_for(lambda: checkpoint_rows(mariadb2, spec.name) == 4)
    # A real difference, on a row the source never changes again.
    run_sql(mariadb2, ["UPDATE acct SET balance = -1 WHERE id = 7"], database=dst)
    # ~600 row changes in 30 transactions: at 150 rows/s the applier needs ~4 s.
    conn = admin_connection(mariadb1, src)
    try:
        with conn.cursor() as cur:
            for i in range(30):
                cur.execute(
                    "UPDATE acct SET balance = balance + 1 WHERE id > %s AND id <= %s",
                    (1000 + i * 20, 1000 + (i + 1) * 20),
                )
    finally:
        conn.close()

    blind = verify(spec, recheck=False).table(f"{src}.acct")
    assert blind.different > 1  # rows in flight look different without the recheck

    report = verify(spec)
    acct = report.table(f"{src}.acct")
    assert report.recheck is not None and report.recheck.rounds >= 1
    assert acct.different_keys == keys(7) and acct.different == 1
    assert acct.missing == acct.extra == 0
    assert acct.converged > 0
