"""Incremental sync end to end (part (b) of ``bench/incremental.py``).

For each target (MariaDB, OceanBase), with the sync running as a user runs it
(``duosync migrate`` with schema, full and incremental, write_concurrency 4):

1. Sustained rows/s: the sync is stopped, a backlog of row changes is written to
   the source (multi-row UPDATEs and INSERTs of a sysbench-like table), the sync is
   started again, and the time until the target's checkpoint passes the source's
   end position gives rows/s (decode + merge + apply, process start included).
2. Lag at a fixed offered load: a writer commits 50 transactions/s of 100 changed
   rows each (5k rows/s) for a while; every transaction also stamps a probe row
   with its wall-clock time. A poller on the target reads the newest stamp every
   20 ms: now minus that stamp is the lag sample (it includes up to 20 ms of
   inter-arrival time, so it slightly overstates the lag). p50/p99 are reported.

Both phases end with the source and target tables compared row for row.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

TABLE = "sbtest1"
SRC_DB = "bench_e2e_src"
DST_DB = "bench_e2e_dst"
TASK = "bench-e2e"
DUOSYNC = [sys.executable, "-m", "duosync.cli"]


@dataclass
class E2EResult:
    target: str
    backlog_rows: int
    seconds: float
    lag_p50: float
    lag_p99: float
    offered: float

    @property
    def rows_per_second(self) -> float:
        return self.backlog_rows / self.seconds

    def line(self) -> str:
        return (
            f"mariadb->{self.target}: sustained {self.rows_per_second:.0f} rows/s"
            f" ({self.backlog_rows} rows in {self.seconds:.2f} s); at {self.offered:.0f}"
            f" rows/s offered: lag p50 {self.lag_p50 * 1000:.0f} ms,"
            f" p99 {self.lag_p99 * 1000:.0f} ms"
        )


def _conn(port: int, db: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        database=db,
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


def _run(port: int, statements: list[str], db: str | None = None) -> None:
    conn = _conn(port, db)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def _prepare(src_port: int, dst_port: int, rows: int) -> None:
    _run(src_port, [f"DROP DATABASE IF EXISTS `{SRC_DB}`", f"CREATE DATABASE `{SRC_DB}`"])
    _run(
        src_port,
        [
            f"CREATE TABLE `{SRC_DB}`.`{TABLE}` (id INT PRIMARY KEY, k INT NOT NULL,"
            " c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k_1 (k))",
            f"INSERT INTO `{SRC_DB}`.`{TABLE}` SELECT seq, seq % 1000,"
            f" REPEAT(MD5(seq), 3), MD5(seq) FROM seq_1_to_{rows}",
            f"CREATE TABLE `{SRC_DB}`.probe (id INT PRIMARY KEY, ts DOUBLE NOT NULL)",
            f"INSERT INTO `{SRC_DB}`.probe VALUES (1, 0)",
        ],
        SRC_DB,
    )
    _run(dst_port, [f"DROP DATABASE IF EXISTS `{DST_DB}`"])
    if _has_ckpt(dst_port):  # a previous run's checkpoints would make this one resume
        conn = _conn(dst_port)
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM oms.duosync_checkpoint WHERE task = %s", (TASK,))
        finally:
            conn.close()


def _has_ckpt(port: int) -> bool:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = 'duosync_checkpoint'"
            )
            row = cur.fetchone()
            return bool(row and row[0])
    finally:
        conn.close()


def _spec(path: Path, source_url: str, target_url: str, conflict: str | None) -> Path:
    policy = f", conflict: {conflict}" if conflict else ""
    path.write_text(
        f"name: {TASK}\nsource: {source_url}\ntarget: {target_url}\n"
        "types: [schema, full, incremental]\n"
        f"select: {{databases: [{SRC_DB}]}}\n"
        f"rename: {{databases: {{{SRC_DB}: {DST_DB}}}}}\n"
        f"options: {{write_concurrency: 4{policy}}}\n"
    )
    return path


def _start(spec: Path, home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DUOSYNC_PLAIN="1")
    with log.open("ab") as out:
        return subprocess.Popen(
            [*DUOSYNC, "--home", str(home), "migrate", "-f", str(spec)],
            stdout=out,
            stderr=out,
            env=env,
        )


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    if proc.wait(timeout=120) != 0:
        raise RuntimeError(f"duosync failed:\n{log.read_text()[-3000:]}")


def _source_end(port: int) -> tuple[str, int]:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            assert row is not None
            return str(row[0]), int(row[1])
    finally:
        conn.close()


def _applied(port: int) -> tuple[str, int] | None:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            # The checkpoint is a JSON position (kind binlog: file, offset).
            cur.execute("SELECT position FROM oms.duosync_checkpoint WHERE task = %s", (TASK,))
            positions = [json.loads(r[0]) for r in cur.fetchall()]
            if not positions:
                return None
            return max((str(p["file"]), int(p["offset"])) for p in positions)
    except pymysql.err.MySQLError:
        return None
    finally:
        conn.close()


def _wait_applied(dst_port: int, end: tuple[str, int], proc: subprocess.Popen[bytes]) -> None:
    while True:
        got = _applied(dst_port)
        if got is not None and got >= end:
            return
        if proc.poll() is not None:
            raise RuntimeError("duosync exited while catching up")
        time.sleep(0.02)


def _backlog(src_port: int, rows: int, table_rows: int) -> int:
    """Write about *rows* row changes: UPDATEs of 100 rows and INSERTs of 50."""
    conn = _conn(src_port, SRC_DB)
    written = 0
    next_id = table_rows + 1
    try:
        with conn.cursor() as cur:
            i = 0
            while written < rows:
                cur.execute("BEGIN")
                for _ in range(5):
                    start = (i * 100) % (table_rows - 100) + 1
                    cur.execute(
                        f"UPDATE `{TABLE}` SET k = k + 1 WHERE id BETWEEN %s AND %s",
                        (start, start + 99),
                    )
                    written += 100
                    i += 1
                cur.execute(
                    f"INSERT INTO `{TABLE}` SELECT seq, seq % 1000, REPEAT(MD5(seq), 3),"
                    f" MD5(seq) FROM seq_{next_id}_to_{next_id + 49}"
                )
                next_id += 50
                written += 50
                cur.execute("COMMIT")
    finally:
        conn.close()
    return written


def _offered_load(src_port: int, table_rows: int, seconds: float, stop: threading.Event) -> float:
    """50 transactions/s of 100 updated rows + the probe stamp; returns rows/s done."""
    conn = _conn(src_port, SRC_DB)
    rows = 0
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            i = 0
            while time.monotonic() - started < seconds and not stop.is_set():
                due = started + i / 50
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                start = (i * 100) % (table_rows - 100) + 1
                cur.execute("BEGIN")
                cur.execute(
                    f"UPDATE `{TABLE}` SET k = k + 1 WHERE id BETWEEN %s AND %s",
                    (start, start + 99),
                )
                cur.execute("UPDATE probe SET ts = %s WHERE id = 1", (time.time(),))
                cur.execute("COMMIT")
                rows += 100
                i += 1
    finally:
        conn.close()
    return rows / (time.monotonic() - started)


def _sample_lag(dst_port: int, stop: threading.Event, samples: list[float]) -> None:
    conn = _conn(dst_port, DST_DB)
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT ts FROM probe WHERE id = 1")
                row = cur.fetchone()
                if row and row[0]:
                    samples.append(max(0.0, time.time() - float(row[0])))
                time.sleep(0.02)
    finally:
        conn.close()


def _equal(src_port: int, dst_port: int) -> None:
    q = f"SELECT COUNT(*), SUM(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM `{TABLE}`"
    got = []
    for port, db in ((src_port, SRC_DB), (dst_port, DST_DB)):
        conn = _conn(port, db)
        try:
            with conn.cursor() as cur:
                cur.execute(q)
                got.append(cur.fetchone())
        finally:
            conn.close()
    if got[0] != got[1]:
        raise RuntimeError(f"target differs from source: {got[0]} vs {got[1]}")


def end_to_end(
    target: str,
    source_url: str,
    target_url: str,
    *,
    table_rows: int = 100_000,
    backlog_rows: int = 200_000,
    load_seconds: float = 20.0,
    conflict: str | None = None,
) -> E2EResult:
    src_port = int(source_url.rsplit(":", 1)[1])
    dst_port = int(target_url.rsplit(":", 1)[1])
    _prepare(src_port, dst_port, table_rows)
    with tempfile.TemporaryDirectory(prefix="duosync-e2e-") as tmp:
        work = Path(tmp)
        spec = _spec(work / "task.yaml", source_url, target_url, conflict)
        log = work / "duosync.log"
        proc = _start(spec, work / "home", log)
        # Let schema + full + catch-up finish, then stop: the backlog goes in while
        # nothing reads it.
        _wait_applied(dst_port, _source_end(src_port), proc)
        _stop(proc, log)
        written = _backlog(src_port, backlog_rows, table_rows)
        end = _source_end(src_port)
        started = time.monotonic()
        proc = _start(spec, work / "home", log)
        _wait_applied(dst_port, end, proc)
        seconds = time.monotonic() - started
        _equal(src_port, dst_port)

        stop = threading.Event()
        samples: list[float] = []
        poller = threading.Thread(target=_sample_lag, args=(dst_port, stop, samples))
        poller.start()
        try:
            offered = _offered_load(src_port, table_rows, load_seconds, stop)
        finally:
            stop.set()
            poller.join()
        _wait_applied(dst_port, _source_end(src_port), proc)
        _stop(proc, log)
        _equal(src_port, dst_port)
    # Samples from the first second include the sync settling after the backlog.
    steady = samples[50:] or samples
    q = statistics.quantiles(steady, n=100)
    return E2EResult(target, written, seconds, statistics.median(steady), q[98], offered)
