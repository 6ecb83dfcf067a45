"""Row filters during incremental sync, and ``options.dml``, end to end: the CLI
runs as a user runs it, the source changes meanwhile, and the verdict compares the
target's rows with the source rows the filter selects (the source server itself
evaluating the condition), then ``duosync verify`` must say "equal"."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.positions import BinlogPosition, position_from
from tests.helpers import admin_connection, query, run_sql

pytestmark = pytest.mark.e2e

# Case-insensitive, PAD SPACE collation: 'EU' and 'eu ' match region = 'eu' on the
# server, which a Python reading of the condition would get wrong; NULL notes
# match through IS NULL, 'skip' notes never (note <> 'skip' is NULL for NULL).
_TABLE = (
    "CREATE TABLE t (id INT PRIMARY KEY, region VARCHAR(8) COLLATE utf8mb4_general_ci,"
    " n INT NOT NULL, note VARCHAR(16) NULL)"
)
FILTER = "region = 'eu' AND (note IS NULL OR note <> 'skip')"
_REGIONS = ("eu", "EU", "eu ", "us", "Eu", "asia")
_NOTES = (None, "x", "skip", "y")


def _spec(path: Path, name: str, src: Endpoint, db: str, dst: Endpoint, extra: str) -> Path:
    path.write_text(
        f"""
