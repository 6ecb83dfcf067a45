"""BinlogStream against a real MariaDB binlog: values, transactions, positions, errors.

Decoded values are compared with what the server itself returns for the same row,
read in a UTC session and rendered to the conventions of ``duosync.core.events``.
Tests take their start position right before their own statements; one test purges
mariadb1's old binlogs, so no test may keep a position across tests.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pymysql
import pytest

from duosync.config import Endpoint
from duosync.core.events import Fragment, Heartbeat, Op, RowChange, SchemaChange, Transaction
from duosync.core.positions import BinlogPosition
from duosync.endpoints.mysql.binlog import BinlogStream
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.position import current_position
from duosync.errors import FatalError, RetriableError
from tests.helpers import admin_connection, query, run_sql

pytestmark = pytest.mark.integration

Item = Transaction | Heartbeat
# Each stream its own replica id: a second dump with the same id kicks the first.
_SERVER_IDS = itertools.count(7001)


def position_now(endpoint: Endpoint) -> BinlogPosition:
    conn = admin_connection(endpoint)
    try:
        return current_position(conn, "mariadb")
    finally:
        conn.close()


def stream_items(
    endpoint: Endpoint,
    start: BinlogPosition,
    until: BinlogPosition,
    **options: Any,
) -> list[Item]:
    """Everything the stream yields from *start* up to the first item at or past
    *until*. A watchdog stops a stream that would hang, and the test then fails."""
    stop = threading.Event()
    watchdog = threading.Timer(60, stop.set)
    watchdog.start()
    items: list[Item] = []
    try:
        with BinlogStream(endpoint, start, server_id=next(_SERVER_IDS), **options) as stream:
            for item in stream.read(stop):
                items.append(item)
                if not item.position < until:
                    break
    finally:
        watchdog.cancel()
    assert not stop.is_set(), f"stream did not reach {until}; got {items}"
    return items


def transactions(items: Sequence[Item]) -> list[Transaction]:
    return [i for i in items if isinstance(i, Transaction)]


def capture(
    endpoint: Endpoint, database: str, statements: Sequence[str], **options: Any
) -> list[Item]:
    start = position_now(endpoint)
    run_sql(endpoint, list(statements), database)
    return stream_items(endpoint, start, position_now(endpoint), **options)


# -- every column type ----------------------------------------------------------------------

# (column, type, kind): how the server's value is read and rendered for comparison
#   int    CAST(col AS CHAR) -> int (BIT and YEAR through col + 0)
#   text   CAST(col AS CHAR): DECIMAL, temporal, ENUM, SET
#   f32    the server prints FLOAT with 6 digits: compare after rounding to float32
#   f64    CAST(col AS CHAR) -> float
#   raw    the column as the driver returns it: str for text, bytes for binary
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ti", "TINYINT", "int"),
    ("tu", "TINYINT UNSIGNED", "int"),
    ("si", "SMALLINT", "int"),
    ("su", "SMALLINT UNSIGNED", "int"),
    ("mi", "MEDIUMINT", "int"),
    ("mu", "MEDIUMINT UNSIGNED", "int"),
    ("i", "INT", "int"),
    ("iu", "INT UNSIGNED", "int"),
    ("bi", "BIGINT", "int"),
    ("bu", "BIGINT UNSIGNED", "int"),
    ("d65", "DECIMAL(65,30)", "text"),
    ("d52", "DECIMAL(5,2)", "text"),
    ("d10", "DECIMAL(10,0) UNSIGNED", "text"),
    ("d18", "DECIMAL(20,18)", "text"),
    ("f", "FLOAT", "f32"),
    ("dbl", "DOUBLE", "f64"),
    ("b1", "BIT(1)", "int"),
    ("b10", "BIT(10)", "int"),
    ("b64", "BIT(64)", "int"),
    ("y", "YEAR", "int"),
    ("dt", "DATE", "text"),
    ("t0", "TIME", "text"),
    ("t3", "TIME(3)", "text"),
    ("t6", "TIME(6)", "text"),
    ("dtm0", "DATETIME", "text"),
    ("dtm2", "DATETIME(2)", "text"),
    ("dtm6", "DATETIME(6)", "text"),
    ("ts0", "TIMESTAMP NULL", "text"),
    ("ts6", "TIMESTAMP(6) NULL", "text"),
    ("e", "ENUM('a','b c','ü')", "text"),
    ("s", "SET('x','y','z')", "text"),
    ("c10", "CHAR(10)", "raw"),
    ("vc", "VARCHAR(300)", "raw"),
    ("vl", "VARCHAR(20) CHARACTER SET latin1", "raw"),
    ("cl", "CHAR(5) CHARACTER SET latin1", "raw"),
    ("bn", "BINARY(4)", "raw"),
    ("vb", "VARBINARY(10)", "raw"),
    ("tt", "TINYTEXT", "raw"),
    ("tx", "TEXT", "raw"),
    ("mt", "MEDIUMTEXT", "raw"),
    ("lt", "LONGTEXT", "raw"),
    ("tb", "TINYBLOB", "raw"),
    ("bl", "BLOB", "raw"),
    ("mb", "MEDIUMBLOB", "raw"),
    ("lb", "LONGBLOB", "raw"),
    ("js", "JSON", "raw"),
    ("g", "GEOMETRY", "raw"),
    ("pt", "POINT", "raw"),
    ("t1", "TIME(1)", "text"),
    ("ts2", "TIMESTAMP(2) NULL", "text"),
    ("d9", "DECIMAL(9,9)", "text"),
)

# Literal rows, one value per column of COLUMNS (after the id). Extremes, signs,
# zero dates, fractions, 4-byte UTF-8, latin1, zero bytes, '' next to NULL.
ROWS = (
    "1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, "
    "9223372036854775807, 18446744073709551615, "
    "'99999999999999999999999999999999999.999999999999999999999999999999', 999.99, "
    "9999999999, 99.999999999999999999, 1e38, 1.7976931348623157e308, "
    "b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111', "
    "2155, '9999-12-31', '838:59:59', '838:59:59.999', '838:59:59.000000', "
    "'9999-12-31 23:59:59', '9999-12-31 23:59:59.99', '9999-12-31 23:59:59.999999', "
    "'2038-01-19 03:14:07', '2038-01-19 03:14:07.999999', 'ü', 'x,z', "
    "'abc', 'Grüße 😀 𝄞 中文', 'café ÿ €', 'Ä€', x'01', x'00ff00', "
    "'tiny', 'text 😀', 'medium', 'long', x'00', x'000102000304', x'ff00', x'00000000', "
    '\'{"a": [1, 2.5, "x"], "u": "ü😀"}\', ST_GeomFromText(\'POINT(1 2)\'), POINT(-1.5, 2.25), '
    "'-838:59:58.9', '2001-01-01 00:00:00.01', 0.999999999",
    "2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, "
    "'-99999999999999999999999999999999999.999999999999999999999999999999', -999.99, 0, "
    "-0.000000000000000001, -1e38, -2.2250738585072014e-308, "
    "b'0', b'0', b'0', 1901, '0000-00-00', '-838:59:59', '-00:00:00.001', "
    "'-838:59:59.000000', '0000-00-00 00:00:00', '1000-01-01 00:00:00.01', "
    "'1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '0000-00-00 00:00:00.000000', "
    "'a', '', '', '', '', '', x'', x'', '', '', '', '', x'', x'', x'', x'', "
    "'[]', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'), POINT(0, 0), "
    "'-00:00:00.1', '1970-01-01 00:00:01.99', -0.999999999",
    "3, " + ", ".join(["NULL"] * len(COLUMNS)),
    "4, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, "
    "'-0.000000000000000000000000000001', -0.01, 1, 0.5, 1.5, -0.1, "
    "b'1', b'0000000001', b'1000000000000000000000000000000000000000000000000000000000000000', "
    "0, '2024-02-29', '-00:00:01', '-12:30:00.250', '-00:00:01.500000', "
    "'2024-02-29 12:34:56', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.000001', "
    "'2024-02-29 12:34:56', '2024-02-29 12:34:56.123456', 'b c', 'x,y,z', "
    "'  a  ', 'trailing  ', 'x', 'y ', x'00000001', x'00', "
    "' ', 'multi\nline\ttab', '', 'quote '' \\\\ back', x'ff', x'00', x'', x'01', "
    "'\"s\"', ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'), POINT(1e300, -1e-300), "
    "'00:00:00.5', '2024-02-29 12:34:56.5', 0.000000001",
)


def _f32(x: float) -> float:
    value: float = struct.unpack("<f", struct.pack("<f", x))[0]
    return value


def _expr(column: str, kind: str) -> str:
    q = quote_ident(column)
    if kind == "raw":
        return q
    if column in ("b1", "b10", "b64", "y"):
        return f"CAST({q} + 0 AS CHAR)"
    return f"CAST({q} AS CHAR)"


def _render(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "f32":
        return _f32(float(value))
    if kind == "f64":
        return float(value)
    return value


def server_rows(endpoint: Endpoint, database: str, table: str) -> dict[int, tuple[Any, ...]]:
    """The server's own rendering of every row, keyed by id, in COLUMNS order."""
    exprs = ", ".join(_expr(c, k) for c, _, k in COLUMNS)
    rows = query(
        endpoint, f"SELECT id, {exprs} FROM {qualified(database, table)} ORDER BY id", None
    )
    return {
        int(r[0]): (
            int(r[0]),
            *(_render(v, k) for v, (_, _, k) in zip(r[1:], COLUMNS, strict=True)),
        )
        for r in rows
    }


