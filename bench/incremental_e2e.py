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

``--policies``: the cost of conflict policies on incremental apply. Phase 1 alone
(the backlog's sustained rows/s) runs once per policy, each on a fresh table, task
and metadata store, in one run of the script:

- ``none``: one-way, no ``options.conflict``: idempotent REPLACE/DELETE (the base);
- ``filtered``: ``none`` with a row filter every row matches: what judging each
  change on the source server costs (``sync.row_selection``);
- ``overwrite``: one-way with ``conflict: overwrite``: checked apply;
- ``overwrite_two_way``: ``topology: two-way`` with ``conflict: overwrite`` (what
  two-way alone costs the forward task: loop guard, markers);
- ``site_priority``: two-way, ``winner: target``;
- ``last_writer_wins``: two-way; to MariaDB with ``lww_column`` (two MariaDBs cannot
  date rows otherwise), to OceanBase without (OceanBase is the arbiter: rows dated
  by ORA_ROWSCN and the ``oms.duosync_row_version`` registry).

In the two-way runs the forward task writes the arbiter side, so it is the task
that decides (reads the arbiter's row per key against the change's before image,
and for last_writer_wins dates it); only the forward task runs (``duosync
migrate``), the reverse task does not. The table has a ``ts DATETIME(6)`` column in
every policy run (the backlog writer sets it to UTC_TIMESTAMP(6)), so every policy
moves the same rows. The backlog holds no conflict: the target holds every
change's before image, and each run checks that no conflict was recorded.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox
    .venv/bin/python bench/incremental_e2e.py --sandbox /tmp/benchbox --policies

Printed: one line per target and policy (rows/s and the ratio to ``none`` of the
same target in the same run), a summary line per target, with ``--json`` one JSON
object, and as the last line ``ratio=X.XX``: the lowest ratio of any policy to
idempotent apply. Without ``--policies`` the script runs phases 1 and 2 per target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from sandbox_urls import port_of

from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, Sandbox

TABLE = "sbtest1"
SRC_DB = "bench_e2e_src"
DST_DB = "bench_e2e_dst"
TASK = "bench-e2e"
REVERSE_TASK = TASK + ".reverse"
DUOSYNC = [sys.executable, "-m", "duosync.cli"]
SOURCE_SERVER = "mariadb1"
TARGET_SERVERS = {"mariadb": "mariadb2", "oceanbase": "oceanbase1"}
#: the converging policies' registry of row versions (sync.convergence)
ROW_VERSION_TABLE = "duosync_row_version"
CONFLICT_TABLE = "duosync_conflict"


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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


@dataclass(frozen=True)
class Policy:
    """One way of applying the backlog (``--policies``)."""

    name: str
    conflict: str | None = None
    two_way: bool = False
    winner: str | None = None
    #: last_writer_wins: date changes by the table's ts column (needed between MariaDBs)
    lww: bool = False
    #: a row filter on the table (one every row matches: the cost of judging them)
    row_filter: str | None = None

    def label(self, target: str) -> str:
        if self.row_filter is not None:
            return f"idempotent, row filter {self.row_filter!r} judged by the source"
        if self.conflict is None:
            return "none (idempotent)"
        mode = "two-way" if self.two_way else "one-way, checked"
        extra = f", winner {self.winner}" if self.winner else ""
        if self.lww and target == "mariadb":
            extra += ", lww_column ts"
        elif self.lww:
            extra += ", by ORA_ROWSCN + registry"
        return f"{self.conflict} ({mode}{extra})"

    def options(self, target: str) -> dict[str, Any]:
        opts: dict[str, Any] = {"write_concurrency": 4}
        if self.conflict is not None:
            opts["conflict"] = self.conflict
        if self.winner is not None:
            opts["winner"] = self.winner
        # Two MariaDBs cannot date rows: last_writer_wins needs the application's
        # column. An OceanBase arbiter dates them itself (ORA_ROWSCN, the registry).
        if self.lww and target == "mariadb":
            opts["lww_column"] = {f"{SRC_DB}.{TABLE}": "ts"}
        return opts


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("none"),
        Policy("filtered", row_filter="id >= 0 AND c <> 'never'"),
        Policy("overwrite", "overwrite"),
        Policy("overwrite_two_way", "overwrite", two_way=True),
        # winner: target, so the forward task (it writes the target) decides
        Policy("site_priority", "site_priority", two_way=True, winner="target"),
        # the arbiter is the forward target (to OceanBase: the OceanBase side)
        Policy("last_writer_wins", "last_writer_wins", two_way=True, lww=True),
    )
}
DEFAULT_POLICIES = (
    "none",
    "filtered",
    "overwrite",
    "overwrite_two_way",
    "site_priority",
    "last_writer_wins",
)


