"""Large source transactions during incremental sync (``sync.streamed``): applied as
they are read, in one target transaction, with the process's memory bounded by the
fragment size rather than by the transaction. Killed -9 while one is half written,
nothing of it shows on the target, and the restarted task applies it exactly once:
a keyless table, whose rows are applied in order and not idempotently, would show
any row applied twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from duosync.config import Endpoint
from tests.e2e.test_incremental import _converge, _start, _stop, _table_rows
from tests.e2e.test_two_way import _assert_quiet, _wait_state
from tests.e2e.test_two_way import _cli as _cli_start
from tests.helpers import checkpoint_rows, query, run_sql

pytestmark = pytest.mark.e2e

#: peak resident memory the sync process may reach while it applies the binlog
#: test's transactions (200,000 rows of ~220 bytes, then 200,000 updates of them).
#: Measured: 133 MB in fragments of 25,000; 307 MB held whole (fragment_rows
#: above the transaction's size)
PEAK_RSS_MB = 200


def _wait(what: str, done: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            raise AssertionError(f"migrate exited before {what}: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _half_written(target: Endpoint, rows: int) -> Callable[[], bool]:
    """Whether a transaction on *target* has written more than *rows* rows and is
    still open: a fragmented source transaction in the middle of its apply."""

    def check() -> bool:
        found = query(
            target,
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_rows_modified > %s",
            (rows,),
        )
        return int(found[0][0]) > 0

    return check


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _spec(
    path: Path, name: str, source: str, target: Endpoint, src: str, dst: str, **opts: int
) -> Path:
    options = ", ".join(f"{k}: {v}" for k, v in opts.items())
    path.write_text(
        f"""
name: {name}
source: {source}
target: mariadb://root@{target.host}:{target.port}
types: [schema, full, incremental]
select: {{databases: [{src}]}}
rename: {{databases: {{{src}: {dst}}}}}
options: {{{options}}}
"""
    )
    return path


def _kill_in_the_middle(
    spec: Path,
    home: Path,
    target: Endpoint,
    dst: str,
    task: str,
    write: Callable[[], None],
    rows: int,
) -> None:
    """Start the task, make the large transaction once it syncs, kill -9 the
    process while the transaction is half written on the target; check that
    nothing of it is visible there."""
    proc = _start(spec, home)
    try:
        _wait("incremental sync", lambda: checkpoint_rows(target, task) > 0, proc, 120)
        write()
        _wait("the large transaction half written", _half_written(target, rows), proc, 120)
    except AssertionError as exc:
        os.kill(proc.pid, signal.SIGKILL)
        trx = query(
            target, "SELECT trx_state, trx_rows_modified FROM information_schema.INNODB_TRX"
        )
        applied = query(target, f"SELECT COUNT(*) FROM `{dst}`.big")
        raise AssertionError(
            f"{exc}; target: {applied} rows, {trx}; {proc.communicate()[1][-3000:]}"
        ) from None
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # all or nothing: the open target transaction was rolled back with the process
    assert query(target, f"SELECT COUNT(*) FROM `{dst}`.big") == [(0,)]
    assert query(target, f"SELECT COUNT(*) FROM `{dst}`.journal") == [(0,)]


def test_binlog_transaction_killed_half_applied_then_exactly_once(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(220))",
            "CREATE TABLE journal (n INT, note VARCHAR(20))",
        ],
        src,
    )
    source = f"mariadb://root@{mariadb1.host}:{mariadb1.port}"
    # a name of this run's own: checkpoint rows of an earlier run stay on the target
    task = f"large-binlog-{os.getpid()}"
    spec = _spec(tmp_path / "t.yaml", task, source, mariadb2, src, dst, write_concurrency=4)
    home = tmp_path / "home"

    def insert_all() -> None:
        run_sql(
            mariadb1,
            [
                "BEGIN",
                "INSERT INTO big SELECT seq, 0, REPEAT(CHAR(65 + seq % 26), 220)"
                " FROM seq_1_to_200000",
                "INSERT INTO journal SELECT seq, 'insert' FROM seq_1_to_1000",
                "COMMIT",
            ],
            src,
        )

    _kill_in_the_middle(spec, home, mariadb2, dst, task, insert_all, 30_000)
    proc = _start(spec, home)
    try:
        _converge(mariadb1, src, mariadb2, dst, ["big", "journal"], proc, timeout=300)
        run_sql(
            mariadb1,
            [
                "BEGIN",
                "UPDATE big SET v = v + 1, pad = REPEAT(CHAR(97 + id % 26), 220)",
                "INSERT INTO journal SELECT seq, 'update' FROM seq_1_to_1000",
                "COMMIT",
            ],
            src,
        )
        _converge(mariadb1, src, mariadb2, dst, ["big", "journal"], proc, timeout=300)
        peak = _peak_rss_mb(proc.pid)
    finally:
        code, err = _stop(proc)
    assert code == 0, err[-3000:]
    assert query(mariadb2, f"SELECT COUNT(*), SUM(v) FROM `{dst}`.big") == [(200_000, 200_000)]
    assert query(
        mariadb2, f"SELECT note, COUNT(*) FROM `{dst}`.journal GROUP BY note ORDER BY note"
    ) == [
        ("insert", 1000),
        ("update", 1000),
    ]
    assert peak < PEAK_RSS_MB, f"the sync process peaked at {peak:.0f} MB"


def test_trigger_log_transaction_killed_half_applied_then_exactly_once(
    tmp_path: Path,
    oceanbase: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src = fresh_database(oceanbase, "src")
    dst = fresh_database(mariadb2, "dst")
    run_sql(
        oceanbase,
        [
            "CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(220))",
            "CREATE TABLE journal (n INT, note VARCHAR(20))",
        ],
        src,
    )
    source = f"oceanbase://root@{oceanbase.host}:{oceanbase.port}"
    task = f"large-ob-{os.getpid()}"
    # small fragments: the trigger log of a large transaction is slow to write
    spec = _spec(
        tmp_path / "t.yaml",
        task,
        source,
        mariadb2,
        src,
        dst,
        write_concurrency=3,
        fragment_rows=1000,
    )
    home = tmp_path / "home"

    def insert_all() -> None:
        statements = ["BEGIN"]
        for step in range(12):
            rows = range(step * 1000 + 1, step * 1000 + 1001)
            statements.append(
                "INSERT INTO big VALUES " + ", ".join(f"({i}, 0, '{'x' * 200}')" for i in rows)
            )
        statements += [
            "INSERT INTO journal VALUES " + ", ".join(f"({i}, 'insert')" for i in range(1, 301)),
            "COMMIT",
        ]
        run_sql(oceanbase, statements, src)

    _kill_in_the_middle(spec, home, mariadb2, dst, task, insert_all, 3000)
    proc = _start(spec, home)
    try:
        _converge(oceanbase, src, mariadb2, dst, ["big", "journal"], proc, timeout=300)
    finally:
        code, err = _stop(proc)
    assert code == 0, err[-3000:]
    assert query(mariadb2, f"SELECT COUNT(*) FROM `{dst}`.big") == [(12_000,)]
    assert query(mariadb2, f"SELECT COUNT(*) FROM `{dst}`.journal") == [(300,)]


def test_two_way_large_transactions_do_not_loop(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """Large transactions on both sides of a two-way pair, in fragments both ways:
    each task marks its large target transaction on its first row, so the other
    recognises the echo on its first fragment and drops it; many small transactions
    batched into one target transaction (marker last) larger than the other task's
    fragments are an echo found at the end, rolled back. Both sides end equal, and
    applying stops once nobody writes."""
    a_db = fresh_database(mariadb1, "a")
    b_db = fresh_database(mariadb2, "b")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(220))",
            "INSERT INTO big SELECT seq, 0, REPEAT('s', 200) FROM seq_1_to_20000",
        ],
        a_db,
    )
    name = f"large-2w-{os.getpid()}"
    spec = tmp_path / "t.yaml"
    # forward: one partition, so its batches of small transactions are one large
    # target transaction; reverse: fragments of 3,000 rows
    spec.write_text(
        f"""