name: {name}
source: mariadb://root@{src.host}:{src.port}
target: {dst.flavor.value}://root@{dst.host}:{dst.port}
types: [schema, full, incremental]
select: {{databases: [{db}]}}
{extra}
options: {{heartbeat_seconds: 1, write_concurrency: 2}}
"""
    )
    return path


def _start(spec: Path, home: Path, log: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), "migrate", "-f", str(spec)]
    env = dict(os.environ, DUOSYNC_PLAIN="1")
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, env=env)


def _stop(proc: subprocess.Popen[str], log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode in (0, 130), log.read_text()[-3000:]


def _rows(endpoint: Endpoint, sql: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in query(endpoint, sql))


def _wait_monitoring(proc: subprocess.Popen[str], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while "monitoring" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def _caught_up(
    task: str, source: Endpoint, target: Endpoint, proc: subprocess.Popen[str], log: Path
) -> None:
    """Wait until every partition's checkpoint on the target is past the source's
    binlog position now: everything written before was applied or left out."""
    with admin_connection(source) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    assert row is not None
    now = BinlogPosition(file=str(row[0]), offset=int(row[1]))
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        got = query(target, "SELECT position FROM oms.duosync_checkpoint WHERE task = %s", (task,))
        positions = [position_from(str(r[0])) for r in got]
        if positions and all(
            isinstance(p, BinlogPosition) and p.order_key() >= now.order_key() for p in positions
        ):
            return
        assert time.monotonic() < deadline, f"not caught up: {positions} < {now}"
        time.sleep(0.3)


def _verify(spec: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), "verify", "-f", str(spec)],
        capture_output=True, text=True, timeout=180, env=dict(os.environ, DUOSYNC_PLAIN="1"),
    )  # fmt: skip


def _random_writes(endpoint: Endpoint, db: str, seconds: float, seed: int) -> int:
    """Random inserts, updates (rows moving in and out of the filter, the key
    changing too) and deletes, several per transaction."""
    rnd = random.Random(seed)
    done = 0
    conn = admin_connection(endpoint, db)
    try:
        conn.autocommit(False)
        with conn.cursor() as cur:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for _ in range(rnd.randint(1, 4)):
                    i = rnd.randint(1, 300)
                    op = rnd.choice(("insert", "update", "update", "update", "move", "delete"))
                    region, note = rnd.choice(_REGIONS), rnd.choice(_NOTES)
                    if op == "insert":
                        cur.execute(
                            "INSERT IGNORE INTO t VALUES (%s, %s, 0, %s)", (i, region, note)
                        )
                    elif op == "update":
                        cur.execute(
                            "UPDATE t SET region = %s, note = %s, n = n + 1 WHERE id = %s",
                            (region, note, i),
                        )
                    elif op == "move":
                        cur.execute(
                            "UPDATE IGNORE t SET id = id + 1000, region = %s WHERE id = %s",
                            (region, i),
                        )
                    else:
                        cur.execute("DELETE FROM t WHERE id = %s", (i,))
                conn.commit()
                done += 1
    finally:
        conn.close()
    return done


@pytest.mark.parametrize("target_name", ["mariadb2", "oceanbase"])
def test_filtered_incremental_keeps_exactly_the_matching_rows(
    target_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """Rows enter and leave the filter under random updates (case, trailing spaces
    and NULLs decided by the server's collation and three-valued logic); the task is
    killed -9 once and restarted. The target ends holding exactly the source rows
    the filter selects, and verify says equal."""
    target: Endpoint = request.getfixturevalue(target_name)
    db = fresh_database(mariadb1, "src")
    run_sql(mariadb1, [_TABLE], db)
    run_sql(
        mariadb1,
        [
            "INSERT INTO t VALUES " + ", ".join(
                f"({i}, '{_REGIONS[i % len(_REGIONS)]}', 0, NULL)" for i in range(1, 201)
            )
        ],
        db,
    )  # fmt: skip
    run_sql(target, [f"DROP DATABASE IF EXISTS `{db}`"])
    name = f"filtered-{target_name}"
    spec = _spec(
        tmp_path / "task.yaml", name, mariadb1, db, target, f'filters: {{{db}.t: "{FILTER}"}}'
    )
    home, log = tmp_path / "home", tmp_path / "task.log"
    proc = _start(spec, home, log)
    try:
        _wait_monitoring(proc, log)
        txns = _random_writes(mariadb1, db, 4, seed=1)
        proc.kill()  # -9 in the middle of the stream
        proc.wait()
        proc = _start(spec, home, log)
        txns += _random_writes(mariadb1, db, 4, seed=2)
        _caught_up(name, mariadb1, target, proc, log)
        want = _rows(mariadb1, f"SELECT * FROM `{db}`.t WHERE {FILTER}")
        got = _rows(target, f"SELECT * FROM `{db}`.t")
        assert got == want, f"{len(got)} rows on the target, {len(want)} match on the source"
        everything = _rows(mariadb1, f"SELECT * FROM `{db}`.t")
        assert 0 < len(want) < len(everything), "the filter must select some rows, not all"
        result = _verify(spec, home)
        assert result.returncode == 0, result.stdout + result.stderr
        _stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"{name}: {txns} transactions, {len(want)} of {len(everything)} rows in the filter")


#: (dml option, what reaches the target of: insert of 11, update of 2, delete of 3)
DML_SUBSETS = {
    "insert": (True, False, False),
    "update": (False, True, False),
    "delete": (False, False, True),
    "insert,update": (True, True, False),
    "insert,delete": (True, False, True),
    "update,delete": (False, True, True),
    "insert,update,delete": (True, True, True),
}


def test_each_dml_subset_carries_only_its_kinds(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """One task per non-empty subset of options.dml, all at once; the source runs
    an insert, an update and a delete; each target holds the seed rows with only
    its kinds of change applied."""
    procs: dict[str, tuple[subprocess.Popen[str], Path, str, Path]] = {}
    try:
        for n, kinds in enumerate(DML_SUBSETS):
            db = fresh_database(mariadb1, f"d{n}")
            run_sql(mariadb1, [_TABLE], db)
            rows = ", ".join(f"({i}, 'eu', 0, NULL)" for i in range(1, 11))
            run_sql(mariadb1, [f"INSERT INTO t VALUES {rows}"], db)
            run_sql(mariadb2, [f"DROP DATABASE IF EXISTS `{db}`"])
            name = f"dml-{n}"
            spec = _spec(tmp_path / f"{name}.yaml", name, mariadb1, db, mariadb2, "").read_text()
            spec = spec.replace("options: {", f"options: {{dml: [{kinds.replace(',', ', ')}], ")
            path = tmp_path / f"{name}.yaml"
            path.write_text(spec)
            log = tmp_path / f"{name}.log"
            procs[kinds] = (_start(path, tmp_path / f"home-{n}", log), log, db, path)
        for proc, log, _db, _path in procs.values():
            _wait_monitoring(proc, log)
        for _kinds, (_proc, _log, db, _path) in procs.items():
            run_sql(
                mariadb1,
                [
                    "INSERT INTO t VALUES (11, 'new', 0, NULL)",
                    "UPDATE t SET note = 'changed' WHERE id = 2",
                    "DELETE FROM t WHERE id = 3",
                ],
                db,
            )
        for n, (kinds, (proc, log, db, path)) in enumerate(procs.items()):
            _caught_up(f"dml-{n}", mariadb1, mariadb2, proc, log)
            inserted, updated, deleted = DML_SUBSETS[kinds]
            want: dict[int, tuple[Any, ...]] = {i: (i, "eu", 0, None) for i in range(1, 11)}
            if inserted:
                want[11] = (11, "new", 0, None)
            if updated:
                want[2] = (2, "eu", 0, "changed")
            if deleted:
                del want[3]
            got = _rows(mariadb2, f"SELECT * FROM `{db}`.t")
            assert got == sorted(want.values()), f"dml: [{kinds}]"
            result = _verify(path, tmp_path / f"home-{n}")
            # what the task leaves out on purpose is reported apart, not a difference
            assert result.returncode == 0, result.stdout + result.stderr
            if kinds != "insert,update,delete":
                assert "kept by options.dml" in result.stdout + result.stderr
    finally:
        for proc, _log, _db, _path in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_reverse_task_refuses_rows_outside_the_pairs_filter(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """A filtered two-way pair: the target's changes within the filter go back to
    the source; an insert outside it and an update moving a row out are left out
    and recorded in the conflict log (reverse.on_data_error: skip); nothing loops."""
    db = fresh_database(mariadb1, "a")
    run_sql(mariadb1, [_TABLE], db)
    rows = ", ".join(f"({i}, '{'eu' if i % 2 else 'us'}', 0, NULL)" for i in range(1, 21))
    run_sql(mariadb1, [f"INSERT INTO t VALUES {rows}"], db)
    run_sql(mariadb2, [f"DROP DATABASE IF EXISTS `{db}`"])
    spec = _spec(
        tmp_path / "pair.yaml", "fpair", mariadb1, db, mariadb2,
        f'filters: {{{db}.t: "{FILTER}"}}\ntopology: two-way\n'
        "reverse: {on_data_error: skip}",
    )  # fmt: skip
    home = tmp_path / "home"
    flog, rlog = tmp_path / "forward.log", tmp_path / "reverse.log"
    forward = _start(spec, home, flog)
    reverse: subprocess.Popen[str] | None = None
    try:
        _wait_monitoring(forward, flog)
        cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), "reverse", "-f", str(spec)]
        reverse = subprocess.Popen(
            cmd, stdout=rlog.open("w"), stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, DUOSYNC_PLAIN="1"),
        )  # fmt: skip
        _wait_monitoring(reverse, rlog)
        run_sql(
            mariadb2,
            [
                "UPDATE t SET n = 7 WHERE id = 1",  # within: goes back
                "INSERT INTO t VALUES (101, 'eu', 1, NULL)",  # within: goes back
                "INSERT INTO t VALUES (102, 'us', 1, NULL)",  # outside: refused
                "UPDATE t SET region = 'us' WHERE id = 3",  # moves out: refused
                "DELETE FROM t WHERE id = 5",  # deletes always pass
            ],
            db,
        )
        deadline = time.monotonic() + 60
        while True:
            got = _rows(
                mariadb1, f"SELECT id, region, n FROM `{db}`.t WHERE id IN (1, 3, 5, 101, 102)"
            )
            if got == [(1, "eu", 7), (3, "eu", 0), (101, "eu", 1)]:
                break
            assert reverse.poll() is None, rlog.read_text()[-3000:]
            assert time.monotonic() < deadline, got
            time.sleep(0.3)
        conflicts = subprocess.run(
            [sys.executable, "-m", "duosync.cli", "--home", str(home), "conflicts",
             "fpair.reverse", "--json"],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, DUOSYNC_PLAIN="1"),
        )  # fmt: skip
        assert conflicts.returncode == 0, conflicts.stderr
        records = json.loads(conflicts.stdout)["conflicts"]
        refused = sorted((r["op"], int(r["key"][0])) for r in records)
        assert refused == [("insert", 102), ("update", 3)], records
        assert all("filter" in r["reason"] for r in records), records
    finally:
        for p in (forward, reverse):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