@dataclass
class PolicyResult:
    target: str
    policy: Policy
    backlog_rows: int
    seconds: float
    #: from the process start to the backlog's first commit on the target
    first_commit: float
    conflicts: int
    #: rows of oms.duosync_row_version the run left (target, source); None: no table
    versions: tuple[int | None, int | None]

    @property
    def rows_per_second(self) -> float:
        return self.backlog_rows / self.seconds


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


def _prepare(src_port: int, dst_port: int, rows: int, *, ts: bool = False) -> None:
    _run(src_port, [f"DROP DATABASE IF EXISTS `{SRC_DB}`", f"CREATE DATABASE `{SRC_DB}`"])
    ts_col = ", ts DATETIME(6) NOT NULL" if ts else ""
    ts_val = ", UTC_TIMESTAMP(6)" if ts else ""
    _run(
        src_port,
        [
            f"CREATE TABLE `{SRC_DB}`.`{TABLE}` (id INT PRIMARY KEY, k INT NOT NULL,"
            f" c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL{ts_col}, KEY k_1 (k))",
            f"INSERT INTO `{SRC_DB}`.`{TABLE}` SELECT seq, seq % 1000,"
            f" REPEAT(MD5(seq), 3), MD5(seq){ts_val} FROM seq_1_to_{rows}",
            f"CREATE TABLE `{SRC_DB}`.probe (id INT PRIMARY KEY, ts DOUBLE NOT NULL)",
            f"INSERT INTO `{SRC_DB}`.probe VALUES (1, 0)",
        ],
        SRC_DB,
    )
    _run(dst_port, [f"DROP DATABASE IF EXISTS `{DST_DB}`"])
    # A previous run's checkpoints would make this one resume; its conflicts and row
    # versions would be counted (or, for versions, date this run's rows).
    for port in (dst_port, src_port):
        _forget_task(port)


def _has_oms_table(cur: Any, table: str) -> bool:
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = %s",
        (table,),
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _has_ckpt(port: int) -> bool:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            return _has_oms_table(cur, "duosync_checkpoint")
    finally:
        conn.close()


def _version_filter(cur: Any) -> tuple[str, tuple[str, ...]] | None:
    """A condition selecting this bench's rows of the row-version registry (its
    columns are the feature's own: pick by task, else by database/table name)."""
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = %s",
        (ROW_VERSION_TABLE,),
    )
    columns = {str(r[0]).lower() for r in cur.fetchall()}
    for col in ("pair", "task"):
        if col in columns:
            return f"`{col}` IN (%s, %s)", (TASK, REVERSE_TASK)
    for col in ("tbl", "table_name", "db", "database_name", "db_name", "schema_name"):
        if col in columns:
            return f"`{col}` LIKE %s", ("bench\\_e2e\\_%",)
    return None


def _forget_task(port: int) -> None:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            for table in ("duosync_checkpoint", CONFLICT_TABLE):
                if _has_oms_table(cur, table):
                    cur.execute(
                        f"DELETE FROM oms.`{table}` WHERE task IN (%s, %s)", (TASK, REVERSE_TASK)
                    )
            if _has_oms_table(cur, ROW_VERSION_TABLE):
                where = _version_filter(cur)
                if where is not None:
                    cur.execute(f"DELETE FROM oms.`{ROW_VERSION_TABLE}` WHERE {where[0]}", where[1])
    finally:
        conn.close()


