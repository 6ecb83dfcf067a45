"""DDL from an OceanBase source (``capture.schema_watch``): a task OceanBase ->
MariaDB keeps running while the source adds, drops and modifies columns, creates
a table (with rows written before its triggers exist) and drops one, with writes
going on throughout; both sides' columns and rows are then compared by SELECT."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from duosync.config import Endpoint
from duosync.core.events import RowChange, SchemaChange, Transaction
from duosync.endpoints.oceanbase import capture
from duosync.endpoints.oceanbase.capture.schema_watch import read_rows
from duosync.service.phases.inspection import inspect_endpoint
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.specfile import load_spec
from tests.helpers import admin_connection, query, run_sql

#: the server has no such table
ER_NO_SUCH_TABLE = 1146

pytestmark = pytest.mark.integration


@pytest.fixture
def consumers(oceanbase: Endpoint) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        capture.remove(oceanbase, name)


def _columns(endpoint: Endpoint, db: str) -> dict[str, list[tuple[str, str]]]:
    rows = query(
        endpoint,
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (db,),
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(str(table), []).append((str(column), str(dtype).lower()))
    return out


def _rows(endpoint: Endpoint, db: str, table: str) -> list[tuple[str, ...]]:
    got = query(endpoint, f"SELECT * FROM `{db}`.`{table}` ORDER BY id")
    return [tuple("" if v is None else str(v) for v in r) for r in got]


def _same(src: Endpoint, s: str, dst: Endpoint, d: str) -> bool:
    cols = _columns(src, s)
    if cols != _columns(dst, d):
        return False
    try:
        return all(_rows(src, s, t) == _rows(dst, d, t) for t in cols)
    except pymysql.err.ProgrammingError as exc:
        # a table dropped between the catalog read and the row read (the sync is
        # applying DROP TABLE, or a re-created table is not there yet): not yet equal
        if exc.args[0] == ER_NO_SUCH_TABLE:
            return False
        raise


class _Writer(threading.Thread):
    """Inserts and updates rows of ``t`` until stopped, setting ``c`` once it
    exists; writes the source refuses (the old triggers after DROP COLUMN) are
    retried later, as an application would."""

    def __init__(self, endpoint: Endpoint, db: str) -> None:
        super().__init__(daemon=True)
        self.conn = admin_connection(endpoint, db)
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        n = 1000
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                n += 1
                self._write(cur, n)
                time.sleep(0.01)
        self.conn.close()

    def _write(self, cur: Any, n: int) -> None:
        for sql, args in (
            ("INSERT INTO t (id, a, c) VALUES (%s, %s, %s)", (n, n, n * 10)),
            ("INSERT INTO t (id, a) VALUES (%s, %s)", (n, n)),
        ):
            try:
                cur.execute(sql, args)
                break
            except pymysql.err.MySQLError:
                continue
        try:
            cur.execute("UPDATE t SET a = a + 1 WHERE id = %s", (n - 7,))
            cur.execute("UPDATE t SET c = %s WHERE id = %s", (n, n - 3))
        except pymysql.err.MySQLError:
            pass
        self.written += 1


def _explain(src: Endpoint, s: str, dst: Endpoint, d: str, lines: list[str]) -> None:
    """What differs, for the failure report."""
    print("\n".join(lines[-200:]))
    print("source columns", _columns(src, s), "target columns", _columns(dst, d))
    for t in _columns(src, s):
        a, b = set(_rows(src, s, t)), set(_rows(dst, d, t) if t in _columns(dst, d) else [])
        print(t, "only on source", sorted(a - b)[:20], "only on target", sorted(b - a)[:20])


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.3)


def _consumer_installed(ob: Endpoint, name: str) -> bool:
    got = capture.status(ob)
    return got is not None and any(c.consumer == name for c in got.consumers)


def test_source_ddl_reaches_the_target_in_order_with_the_rows(
    tmp_path: Path,
    oceanbase: Endpoint,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    consumers: list[str],
) -> None:
    src, dst = fresh_database(oceanbase, "src"), fresh_database(mariadb1, "dst")
    run_sql(
        oceanbase,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(20))",
            "CREATE TABLE u (id INT PRIMARY KEY, v INT)",
            "INSERT INTO t VALUES (1, 1, 'one'), (2, 2, 'two'), (3, 3, 'three')",
            "INSERT INTO u VALUES (1, 1)",
        ],
        database=src,
    )
    path = tmp_path / "task.yaml"
    path.write_text(
        f"name: ob-ddl\nsource: oceanbase://root@{oceanbase.host}:{oceanbase.port}\n"
        f"target: mariadb://root@{mariadb1.host}:{mariadb1.port}\n"
        f"types: [schema, full, incremental]\nselect: {{databases: [{src}]}}\n"
        f"rename: {{databases: {{{src}: {dst}}}}}\n"
    )
    spec = load_spec(path)
    consumers.append(spec.name)
    stop = threading.Event()
    errors: list[BaseException] = []
    lines: list[str] = []

    def run() -> None:
        try:
            with MetadataStore.in_home(tmp_path / "home") as store:
                run_spec(spec, store, lines.append, stop)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    writer = _Writer(oceanbase, src)
    try:
        _wait(lambda: _consumer_installed(oceanbase, spec.name), 60, "capture installed")
        _wait(lambda: any("incremental:" in line for line in lines), 60, "incremental phase")
        writer.start()
        time.sleep(1.5)
        for ddl in (
            "ALTER TABLE t ADD COLUMN c INT DEFAULT 5",
            "ALTER TABLE t DROP COLUMN b",
            "ALTER TABLE t MODIFY COLUMN a BIGINT",
        ):
            run_sql(oceanbase, [ddl], database=src)
            time.sleep(2.5)
        run_sql(
            oceanbase,
            [
                "CREATE TABLE n (id INT PRIMARY KEY, w VARCHAR(10))",
                "INSERT INTO n VALUES (1, 'early'), (2, 'early')",  # before any trigger
                "DROP TABLE u",
            ],
            database=src,
        )
        time.sleep(3)
        run_sql(
            oceanbase,
            ["INSERT INTO n VALUES (3, 'late')", "UPDATE n SET w = 'x' WHERE id = 1"],
            database=src,
        )
        time.sleep(2)
        # Dropped and created again between two watches, with the same columns:
        # only the lost triggers tell, and the table starts over.
        run_sql(
            oceanbase,
            [
                "DROP TABLE n",
                "CREATE TABLE n (id INT PRIMARY KEY, w VARCHAR(10))",
                "INSERT INTO n VALUES (9, 'again')",
            ],
            database=src,
        )
        time.sleep(1)
        writer.stop.set()
        writer.join(10)
        try:
            # Not before the re-created table is there (while it is absent on both
            # sides, they are equal too).
            _wait(
                lambda: "n" in _columns(mariadb1, dst) and _same(oceanbase, src, mariadb1, dst),
                40,
                "target equals the source",
            )
        except AssertionError:
            _explain(oceanbase, src, mariadb1, dst, lines)
            raise
    finally:
        writer.stop.set()
        stop.set()
        worker.join(60)
    assert not errors, errors
    assert writer.written > 100
    target = _columns(mariadb1, dst)
    assert sorted(target) == ["n", "t"]
    assert target["t"] == [("id", "int"), ("a", "bigint"), ("c", "int")]
    assert _rows(mariadb1, dst, "n") == [("9", "again")]
    # Rows written while the old triggers still ran carry c (repaired by re-read).
    assert query(mariadb1, f"SELECT COUNT(*) FROM `{dst}`.t WHERE c IS NOT NULL AND c <> 5")[0][0]


def _read(
    stream: capture.TriggerLogStream, until: Callable[[list[Transaction]], bool]
) -> list[Transaction]:
    got: list[Transaction] = []
    stop = threading.Event()
    deadline = time.monotonic() + 40
    for item in stream.read(stop):
        if isinstance(item, Transaction):
            got.append(item)
        elif until(got):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"stream did not reach the expected state; read {got}")
    return got


def _ddl(txns: list[Transaction]) -> list[str]:
    return [c.ddl for t in txns for c in t.changes if isinstance(c, SchemaChange)]


def test_a_stream_restarted_before_the_ddl_yields_it_again(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    """The markers are in the log: a reader restarted at a position before a
    schema change (the target never took it) yields the DDL and the re-read rows
    again, and a reader started after it does not."""
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY, a INT)"], database=db)
    table = inspect_endpoint(oceanbase, [db]).database(db).table("t")
    consumers.append("obddl-restart")
    start = capture.install(oceanbase, "obddl-restart", [table])

    def mine(database: str, _table: str) -> bool:
        return database == db

    run_sql(oceanbase, ["INSERT INTO t VALUES (1, 1)"], database=db)
    with capture.TriggerLogStream(
        oceanbase, start, consumer="obddl-restart", tables=mine, watch_seconds=0.2
    ) as s:
        first = _read(s, lambda txns: len(txns) >= 1)
        run_sql(oceanbase, ["ALTER TABLE t ADD COLUMN c INT DEFAULT 7"], database=db)
        run_sql(oceanbase, ["INSERT INTO t VALUES (2, 2, 20)"], database=db)
        rest = _read(
            s,
            lambda txns: any(
                isinstance(c, RowChange) and c.after == (2, 2, 20) for t in txns for c in t.changes
            ),
        )
    alter = f"ALTER TABLE `{db}`.`t` ADD COLUMN `c` int NULL DEFAULT '7' AFTER `a`"
    assert _ddl(rest) == [alter]
    at_ddl = next(i for i, t in enumerate(rest) if _ddl([t]))
    # Restarted just before the DDL: it comes again, then rows with the new columns.
    with capture.TriggerLogStream(
        oceanbase,
        first[-1].position if at_ddl == 0 else rest[at_ddl - 1].position,
        consumer="obddl-restart",
        tables=mine,
    ) as s:
        again = _read(s, lambda txns: len(txns) >= len(rest) - at_ddl)
    assert _ddl(again) == [alter]
    rows = [c for t in again for c in t.changes if isinstance(c, RowChange)]
    assert all(c.columns == ("id", "a", "c") for c in rows)
    assert (2, 2, 20) in [c.after for c in rows]
    # Started after it: no DDL.
    with capture.TriggerLogStream(
        oceanbase, rest[at_ddl].position, consumer="obddl-restart", tables=mine
    ) as s:
        after = _read(s, lambda txns: len(txns) >= len(rest) - at_ddl - 1)
    assert _ddl(after) == []


def test_rows_read_back_as_of_a_commit_version(
    oceanbase: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """The re-read of ``schema_watch.read_rows``: as of a commit version (flashback),
    encoded like the triggers; a column dropped since reads as NULL."""
    db = fresh_database(oceanbase)
    run_sql(
        oceanbase,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, ts TIMESTAMP(3) NULL)",
            "INSERT INTO t VALUES (1, 1, '2024-01-02 03:04:05.678')",
        ],
        database=db,
    )
    scn = int(query(oceanbase, f"SELECT ORA_ROWSCN FROM `{db}`.t WHERE id = 1")[0][0])
    run_sql(
        oceanbase,
        ["UPDATE t SET a = 2 WHERE id = 1", "INSERT INTO t VALUES (2, 2, NULL)"],
        database=db,
    )
    columns = inspect_endpoint(oceanbase, [db]).database(db).table("t").columns
    conn = admin_connection(oceanbase)
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            at = read_rows(cur, (db, "t"), columns, "r.ORA_ROWSCN > %s", [0], scn)
            assert at == [(1, 1, "2024-01-02 03:04:05.678")]
            run_sql(oceanbase, ["ALTER TABLE t DROP COLUMN a"], database=db)
            now = read_rows(cur, (db, "t"), columns, "1 = 1", [], scn)
            assert sorted(now) == [(1, None, "2024-01-02 03:04:05.678"), (2, None, None)]
    finally:
        conn.close()


def test_a_reverse_task_notes_the_ddl_and_reads_nothing_back(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    """The stream of a two-way sync's reverse task (``ddl=False``) yields
    the DDL for its runner to note, and the rows exactly as the triggers wrote
    them: no row is read back (it would lose its transaction's loop marker)."""
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY, a INT)"], database=db)
    table = inspect_endpoint(oceanbase, [db]).database(db).table("t")
    name = "obddl.reverse"
    consumers.append(name)
    start = capture.install(oceanbase, name, [table])
    run_sql(oceanbase, ["INSERT INTO t VALUES (1, 1)"], database=db)

    def mine(database: str, _table: str) -> bool:
        return database == db

    with capture.TriggerLogStream(
        oceanbase, start, consumer=name, tables=mine, watch_seconds=0.2, ddl=False
    ) as s:
        run_sql(oceanbase, ["ALTER TABLE t ADD COLUMN c INT"], database=db)
        # Written by the old triggers or the new ones, depending on the moment.
        run_sql(oceanbase, ["INSERT INTO t VALUES (2, 2, 20)"], database=db)
        got = _read(s, lambda txns: bool(_ddl(txns)))
        run_sql(oceanbase, ["INSERT INTO t VALUES (3, 3, 30)"], database=db)
        got += _read(
            s,
            lambda txns: any(
                isinstance(c, RowChange) and c.after == (3, 3, 30) for t in txns for c in t.changes
            ),
        )
    assert _ddl(got) == [f"ALTER TABLE `{db}`.`t` ADD COLUMN `c` int NULL AFTER `a`"]
    rows = [c.after for t in got for c in t.changes if isinstance(c, RowChange)]
    assert rows[0] == (1, 1) and rows[-1] == (3, 3, 30)
    assert len(rows) == 3 and rows[1] in ((2, 2), (2, 2, 20))  # nothing read back
