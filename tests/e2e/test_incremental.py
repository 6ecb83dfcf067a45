"""``duosync migrate`` with incremental sync, end to end: the CLI runs as a user runs
it, a load writes to the source meanwhile, and the verdict is always a comparison of
every source row with every target row."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from tests.helpers import admin_connection, query, run_sql

pytestmark = pytest.mark.e2e


def _start(spec: Path, home: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), "migrate", "-f", str(spec)]
    env = dict(os.environ, DUOSYNC_PLAIN="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _table_rows(endpoint: Endpoint, db: str, table: str) -> list[tuple[Any, ...]]:
    return sorted(query(endpoint, f"SELECT * FROM `{db}`.`{table}`"), key=repr)


def _converge(
    source: Endpoint,
    src_db: str,
    target: Endpoint,
    dst_db: str,
    tables: list[str],
    proc: subprocess.Popen[str],
    timeout: float = 120,
) -> None:
    """Wait until every table is equal on both sides (the sync keeps running)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"migrate exited early: {proc.communicate()[1][-3000:]}")
        try:
            if all(
                _table_rows(source, src_db, t) == _table_rows(target, dst_db, t) for t in tables
            ):
                return
        except Exception:  # a table not created on the target yet
            pass
        if time.monotonic() > deadline:
            diff = {
                t: (len(_table_rows(source, src_db, t)), len(_table_rows(target, dst_db, t)))
                for t in tables
            }
            raise AssertionError(f"source and target did not converge: row counts {diff}")
        time.sleep(0.5)


def _count(endpoint: Endpoint, db: str, table: str) -> int:
    """Rows in a table, or -1 while it does not exist yet."""
    try:
        return len(_table_rows(endpoint, db, table))
    except Exception:
        return -1


def _sysbench(endpoint: Endpoint, db: str, command: str, *extra: str) -> list[str]:
    return [
        "sysbench",
        "oltp_write_only",
        f"--mysql-host={endpoint.host}",
        f"--mysql-port={endpoint.port}",
        f"--mysql-user={endpoint.user}",
        f"--mysql-db={db}",
        "--db-driver=mysql",
        "--tables=2",
        "--table-size=5000",
        *extra,
        command,
    ]


