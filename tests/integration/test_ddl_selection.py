"""``options.ddl``: the kinds of schema change incremental sync carries, MariaDB ->
MariaDB. A statement of a kind not chosen leaves the target as it is, is noted,
and the rows that follow keep flowing onto the target's tables as they are."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.errors import DuosyncError
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.spec import TaskSpec
from duosync.specfile import parse_spec
from tests.helpers import checkpoint_rows, covering_keys, query, run_sql

pytestmark = pytest.mark.integration


def _spec(
    source: Endpoint, target: Endpoint, src: str, dst: str, ddl: Any, **options: Any
) -> TaskSpec:
    name = f"ddl-sel-{time.time_ns()}"  # the target's oms checkpoints outlive a test run
    return parse_spec(
        {
            "name": name,
            "source": f"mariadb://root@{source.host}:{source.port}",
            "target": f"mariadb://root@{target.host}:{target.port}",
            "types": ["schema", "full", "incremental"],
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            "options": {"ddl": ddl, "write_concurrency": 2, **options},
        },
        name,
    )


class Sync:
    """A task run (schema, full, incremental) in a thread, and what it said."""

    def __init__(self, spec: TaskSpec, home: Path) -> None:
        self.spec = spec
        self.lines: list[str] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(home,), daemon=True)
        self.thread.start()
        _wait_for(lambda: checkpoint_rows(spec.target, spec.name) == 2, self)

    def _run(self, home: Path) -> None:
        try:
            with MetadataStore.in_home(home) as store:
                run_spec(self.spec, store, self.lines.append, self.stop)
        except BaseException as exc:
            self.errors.append(exc)

    def notes(self, word: str = "DDL not applied") -> list[str]:
        return [line for line in self.lines if word in line]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        run_sql(
            self.spec.target,
            [f"DELETE FROM oms.duosync_checkpoint WHERE task = '{self.spec.name}'"],
        )


@pytest.fixture
def syncing(tmp_path: Path) -> Iterator[Callable[[TaskSpec], Sync]]:
    runs: list[Sync] = []

    def start(spec: TaskSpec) -> Sync:
        runs.append(Sync(spec, tmp_path / "home"))
        return runs[-1]

    yield start
    for run in runs:
        run.close()
    assert not [e for run in runs for e in run.errors]


def _wait_for(check: Callable[[], bool], run: Sync, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if run.errors:
            raise run.errors[0]
        if time.monotonic() > deadline:
            raise AssertionError("timed out:\n" + "\n".join(run.lines[-20:]))
        time.sleep(0.1)


def _sentinel(run: Sync, source: Endpoint, src: str, target: Endpoint, dst: str) -> None:
    """Write rows on the source in one transaction, reaching every partition
    (``covering_keys``), and wait for them all on the target: everything the source
    did before them (DDL included) has then been applied or skipped."""
    keys = covering_keys((dst, "marks"), time.time_ns())
    listed = ", ".join(map(str, keys))
    run_sql(source, [f"INSERT INTO marks VALUES {', '.join(f'({k})' for k in keys)}"], src)
    sql = f"SELECT COUNT(*) FROM marks WHERE id IN ({listed})"
    _wait_for(lambda: int(query(target, sql, database=dst)[0][0]) == len(keys), run)


def _columns(endpoint: Endpoint, db: str, table: str) -> list[str]:
    rows = query(
        endpoint,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    return [str(r[0]) for r in rows]


def _tables(endpoint: Endpoint, db: str) -> set[str]:
    rows = query(
        endpoint, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,)
    )
    return {str(r[0]) for r in rows}


def _rows(endpoint: Endpoint, db: str, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in query(endpoint, sql, database=db)]


def _source(endpoint: Endpoint, db: str) -> None:
    run_sql(
        endpoint,
        [
            "CREATE TABLE marks (id BIGINT PRIMARY KEY)",
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10),"
            " gone VARCHAR(10) NULL, dflt VARCHAR(10) NOT NULL DEFAULT 'd')",
            "INSERT INTO t VALUES (1, 'a', 'g1', 'x1'), (2, 'b', 'g2', 'x2')",
            "CREATE TABLE other (id INT PRIMARY KEY)",
            "INSERT INTO other VALUES (1), (2)",
        ],
        database=db,
    )


def test_only_alter_carries_add_column_but_not_create_or_drop(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    syncing: Callable[[TaskSpec], Sync],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _source(mariadb1, src)
    spec = _spec(mariadb1, mariadb2, src, dst, ["alter"])
    run = syncing(spec)
    run_sql(
        mariadb1,
        [
            "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 5",
            "INSERT INTO t (id, v, c) VALUES (3, 'c', 30)",
            "UPDATE t SET c = 10 WHERE id = 1",
            # create: not carried, so neither are the new table's rows
            "CREATE TABLE fresh (id INT PRIMARY KEY, w INT)",
            "INSERT INTO fresh VALUES (1, 1)",
            "CREATE INDEX v_idx ON t (v)",
            # drop: not carried, the target keeps the table and its rows
            "DROP TABLE other",
        ],
        database=src,
    )
    _sentinel(run, mariadb1, src, mariadb2, dst)
    assert _columns(mariadb2, dst, "t") == ["id", "v", "gone", "dflt", "c"]
    assert _rows(mariadb2, dst, "SELECT id, v, c FROM t ORDER BY id") == [
        (1, "a", 10),
        (2, "b", 5),
        (3, "c", 30),
    ]
    assert _tables(mariadb2, dst) == {"marks", "t", "other"}
    assert _rows(mariadb2, dst, "SELECT id FROM other ORDER BY id") == [(1,), (2,)]
    indexes = query(
        mariadb2,
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
        " AND INDEX_NAME = 'v_idx'",
        (dst,),
    )
    assert indexes == [(0,)]
    notes = run.notes()
    assert len(notes) == 3, run.lines
    assert f"create of {src}.fresh; options.ddl carries alter" in notes[0]
    assert f"create of {src}.t;" in notes[1] and "CREATE INDEX v_idx" in notes[1]
    assert f"drop of {src}.other;" in notes[2] and "DROP TABLE" in notes[2]
    assert any("applied DDL: ALTER TABLE" in line for line in run.lines)


def test_ddl_false_carries_nothing_while_rows_keep_flowing(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    syncing: Callable[[TaskSpec], Sync],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _source(mariadb1, src)
    spec = _spec(mariadb1, mariadb2, src, dst, False)
    assert spec.options.ddl == ()
    run = syncing(spec)
    run_sql(
        mariadb1,
        [
            # a new column the target never gets: rows are written without it
            "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 5",
            "INSERT INTO t (id, v, c) VALUES (3, 'c', 30)",
            # dropped on the source only: rows written since take the target's default
            "ALTER TABLE t DROP COLUMN gone, DROP COLUMN dflt",
            "INSERT INTO t (id, v) VALUES (4, 'd')",
            "UPDATE t SET v = 'aa' WHERE id = 1",
            # the target keeps the rows a skipped TRUNCATE removed; new ones arrive
            "TRUNCATE TABLE other",
            "INSERT INTO other VALUES (7)",
            # the target has no table of the new name: its rows are not applied
            "RENAME TABLE other TO other2",
            "INSERT INTO other2 VALUES (8)",
            "CREATE TABLE fresh (id INT PRIMARY KEY)",
            "INSERT INTO fresh VALUES (1)",
        ],
        database=src,
    )
    _sentinel(run, mariadb1, src, mariadb2, dst)
    assert _columns(mariadb2, dst, "t") == ["id", "v", "gone", "dflt"]
    assert _rows(mariadb2, dst, "SELECT id, v, gone, dflt FROM t ORDER BY id") == [
        (1, "aa", None, "d"),  # REPLACE wrote the row without the dropped columns
        (2, "b", "g2", "x2"),
        (3, "c", None, "d"),
        (4, "d", None, "d"),
    ]
    assert _tables(mariadb2, dst) == {"marks", "t", "other"}
    assert _rows(mariadb2, dst, "SELECT id FROM other ORDER BY id") == [(1,), (2,), (7,)]
    notes = run.notes()
    assert [n.split("(")[1].split(";")[0] for n in notes] == [
        f"alter of {src}.t",
        f"alter of {src}.t",
        f"truncate of {src}.other",
        f"rename of {src}.other, {src}.other2",
        f"create of {src}.fresh",
    ]
    assert all("options.ddl carries none" in n for n in notes)
    assert not any("applied DDL" in line for line in run.lines)


def test_rename_without_alter_carries_alter_rename_but_not_a_mixed_alter(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    syncing: Callable[[TaskSpec], Sync],
) -> None:
    """ALTER TABLE ... RENAME TO is a rename (its new name translated to the target's
    database); one that also changes columns needs both kinds and is skipped whole."""
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _source(mariadb1, src)
    spec = _spec(mariadb1, mariadb2, src, dst, ["rename", "truncate", "drop"])
    run = syncing(spec)
    run_sql(
        mariadb1,
        [
            "ALTER TABLE other RENAME TO other2",
            "INSERT INTO other2 VALUES (3)",
            "ALTER TABLE t ADD COLUMN c INT, RENAME TO t2",  # alter + rename: skipped
            "INSERT INTO t2 (id, v) VALUES (9, 'z')",
            "TRUNCATE TABLE other2",
            "INSERT INTO other2 VALUES (4)",
        ],
        database=src,
    )
    _sentinel(run, mariadb1, src, mariadb2, dst)
    assert _tables(mariadb2, dst) == {"marks", "t", "other2"}
    assert _rows(mariadb2, dst, "SELECT id FROM other2 ORDER BY id") == [(4,)]
    assert _rows(mariadb2, dst, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    notes = run.notes()
    assert len(notes) == 1, run.lines
    assert f"alter + rename of {src}.t, {src}.t2; options.ddl carries drop, rename," in notes[0]
    assert any(f"RENAME TO `{dst}`.`other2`" in line for line in run.lines)
    # the skipped rename still drops the mapper's knowledge: a DROP TABLE of the new
    # name reaches no target table, and nothing fails
    run_sql(mariadb1, ["DROP TABLE t2"], database=src)
    _sentinel(run, mariadb1, src, mariadb2, dst)
    assert "t" in _tables(mariadb2, dst)


def test_a_skipped_drop_of_a_column_without_default_stops_the_task(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    syncing: Callable[[TaskSpec], Sync],
) -> None:
    """The target keeps a NOT NULL column without a default that the source dropped:
    a row written without it is refused by the target (strict mode), and the task
    stops naming the table and the column."""
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE marks (id BIGINT PRIMARY KEY)",
            "CREATE TABLE t (id INT PRIMARY KEY, must VARCHAR(5) NOT NULL)",
            "INSERT INTO t VALUES (1, 'm')",
        ],
        database=src,
    )
    spec = _spec(mariadb1, mariadb2, src, dst, ["create", "drop"])
    run = syncing(spec)
    run_sql(mariadb1, ["ALTER TABLE t DROP COLUMN must", "INSERT INTO t VALUES (2)"], database=src)
    deadline = time.monotonic() + 30
    while not run.errors and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.errors, run.lines[-20:]
    error = run.errors.pop()
    assert isinstance(error, DuosyncError)
    assert error.table == f"{dst}.t" and "'must' doesn't have a default value" in error.message
    assert _rows(mariadb2, dst, "SELECT id, must FROM t ORDER BY id") == [(1, "m")]
    assert len(run.notes()) == 1