name: {name}
topology: two-way
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: mariadb://root@{mariadb2.host}:{mariadb2.port}
types: [schema, full, incremental]
select: {{databases: [{a_db}]}}
rename: {{databases: {{{a_db}: {b_db}}}}}
options: {{write_concurrency: 1, fragment_rows: 2000}}
reverse: {{fragment_rows: 3000}}
"""
    )
    home = tmp_path / "home"
    forward = _start(spec, home)
    reverse: subprocess.Popen[str] | None = None
    try:
        _wait_state(home, name, [forward])
        reverse = _cli_start(home, "reverse", "-f", str(spec))
        rname = f"{name}.reverse"
        _wait("reverse incremental", lambda: checkpoint_rows(mariadb1, rname) > 0, reverse, 120)
        run_sql(mariadb1, ["UPDATE big SET v = v + 1"], a_db)  # 20,000 rows: A -> B
        # one side at a time: the same rows written on both at once would conflict
        _converge(mariadb1, a_db, mariadb2, b_db, ["big"], forward, timeout=300)
        run_sql(mariadb2, ["UPDATE big SET v = v + 10"], b_db)  # 20,000 rows: B -> A
        _converge(mariadb1, a_db, mariadb2, b_db, ["big"], reverse, timeout=300)
        # 100 transactions of 200 rows on A, batched by the forward task
        run_sql(
            mariadb1,
            [
                f"UPDATE big SET pad = 'p{i}' WHERE id BETWEEN {i * 200 + 1} AND {i * 200 + 200}"
                for i in range(100)
            ],
            a_db,
        )
        _converge(mariadb1, a_db, mariadb2, b_db, ["big"], forward, timeout=300)
        _assert_quiet(mariadb1, mariadb2, (name, rname))
        assert reverse.poll() is None
    finally:
        code, err = _stop(forward)
        if reverse is not None:
            rcode, rerr = _stop(reverse)
            assert rcode == 0, rerr[-3000:]
    assert code == 0, err[-3000:]
    assert query(mariadb1, f"SELECT COUNT(*), SUM(v) FROM `{a_db}`.big") == [(20_000, 220_000)]
    assert _table_rows(mariadb1, a_db, "big") == _table_rows(mariadb2, b_db, "big")