def test_sysbench_load_through_full_and_incremental(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """sysbench oltp_write_only writes to the source during the full copy and on into
    the incremental phase; after it stops the OceanBase target equals the source, and
    a DDL run mid-stream arrived in order."""
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(oceanbase, "dst")
    subprocess.run(_sysbench(mariadb1, src, "prepare"), check=True, capture_output=True)
    spec = tmp_path / "task.yaml"
    spec.write_text(
        f"""
name: bench-load
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: oceanbase://root@{oceanbase.host}:{oceanbase.port}
types: [schema, full, incremental]
select: {{databases: [{src}]}}
rename: {{databases: {{{src}: {dst}}}}}
options: {{chunk_rows: 500, write_concurrency: 3, heartbeat_seconds: 1}}
"""
    )
    load = subprocess.Popen(
        _sysbench(mariadb1, src, "run", "--time=12", "--threads=2", "--rate=150"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = _start(spec, tmp_path / "home")
    try:
        time.sleep(4)
        run_sql(mariadb1, "ALTER TABLE sbtest1 ADD COLUMN note VARCHAR(20) DEFAULT 'n'", src)
        assert load.wait(timeout=120) == 0, load.stderr.read() if load.stderr else ""
        run_sql(mariadb1, "UPDATE sbtest1 SET note = 'after' WHERE id % 7 = 0", src)
        _converge(mariadb1, src, oceanbase, dst, ["sbtest1", "sbtest2"], proc)
    finally:
        if load.poll() is None:
            load.kill()
        code, err = _stop(proc)
    assert code == 0, err[-3000:]
    assert "caught up (monitoring)" in err, err[-3000:]
    note = query(oceanbase, f"SELECT COUNT(*) FROM `{dst}`.sbtest1 WHERE note = 'after'")
    assert note[0][0] > 0


def test_kill_9_at_random_moments_then_restart(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """A writer keeps changing rows (inserts, updates, key changes, deletes, in
    multi-statement transactions) while the sync is killed -9 three times at random
    moments and restarted; in the end the target equals the source, including a
    counter row bumped by every transaction."""
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(40))",
            "CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL)",
            "INSERT INTO items SELECT seq, seq, CONCAT('s', seq) FROM seq_1_to_3000",
            "INSERT INTO counter VALUES (1, 0)",
        ],
        src,
    )
    spec = tmp_path / "task.yaml"
    spec.write_text(
        f"""
name: killed-sync
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: mariadb://root@{mariadb2.host}:{mariadb2.port}
types: [schema, full, incremental]
select: {{databases: [{src}]}}
rename: {{databases: {{{src}: {dst}}}}}
options: {{write_concurrency: 4}}
"""
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        rng = random.Random(11)
        conn = admin_connection(mariadb1, src)
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("BEGIN")
                    for _ in range(rng.randint(1, 5)):
                        i = rng.randint(1, 4000)
                        r = rng.random()
                        if r < 0.4:
                            cur.execute(
                                "INSERT INTO items VALUES (%s, 1, 'w') ON DUPLICATE KEY"
                                " UPDATE v = v + 1",
                                (i,),
                            )
                        elif r < 0.6:
                            cur.execute("DELETE FROM items WHERE id = %s", (i,))
                        elif r < 0.7:
                            cur.execute(
                                "UPDATE IGNORE items SET id = id + 5000 WHERE id = %s", (i,)
                            )
                        else:
                            cur.execute("UPDATE items SET s = %s WHERE id = %s", (f"u{r}", i))
                    cur.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                    cur.execute("COMMIT")
                    time.sleep(0.002)
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    home = tmp_path / "home"
    rng = random.Random(5)
    try:
        for _ in range(3):
            proc = _start(spec, home)
            time.sleep(rng.uniform(1.5, 5.0))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc = _start(spec, home)
        time.sleep(3)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not errors, errors
    try:
        _converge(mariadb1, src, mariadb2, dst, ["items", "counter"], proc)
    finally:
        code, err = _stop(proc)
    assert code == 0, err[-3000:]
    total = query(mariadb1, f"SELECT n FROM `{src}`.counter")[0][0]
    assert total > 100, "too few transactions during the test"
    assert query(mariadb2, f"SELECT n FROM `{dst}`.counter") == [(total,)]


def test_incremental_start_time_then_purged_binlog(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """Without a full migration, incremental_start picks the first transaction at or
    after a time; a restart whose position was purged from the source fails with an
    error that says how to recover."""
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(mariadb2, "dst")
    # incremental_start reads from the oldest binlog the server has: leave only this
    # test's events there (an earlier test may have logged compressed events).
    run_sql(mariadb1, ["FLUSH BINARY LOGS"])
    newest = query(mariadb1, "SHOW MASTER STATUS")[0][0]
    run_sql(mariadb1, [f"PURGE BINARY LOGS TO '{newest}'"])
    run_sql(mariadb1, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))", src)
    run_sql(mariadb1, "INSERT INTO t VALUES (1, 'old'), (3, 'before')", src)
    time.sleep(1.2)  # binlog timestamps have whole seconds
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))
    time.sleep(1.2)
    run_sql(
        mariadb1, ["INSERT INTO t VALUES (2, 'after')", "UPDATE t SET v = 'new' WHERE id = 1"], src
    )
    spec = tmp_path / "task.yaml"
    spec.write_text(
        f"""
name: from-time
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: mariadb://root@{mariadb2.host}:{mariadb2.port}
types: [schema, incremental]
select: {{objects: [{src}.t]}}
rename: {{databases: {{{src}: {dst}}}}}
options: {{incremental_start: "{start}"}}
"""
    )
    home = tmp_path / "home"
    proc = _start(spec, home)
    deadline = time.monotonic() + 60
    while _count(mariadb2, dst, "t") < 2:
        assert time.monotonic() < deadline, "changes after the start time never arrived"
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.3)
    code, err = _stop(proc)
    assert code == 0, err[-3000:]
    # Row 3 was written before the start time and never changed after it.
    assert _table_rows(mariadb2, dst, "t") == [(1, "new"), (2, "after")]

    newest = query(mariadb1, "SHOW MASTER STATUS")[0][0]
    run_sql(mariadb1, ["FLUSH BINARY LOGS"])
    current = query(mariadb1, "SHOW MASTER STATUS")[0][0]
    assert current != newest
    # The server skips logs a replica's dump thread still reads; ours may outlive
    # the stopped task for a moment, so purge until the old logs are really gone.
    deadline = time.monotonic() + 30
    while True:
        run_sql(mariadb1, [f"PURGE BINARY LOGS TO '{current}'"])
        if query(mariadb1, "SHOW BINARY LOGS")[0][0] == current:
            break
        assert time.monotonic() < deadline, "the old binlogs could not be purged"
        time.sleep(0.5)
    run_sql(mariadb1, "INSERT INTO t VALUES (4, 'lost')", src)
    proc = _start(spec, home)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-3000:]
    assert "purged" in err and "full migration" in err, err[-3000:]