def decoded(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """Our row rendered like server_rows (only FLOAT needs it: compare as float32)."""
    assert row is not None
    kinds = ["int"] + [k for _, _, k in COLUMNS]
    return tuple(
        _f32(v) if k == "f32" and v is not None else v for v, k in zip(row, kinds, strict=True)
    )


def test_every_column_type_round_trips_through_insert_update_delete(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t, _ in COLUMNS)
    run_sql(
        mariadb1,
        [f"CREATE TABLE t (id INT NOT NULL PRIMARY KEY, {cols}) DEFAULT CHARSET=utf8mb4"],
        db,
    )
    conn = admin_connection(mariadb1, db)
    try:
        with conn.cursor() as cur:
            # zero dates and the like are what old data holds; allow them here
            cur.execute("SET SESSION sql_mode = ''")
            start = current_position(conn, "mariadb")
            cur.execute("INSERT INTO t VALUES " + ", ".join(f"({r})" for r in ROWS))
            inserted = server_rows(mariadb1, db, "t")
            cur.execute(
                "UPDATE t SET i = i DIV 2, vc = CONCAT(vc, '✓'), dtm6 = '2001-02-03 04:05:06.7', "
                "bl = NULL, e = 'a', ts6 = NULL WHERE id <> 3"
            )
            updated = server_rows(mariadb1, db, "t")
            cur.execute("DELETE FROM t")
            end = current_position(conn, "mariadb")
    finally:
        conn.close()
    assert len(inserted) == len(ROWS)

    txs = transactions(stream_items(mariadb1, start, end))
    assert [[getattr(c, "op", None) for c in tx.changes] for tx in txs] == [
        [Op.INSERT] * 4,
        [Op.UPDATE] * 3,
        [Op.DELETE] * 4,
    ]
    names = ("id", *(c for c, _, _ in COLUMNS))
    for tx in txs:
        for change in tx.changes:
            assert isinstance(change, RowChange)
            assert (change.database, change.table, change.columns) == (db, "t", names)
    insert, update, delete = txs
    for change in insert.changes:
        assert isinstance(change, RowChange) and change.after is not None
        assert decoded(change.after) == inserted[change.after[0]]
    for change in update.changes:
        assert isinstance(change, RowChange) and change.before is not None
        assert decoded(change.before) == inserted[change.before[0]]
        assert decoded(change.after) == updated[change.before[0]]
    for change in delete.changes:
        assert isinstance(change, RowChange) and change.before is not None
        assert change.after is None
        assert decoded(change.before) == updated[change.before[0]]
    # a few values spelled out, so a shared mistake on both sides cannot hide
    first = insert.changes[0]
    assert isinstance(first, RowChange) and first.after is not None
    values = dict(zip(names, first.after, strict=True))
    assert values["bu"] == 18446744073709551615
    assert values["b64"] == 2**64 - 1
    assert values["t6"] == "838:59:59.000000"
    assert values["vc"] == "Grüße 😀 𝄞 中文"
    assert values["bl"] == b"\x00\x01\x02\x00\x03\x04"
    assert isinstance(values["dbl"], float)
    second = insert.changes[1]
    assert isinstance(second, RowChange) and second.after is not None
    values = dict(zip(names, second.after, strict=True))
    assert values["dt"] == "0000-00-00"
    assert values["t3"] == "-00:00:00.001"
    assert values["ts6"] == "0000-00-00 00:00:00.000000"
    assert values["vc"] == "" and values["vb"] == b""
    nulls = insert.changes[2]
    assert isinstance(nulls, RowChange) and nulls.after is not None
    assert nulls.after[1:] == (None,) * len(COLUMNS)


def test_partial_row_images_decode_their_columns_or_stop_clearly(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, ["CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(5))"], db)
    conn = admin_connection(mariadb1, db)
    try:
        with conn.cursor() as cur:
            # binlog_row_image is a session setting: any client may log partial images
            cur.execute("SET SESSION binlog_row_image = 'MINIMAL'")
            start = current_position(conn, "mariadb")
            cur.execute("INSERT INTO t (id, b) VALUES (1, 'x')")
            cur.execute("DELETE FROM t WHERE id = 1")
            middle = current_position(conn, "mariadb")
            cur.execute("INSERT INTO t (id, b) VALUES (2, 'y')")
            cur.execute("UPDATE t SET a = 5 WHERE id = 2")
            end = current_position(conn, "mariadb")
    finally:
        conn.close()
    insert, delete = transactions(stream_items(mariadb1, start, middle))
    (row,) = insert.changes
    assert isinstance(row, RowChange)
    # a MINIMAL insert image has only the columns the statement gave
    assert (row.columns, row.after) == (("id", "b"), (1, "x"))
    (gone,) = delete.changes
    assert isinstance(gone, RowChange)
    assert (gone.columns, gone.before) == (("id",), (1,))  # the primary key only
    # an update whose two images have different columns cannot be one RowChange
    with pytest.raises(FatalError, match="binlog_row_image=FULL") as info:
        stream_items(mariadb1, middle, end)
    assert info.value.table == f"{db}.t"


# -- transactions, DDL and positions ------------------------------------------------------------


def test_multi_statement_transaction_is_one_transaction_in_order(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(
        mariadb1,
        ["CREATE TABLE a (id INT PRIMARY KEY, v INT)", "CREATE TABLE b (id INT PRIMARY KEY)"],
        db,
    )
    items = capture(
        mariadb1,
        db,
        [
            "BEGIN",
            "INSERT INTO a VALUES (1, 10), (2, 20)",
            "INSERT INTO b VALUES (7)",
            "UPDATE a SET v = v + 1 WHERE id = 2",
            "DELETE FROM a WHERE id = 1",
            "COMMIT",
        ],
    )
    end = position_now(mariadb1)
    gtid_pos = query(mariadb1, "SELECT @@gtid_binlog_pos")[0][0]
    (tx,) = items
    assert isinstance(tx, Transaction)
    changes = [(c.op, c.table, c.before, c.after) for c in tx.changes if isinstance(c, RowChange)]
    assert changes == [
        (Op.INSERT, "a", None, (1, 10)),
        (Op.INSERT, "a", None, (2, 20)),
        (Op.INSERT, "b", None, (7,)),
        (Op.UPDATE, "a", (2, 20), (2, 21)),
        (Op.DELETE, "a", (1, 10), None),
    ]
    # the position is the end of the commit event: where the binlog ends now
    assert (tx.position.file, tx.position.offset) == (end.file, end.offset)
    assert tx.position.gtid == gtid_pos
    assert tx.id == gtid_pos  # one domain (1), server 1: "1-1-N"
    assert tx.origin == 1
    assert abs(tx.commit_ts - time.time()) < 3600


def test_ddl_is_a_schema_change_with_its_database(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    items = capture(
        mariadb1,
        db,
        [
            "CREATE TABLE t (id INT PRIMARY KEY)",
            "ALTER TABLE t ADD COLUMN note VARCHAR(10)",
            "INSERT INTO t VALUES (1, 'x')",
        ],
    )
    txs = transactions(items)
    assert [tx.changes for tx in txs[:2]] == [
        (SchemaChange(db, "CREATE TABLE t (id INT PRIMARY KEY)"),),
        (SchemaChange(db, "ALTER TABLE t ADD COLUMN note VARCHAR(10)"),),
    ]
    # the row after the ALTER is decoded with the new column
    (row,) = txs[2].changes
    assert isinstance(row, RowChange)
    assert (row.columns, row.after) == (("id", "note"), (1, "x"))


def test_create_select_and_non_transactional_tables(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(
        mariadb1, ["CREATE TABLE src (id INT PRIMARY KEY)", "INSERT INTO src VALUES (1), (2)"], db
    )
    items = capture(
        mariadb1,
        db,
        [
            "CREATE TABLE copy ENGINE=InnoDB SELECT id FROM src",
            "CREATE TABLE aria (id INT) ENGINE=Aria",
            "INSERT INTO aria VALUES (5)",
        ],
    )
    create_select, create_aria, insert_aria = transactions(items)
    # MariaDB logs CREATE ... SELECT as one transaction: the CREATE, then its rows
    ddl, *rows = create_select.changes
    assert isinstance(ddl, SchemaChange) and ddl.ddl.startswith("CREATE TABLE")
    assert [(r.table, r.after) for r in rows if isinstance(r, RowChange)] == [
        ("copy", (1,)),
        ("copy", (2,)),
    ]
    assert isinstance(create_aria.changes[0], SchemaChange)
    # a non-transactional engine ends its group with a COMMIT query, not an XID
    (row,) = insert_aria.changes
    assert isinstance(row, RowChange) and row.after == (5,)


def test_resuming_from_a_transaction_position_yields_exactly_the_next(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, ["CREATE TABLE t (id INT PRIMARY KEY)"], db)
    items = capture(mariadb1, db, [f"INSERT INTO t VALUES ({i})" for i in range(1, 4)])
    first, second, third = transactions(items)
    end = third.position
    assert transactions(stream_items(mariadb1, first.position, end)) == [second, third]
    assert transactions(stream_items(mariadb1, second.position, end)) == [third]
    # the position's GTID is informational: a position without one resumes the same
    bare = BinlogPosition(file=first.position.file, offset=first.position.offset)
    assert [tx.id for tx in transactions(stream_items(mariadb1, bare, end))] == [
        second.id,
        third.id,
    ]
    assert [tx.position.gtid for tx in transactions(stream_items(mariadb1, bare, end))] == [
        second.position.gtid,
        third.position.gtid,
    ]


def test_transactions_continue_across_a_binlog_rotation(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, ["CREATE TABLE t (id INT PRIMARY KEY)"], db)
    items = capture(
        mariadb1,
        db,
        ["INSERT INTO t VALUES (1)", "FLUSH BINARY LOGS", "INSERT INTO t VALUES (2)"],
    )
    before, after = transactions(items)
    assert after.position.file != before.position.file
    assert before.position < after.position
    # resuming at the last position of the old file crosses into the new one
    assert transactions(stream_items(mariadb1, before.position, after.position)) == [after]


def test_position_in_a_purged_binlog_is_fatal_with_a_hint(mariadb1: Endpoint) -> None:
    old = position_now(mariadb1)
    run_sql(mariadb1, ["FLUSH BINARY LOGS"])
    newest = position_now(mariadb1).file
    # A dump thread that has not noticed its client left may still hold an old
    # file open, which makes PURGE keep it: retry until the file is gone.
    for _ in range(50):
        with contextlib.suppress(pymysql.err.OperationalError):  # "log in use"
            run_sql(mariadb1, [f"PURGE BINARY LOGS TO '{newest}'"])
        if old.file not in {r[0] for r in query(mariadb1, "SHOW BINARY LOGS")}:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{old.file} was not purged")
    with pytest.raises(FatalError) as info:
        stream_items(mariadb1, old, position_now(mariadb1))
    text = str(info.value)
    assert f"{old.file}:{old.offset}" in text
    assert "purged" in text
    assert "run the task's full migration again" in text
    assert info.value.endpoint == mariadb1.display


def test_compressed_binlog_events_stop_the_stream(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, ["CREATE TABLE t (id INT PRIMARY KEY, v TEXT)"], db)
    start = position_now(mariadb1)
    # log_bin_compress is global: on for this one statement only
    run_sql(mariadb1, ["SET GLOBAL log_bin_compress = ON"])
    try:
        run_sql(mariadb1, ["INSERT INTO t VALUES (1, REPEAT('x', 2000))"], db)
    finally:
        run_sql(mariadb1, ["SET GLOBAL log_bin_compress = OFF"])
    with pytest.raises(FatalError, match="compressed event") as info:
        stream_items(mariadb1, start, position_now(mariadb1))
    assert info.value.position is not None and start.file in info.value.position


def test_position_past_the_end_of_a_binlog_is_fatal(mariadb1: Endpoint) -> None:
    now = position_now(mariadb1)
    bogus = BinlogPosition(file=now.file, offset=now.offset + 10_000_000)
    with pytest.raises(FatalError, match="purged or the position is invalid"):
        stream_items(mariadb1, bogus, bogus)


# -- filter, heartbeats, stop ----------------------------------------------------------------


def test_table_filter_skips_other_tables_without_decoding_them(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    # A COMPRESSED column is a type the decoder refuses: reading that table's rows
    # would raise, so the filtered run proves its rows were never decoded.
    run_sql(
        mariadb1,
        [
            "CREATE TABLE keep (id INT PRIMARY KEY)",
            "CREATE TABLE other (id INT PRIMARY KEY, z VARCHAR(100) COMPRESSED)",
        ],
        db,
    )
    start = position_now(mariadb1)
    run_sql(
        mariadb1,
        [
            "INSERT INTO other VALUES (1, 'zzz')",
            "BEGIN",
            "INSERT INTO keep VALUES (1)",
            "INSERT INTO other VALUES (2, 'zzz')",
            "COMMIT",
        ],
        db,
    )
    end = position_now(mariadb1)
    items = stream_items(mariadb1, start, end, tables=lambda d, t: d == db and t == "keep")
    only_other, both = items
    assert isinstance(only_other, Heartbeat)  # empty after filtering: still a position
    assert only_other.position < both.position
    assert isinstance(both, Transaction)
    assert [(c.table, c.after) for c in both.changes if isinstance(c, RowChange)] == [
        ("keep", (1,))
    ]
    assert both.position.offset == end.offset
    # unfiltered, the compressed column is refused with a clear error
    with pytest.raises(FatalError, match="column z") as info:
        stream_items(mariadb1, start, end)
    assert info.value.table == f"{db}.other"
    assert info.value.position is not None


def _read_in_thread(
    stream: BinlogStream, stop: threading.Event
) -> tuple[threading.Thread, list[Item], list[BaseException]]:
    items: list[Item] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for item in stream.read(stop):
                items.append(item)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, items, errors


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_idle_stream_yields_heartbeats_and_stops_when_asked(mariadb1: Endpoint) -> None:
    start = position_now(mariadb1)
    stop = threading.Event()
    with BinlogStream(
        mariadb1, start, server_id=next(_SERVER_IDS), heartbeat_seconds=0.2
    ) as stream:
        thread, items, errors = _read_in_thread(stream, stop)
        _wait_for(lambda: len(items) >= 3 or bool(errors))
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "read() did not return after stop was set"
    assert not errors
    assert all(isinstance(i, Heartbeat) for i in items)
    assert {(i.position.file, i.position.offset) for i in items} == {(start.file, start.offset)}


def test_stop_ends_read_while_transactions_flow(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, ["CREATE TABLE t (id INT PRIMARY KEY)"], db)
    start = position_now(mariadb1)
    run_sql(mariadb1, [f"INSERT INTO t VALUES ({i})" for i in range(50)], db)
    stop = threading.Event()
    with BinlogStream(mariadb1, start, server_id=next(_SERVER_IDS)) as stream:
        seen = 0
        for item in stream.read(stop):
            seen += isinstance(item, Transaction)
            if seen == 10:
                stop.set()
        # resuming continues right after the last transaction yielded
        assert stream.position == item.position
        resumed = next(iter(stream.read(threading.Event())))
    assert seen == 10
    assert isinstance(resumed, Transaction)
    (row,) = resumed.changes
    assert isinstance(row, RowChange) and row.after == (10,)


# -- cross-check with python-mysql-replication --------------------------------------------------


def _peer_rows(endpoint: Endpoint, start: BinlogPosition, database: str) -> list[Any]:
    from pymysqlreplication import BinLogStreamReader  # type: ignore[import-untyped]
    from pymysqlreplication.row_event import WriteRowsEvent  # type: ignore[import-untyped]

    reader = BinLogStreamReader(
        connection_settings={
            "host": endpoint.host,
            "port": endpoint.port,
            "user": endpoint.user,
            "password": endpoint.resolved_password() or "",
        },
        server_id=next(_SERVER_IDS),
        log_file=start.file,
        log_pos=start.offset,
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent],
        only_schemas=[database],
        enable_logging=False,
    )
    try:
        return [row["values"] for event in reader for row in event.rows]
    finally:
        reader.close()


def _peer_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


@pytest.mark.filterwarnings("ignore:'db' is deprecated:DeprecationWarning")
def test_values_agree_with_python_mysql_replication(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, u BIGINT UNSIGNED, s SMALLINT, "
            "d DECIMAL(20,6), dbl DOUBLE, v VARCHAR(40), b BLOB, e ENUM('p','q')) "
            "DEFAULT CHARSET=utf8mb4"
        ],
        db,
    )
    start = position_now(mariadb1)
    run_sql(
        mariadb1,
        [
            "INSERT INTO t VALUES (1, 18446744073709551615, -32768, -12345678901234.5, "
            "-0.5, 'Grüße 😀', x'00ff', 'q'), (2, 0, 7, 0.000001, 1e300, '', x'0000', 'p'), "
            "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ],
        db,
    )
    ours = transactions(stream_items(mariadb1, start, position_now(mariadb1)))
    ours_rows = [c.after for tx in ours for c in tx.changes if isinstance(c, RowChange)]
    peer_rows = [
        tuple(_peer_value(v) for v in row.values()) for row in _peer_rows(mariadb1, start, db)
    ]
    assert ours_rows == peer_rows
    assert len(ours_rows) == 3


def test_unreachable_server_is_retriable() -> None:
    """A server that does not answer is a passing condition, not a fatal one."""
    closed = Endpoint.from_url("mariadb://root@127.0.0.1:1", connect_timeout=2)
    with (
        pytest.raises(RetriableError),
        BinlogStream(
            closed, BinlogPosition(file="binlog.000001", offset=4), server_id=next(_SERVER_IDS)
        ) as stream,
    ):
        list(stream.read(threading.Event()))


# -- fragments of large transactions ------------------------------------------------------


def _fragmented_items(
    endpoint: Endpoint, start: BinlogPosition, until: BinlogPosition, fragment_rows: int | None
) -> list[Item | Fragment]:
    stop = threading.Event()
    watchdog = threading.Timer(60, stop.set)
    watchdog.start()
    items: list[Item | Fragment] = []
    try:
        with BinlogStream(
            endpoint, start, server_id=next(_SERVER_IDS), fragment_rows=fragment_rows
        ) as stream:
            for item in stream.read(stop):
                items.append(item)
                if not isinstance(item, Fragment) and not item.position < until:
                    break
    finally:
        watchdog.cancel()
    assert not stop.is_set(), f"stream did not reach {until}"
    return items


def test_a_large_transaction_comes_in_fragments(
    mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """With a fragment size, a transaction's rows come first as fragments (each
    at least that many rows, as whole rows events), then the transaction with the
    rest: the same rows in the same order as read whole. A transaction with DDL
    (CREATE ... SELECT) is never fragmented, nor is a small one."""
    db = fresh_database(mariadb1, "frag")
    run_sql(mariadb1, ["CREATE TABLE t (id INT PRIMARY KEY, v INT)"], db)
    start = position_now(mariadb1)
    run_sql(
        mariadb1,
        [
            "BEGIN",
            "INSERT INTO t SELECT seq, seq FROM seq_1_to_1050",
            "UPDATE t SET v = v + 1 WHERE id <= 300",
            "COMMIT",
            "INSERT INTO t VALUES (5000, 1)",
            "CREATE TABLE c AS SELECT * FROM t",
        ],
        db,
    )
    until = position_now(mariadb1)
    whole = transactions(
        [i for i in _fragmented_items(mariadb1, start, until, None) if not isinstance(i, Fragment)]
    )
    got = _fragmented_items(mariadb1, start, until, 100)
    fragments = [i for i in got if isinstance(i, Fragment)]
    assert len(fragments) >= 2
    assert all(len(f.changes) >= 100 for f in fragments)
    assert {f.id for f in fragments} == {whole[0].id}
    assert {f.follows for f in fragments} == {start}
    done = transactions([i for i in got if not isinstance(i, Fragment)])
    assert [t.position for t in done] == [t.position for t in whole]
    big = done[0]
    assert big.fragments == len(fragments)
    assert [*(c for f in fragments for c in f.changes), *big.changes] == list(whole[0].changes)
    assert len(whole[0].changes) == 1350
    assert done[1:] == whole[1:] and all(t.fragments == 0 for t in done[1:])
    assert isinstance(done[2].changes[0], SchemaChange) and len(done[2].changes) == 1052