def _conflicts(port: int) -> int:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            if not _has_oms_table(cur, CONFLICT_TABLE):
                return 0
            cur.execute(f"SELECT COUNT(*) FROM oms.`{CONFLICT_TABLE}` WHERE task = %s", (TASK,))
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def _versions(port: int) -> int | None:
    """This bench's rows in the row-version registry (None: no registry there)."""
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            if not _has_oms_table(cur, ROW_VERSION_TABLE):
                return None
            where = _version_filter(cur)
            sql = f"SELECT COUNT(*) FROM oms.`{ROW_VERSION_TABLE}`"
            if where is not None:
                cur.execute(f"{sql} WHERE {where[0]}", where[1])
            else:
                cur.execute(sql)
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def _spec(
    path: Path,
    source_url: str,
    target_url: str,
    conflict: str | None,
    *,
    two_way: bool = False,
    options: dict[str, Any] | None = None,
    row_filter: str | None = None,
) -> Path:
    if options is None:
        options = {"write_concurrency": 4}
        if conflict:
            options["conflict"] = conflict
    topology = "topology: two-way\n" if two_way else ""
    # JSON is YAML: the filters and the options as flow mappings
    filters = f"filters: {json.dumps({f'{SRC_DB}.{TABLE}': row_filter})}\n" if row_filter else ""
    path.write_text(
        f"name: {TASK}\n{topology}source: {source_url}\ntarget: {target_url}\n"
        "types: [schema, full, incremental]\n"
        f"select: {{databases: [{SRC_DB}]}}\n"
        f"rename: {{databases: {{{SRC_DB}: {DST_DB}}}}}\n"
        f"{filters}"
        f"options: {json.dumps(options)}\n"
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


def _wait_applied(
    dst_port: int,
    end: tuple[str, int],
    proc: subprocess.Popen[bytes],
    log: Path | None = None,
    since: tuple[str, int] | None = None,
) -> float | None:
    """Wait until the target's checkpoint reaches *end*; return when (monotonic) it
    was first seen past *since* (None without *since*)."""
    moved: float | None = None
    while True:
        got = _applied(dst_port)
        if since is not None and moved is None and got is not None and got > since:
            moved = time.monotonic()
        if got is not None and got >= end:
            return moved
        if proc.poll() is not None:
            tail = f":\n{log.read_text()[-3000:]}" if log is not None else ""
            raise RuntimeError(f"duosync exited while catching up{tail}")
        time.sleep(0.02)


def _backlog(src_port: int, rows: int, table_rows: int, *, ts: bool = False) -> int:
    """Write about *rows* row changes: UPDATEs of 100 rows and INSERTs of 50."""
    conn = _conn(src_port, SRC_DB)
    written = 0
    next_id = table_rows + 1
    stamp = ", ts = UTC_TIMESTAMP(6)" if ts else ""
    ts_val = ", UTC_TIMESTAMP(6)" if ts else ""
    try:
        with conn.cursor() as cur:
            i = 0
            while written < rows:
                cur.execute("BEGIN")
                for _ in range(5):
                    start = (i * 100) % (table_rows - 100) + 1
                    cur.execute(
                        f"UPDATE `{TABLE}` SET k = k + 1{stamp} WHERE id BETWEEN %s AND %s",
                        (start, start + 99),
                    )
                    written += 100
                    i += 1
                cur.execute(
                    f"INSERT INTO `{TABLE}` SELECT seq, seq % 1000, REPEAT(MD5(seq), 3),"
                    f" MD5(seq){ts_val} FROM seq_{next_id}_to_{next_id + 49}"
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


def _equal(src_port: int, dst_port: int, *, ts: bool = False) -> None:
    cols = "id, k, c, pad, ts" if ts else "id, k, c, pad"
    q = f"SELECT COUNT(*), SUM(CRC32(CONCAT_WS('#', {cols}))) FROM `{TABLE}`"
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


def _sustained(
    spec: Path,
    work: Path,
    log: Path,
    src_port: int,
    dst_port: int,
    *,
    table_rows: int,
    backlog_rows: int,
    ts: bool = False,
) -> tuple[subprocess.Popen[bytes], int, float, float]:
    """Phase 1: sync until caught up, stop, write the backlog, start again and time
    the catch-up. Returns the running sync, the row changes written, the time, and
    the time until the first commit of the backlog (process start, pre-checks and
    the first batch)."""
    proc = _start(spec, work / "home", log)
    try:
        # Let schema + full + catch-up finish, then stop: the backlog goes in while
        # nothing reads it.
        _wait_applied(dst_port, _source_end(src_port), proc, log)
    finally:
        _stop(proc, log)
    before = _applied(dst_port)
    written = _backlog(src_port, backlog_rows, table_rows, ts=ts)
    end = _source_end(src_port)
    started = time.monotonic()
    proc = _start(spec, work / "home", log)
    try:
        moved = _wait_applied(dst_port, end, proc, log, since=before)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    done = time.monotonic()
    first = (moved if moved is not None else done) - started
    return proc, written, done - started, first


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
    src_port = port_of(source_url)
    dst_port = port_of(target_url)
    _prepare(src_port, dst_port, table_rows)
    with tempfile.TemporaryDirectory(prefix="duosync-e2e-") as tmp:
        work = Path(tmp)
        spec = _spec(work / "task.yaml", source_url, target_url, conflict)
        log = work / "duosync.log"
        proc, written, seconds, _first = _sustained(
            spec,
            work,
            log,
            src_port,
            dst_port,
            table_rows=table_rows,
            backlog_rows=backlog_rows,
        )
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


def policy_backlog(
    target: str,
    source_url: str,
    target_url: str,
    policy: Policy,
    *,
    table_rows: int = 100_000,
    backlog_rows: int = 100_000,
    keep_log: Path | None = None,
) -> PolicyResult:
    """Phase 1 (sustained rows/s of a backlog) under *policy*; the table compared
    with the source afterwards, and no conflict may have been recorded."""
    src_port = port_of(source_url)
    dst_port = port_of(target_url)
    _prepare(src_port, dst_port, table_rows, ts=True)
    with tempfile.TemporaryDirectory(prefix="duosync-e2e-") as tmp:
        work = Path(tmp)
        spec = _spec(
            work / "task.yaml",
            source_url,
            target_url,
            policy.conflict,
            two_way=policy.two_way,
            options=policy.options(target),
            row_filter=policy.row_filter,
        )
        log = work / "duosync.log"
        try:
            proc, written, seconds, first = _sustained(
                spec,
                work,
                log,
                src_port,
                dst_port,
                table_rows=table_rows,
                backlog_rows=backlog_rows,
                ts=True,
            )
            _stop(proc, log)
        finally:
            if keep_log is not None and log.exists():
                keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, keep_log)
        _equal(src_port, dst_port, ts=True)
    conflicts = _conflicts(dst_port)
    if conflicts:
        raise BenchError(
            f"mariadb->{target} {policy.name}: {conflicts} conflicts recorded for a backlog"
            " that has none (see: duosync conflicts)"
        )
    versions = (_versions(dst_port), _versions(src_port))
    return PolicyResult(target, policy, written, seconds, first, conflicts, versions)


# -- running -----------------------------------------------------------------------------------


def _urls(directory: Path) -> dict[str, str]:
    statuses = {s.name: s for s in Sandbox(directory).status()}
    if SOURCE_SERVER not in statuses or not statuses[SOURCE_SERVER].serving:
        raise BenchError(
            f"sandbox {directory}: {SOURCE_SERVER} not serving"
            f" (run: .venv/bin/duosync sandbox up --dir {directory})"
        )
    return {name: s.url for name, s in statuses.items() if s.serving}


def _policy_line(result: PolicyResult, base: PolicyResult | None) -> str:
    ratio = f"{result.rows_per_second / base.rows_per_second:.2f}" if base else "-"
    versions = ""
    target_versions, source_versions = result.versions
    if target_versions or source_versions:
        versions = f", row versions: {target_versions or 0} target / {source_versions or 0} source"
    return (
        f"mariadb->{result.target} {result.policy.name:<18} {result.rows_per_second:>8.0f} rows/s"
        f" ({result.backlog_rows} rows in {result.seconds:.2f} s, first commit at"
        f" {result.first_commit:.2f} s) x{ratio} of idempotent"
        f"  [{result.policy.label(result.target)}{versions}]"
    )


def run_policies(
    urls: dict[str, str],
    targets: Sequence[str],
    names: Sequence[str],
    *,
    table_rows: int,
    backlog_rows: int,
    rounds: int,
    log_dir: Path | None,
) -> dict[str, dict[str, PolicyResult]]:
    """Every policy of *names* per target, *rounds* times (the order reversed every
    other round); the best round of each is kept."""
    best: dict[str, dict[str, PolicyResult]] = {}
    for target in targets:
        server = TARGET_SERVERS[target]
        if server not in urls:
            say(f"policies: no {server} in the sandbox, mariadb->{target} skipped")
            continue
        kept = best.setdefault(target, {})
        for r in range(rounds):
            order = list(names) if r % 2 == 0 else list(reversed(names))
            for name in order:
                policy = POLICIES[name]
                say(f"mariadb->{target}: {name}, round {r + 1}/{rounds}")
                keep = log_dir / f"{target}-{name}-{r + 1}.log" if log_dir else None
                got = policy_backlog(
                    target,
                    urls[SOURCE_SERVER],
                    urls[server],
                    policy,
                    table_rows=table_rows,
                    backlog_rows=backlog_rows,
                    keep_log=keep,
                )
                say(f"  {got.rows_per_second:.0f} rows/s ({got.seconds:.2f} s)")
                if name not in kept or got.rows_per_second > kept[name].rows_per_second:
                    kept[name] = got
    return best


def _report(best: dict[str, dict[str, PolicyResult]], names: Sequence[str], as_json: bool) -> float:
    """Print the per-policy lines, the summaries (and JSON); return the lowest ratio."""
    lowest: float | None = None
    doc: dict[str, Any] = {}
    for target, results in best.items():
        base = results.get("none")
        parts: list[str] = []
        for name in names:
            if name not in results:
                continue
            got = results[name]
            print(_policy_line(got, base), flush=True)
            if base is not None and name != "none":
                ratio = got.rows_per_second / base.rows_per_second
                lowest = ratio if lowest is None else min(lowest, ratio)
                parts.append(f"{name} {ratio:.2f}")
            doc.setdefault(target, {})[name] = {
                "rows": got.backlog_rows,
                "seconds": round(got.seconds, 3),
                "first_commit_seconds": round(got.first_commit, 3),
                "rows_per_second": round(got.rows_per_second, 1),
                "ratio_to_idempotent": (
                    round(got.rows_per_second / base.rows_per_second, 3) if base else None
                ),
                "conflict": got.policy.conflict,
                "two_way": got.policy.two_way,
                "options": got.policy.options(target),
                "row_versions_target": got.versions[0],
                "row_versions_source": got.versions[1],
            }
        if base is not None:
            print(
                f"summary mariadb->{target}: idempotent {base.rows_per_second:.0f} rows/s;"
                f" ratios {', '.join(parts) or '-'}",
                flush=True,
            )
    if as_json:
        print(json.dumps({"policies": doc}), flush=True)
    return lowest if lowest is not None else 1.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=f"policies: {', '.join(POLICIES)} (default: {','.join(DEFAULT_POLICIES)})",
    )
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument(
        "--targets", default="mariadb,oceanbase", help="mariadb and/or oceanbase (comma-separated)"
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the table")
    parser.add_argument(
        "--backlog", type=int, default=None, help="row changes (default 200k; 100k with --policies)"
    )
    parser.add_argument(
        "--policies",
        nargs="?",
        const=",".join(DEFAULT_POLICIES),
        default=None,
        metavar="LIST",
        help="measure the backlog's rows/s under each conflict policy (phase 1 only);"
        " LIST: comma-separated names, default all",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="--policies: runs of each (best kept)"
    )
    parser.add_argument(
        "--json", action="store_true", help="--policies: also print one JSON object"
    )
    parser.add_argument(
        "--keep-logs", type=Path, help="--policies: copy each run's duosync log here"
    )
    parser.add_argument(
        "--conflict",
        choices=("ignore", "overwrite"),
        default=None,
        help="without --policies: apply with this conflict policy (checked apply)",
    )
    parser.add_argument("--load-seconds", type=float, default=20.0, help="phase 2's length")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or any(t not in TARGET_SERVERS for t in targets):
        parser.error("--targets: mariadb and/or oceanbase")
    names: list[str] = []
    if args.policies is not None:
        names = [n.strip() for n in args.policies.split(",") if n.strip()]
        unknown = [n for n in names if n not in POLICIES]
        if unknown or not names:
            parser.error(f"--policies: unknown {', '.join(unknown)}; known: {', '.join(POLICIES)}")
        if "none" in names:  # the base first: ratios are to it
            names.remove("none")
        names.insert(0, "none")
    if args.rows < 1000 or args.rounds < 1:
        parser.error("--rows: at least 1000; --rounds: at least 1")
    backlog = args.backlog or (100_000 if names else 200_000)
    directory: Path | None = None
    box: Sandbox | None = None
    lowest = 1.0
    try:
        if args.sandbox is not None:
            urls = _urls(args.sandbox)
        else:
            directory = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
            specs = [s for s in DEFAULT_SERVERS if s.flavor == "mariadb" or "oceanbase" in targets]
            box = Sandbox(directory, specs)
            say(f"starting a sandbox in {directory}")
            urls = {s.name: s.url for s in box.up()}
        if names:
            best = run_policies(
                urls,
                targets,
                names,
                table_rows=args.rows,
                backlog_rows=backlog,
                rounds=args.rounds,
                log_dir=args.keep_logs,
            )
            lowest = _report(best, names, args.json)
        else:
            for target in targets:
                server = TARGET_SERVERS[target]
                if server not in urls:
                    say(f"no {server} in the sandbox, mariadb->{target} skipped")
                    continue
                result = end_to_end(
                    target,
                    urls[SOURCE_SERVER],
                    urls[server],
                    table_rows=args.rows,
                    backlog_rows=backlog,
                    load_seconds=args.load_seconds,
                    conflict=args.conflict,
                )
                print(result.line(), flush=True)
    except (BenchError, DuosyncError, RuntimeError, pymysql.MySQLError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if box is not None:
            box.down(purge=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    if names:
        print(f"ratio={lowest:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
