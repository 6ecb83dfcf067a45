"""OLTP backlog catch-up (part (c) of ``bench/incremental.py``).

sysbench ``oltp_write_only`` (4 tables x 25k rows) on mariadb1 is copied by a
``duosync migrate`` task (schema, full, incremental; write_concurrency 4) until the
target equals the source; the task is stopped (SIGINT), and with nothing reading
the binlog, ``--events`` sysbench transactions (4 threads, random keys: per
transaction an index UPDATE, a non-index UPDATE, a DELETE and an INSERT of one id)
go in between the binlog positions X and Y. Then, each on its own (one at a time,
so that they don't compete for the 2 cores), the same range X..Y is applied by:

- duosync: the task started again (it resumes from its checkpoint, as after any
  downtime), timed from the process start until the target's rows equal the
  source's (an ordered MD5 of each table's rows, source against target);
- ``mariadb-binlog -R --start-position=X --stop-position=Y | mariadb`` into a copy of
  the pre-backlog data on mariadb2 (``--rewrite-db``), timed until the pipe ends;
- a native MariaDB replica (a third mariadbd from the project's sandbox code, with
  ``slave_parallel_threads=4``), ``START SLAVE UNTIL`` Y from X, into a copy of the
  pre-backlog data under the same database name, timed until its SQL thread has
  executed up to Y.

Every copy is compared with the source afterwards. Row changes are counted by
decoding X..Y with ``mariadb-binlog -v`` (not by any tool's counters). During
duosync's catch-up, the CPU time of duosync and of both mariadbd processes
(/proc/PID/stat) and the target's ``SHOW GLOBAL STATUS`` deltas are recorded.

Lag: with the task running, sysbench at ``--rate`` tps (1250 tps x 4 rows = 5k row
changes/s offered) runs a copy of oltp_write_only that also stamps, in each
transaction, its thread's probe row with the server's wall clock
(``UNIX_TIMESTAMP(NOW(6))``, same machine); a poller reads the newest stamp on the
target every 20 ms, and now minus the stamp is a sample. p50/p99 are reported.
To MariaDB, the native replica's own lag is measured the same way afterwards
(duosync stopped): it replicates live from Y, and the probe is read on it. That is
what the saturated 2 cores allow a replicator written in C++ inside the server.

The same catch-up and lag run MariaDB -> OceanBase (no peer there).
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
from oltp_profile import CpuSplit, children, cpu_seconds, profile_summary
from oltp_servers import (
    REPLAY_DB,
    SRC_DB,
    SYSBENCH_THREADS,
    TABLES,
    BenchError,
    BinlogRange,
    RangeCount,
    Server,
    TableDigest,
    binlog_replay,
    check_equal,
    connect_to,
    copy_database,
    count_range,
    digests,
    execute,
    live_replica,
    master_status,
    native_replica,
    replica_server,
    say,
)

from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.sandbox import HOST, ServerStatus

DST_DB = "bench_oltp_dst"
TABLE_ROWS = 25_000
#: probe rows 0..3 are sysbench's threads' lag stamps; this one marks the end of a range
SENTINEL_ID = 100
TASK = "bench-oltp"
DUOSYNC = [sys.executable, "-m", "duosync.cli"]
PY_SPY = Path(sys.executable).parent / "py-spy"
#: oltp_write_only plus one probe stamp per transaction (the lag phase's workload)
PROBE_LUA = """require("oltp_common")
function prepare_statements()
   prepare_begin()
   prepare_commit()
   prepare_index_updates()
   prepare_non_index_updates()
   prepare_delete_inserts()
end
function event()
   begin()
   execute_index_updates()
   execute_non_index_updates()
   execute_delete_inserts()
   con:query("UPDATE probe SET ts = UNIX_TIMESTAMP(NOW(6)) WHERE id = " .. sysbench.tid)
   commit()
end
"""
STATUS_KEYS = (
    "Questions",
    "Com_begin",
    "Com_commit",
    "Com_insert",
    "Com_replace",
    "Com_update",
    "Com_delete",
    "Com_select",
    "Com_set_option",
    "Com_stmt_execute",
    "Handler_write",
    "Handler_update",
    "Handler_delete",
    "Handler_read_key",
    "Handler_commit",
    "Bytes_received",
)


def _sentinel(source: Server) -> float:
    """Stamp the sentinel row (the last transaction of a range); returns the stamp."""
    token = time.time()
    conn = connect_to(source, SRC_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("REPLACE INTO probe (id, ts) VALUES (%s, %s)", (SENTINEL_ID, token))
    finally:
        conn.close()
    return token


# -- sysbench ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SysbenchRun:
    transactions: int
    seconds: float

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds


def sysbench(source: Server, command: str, *options: str, script: str = "oltp_write_only") -> str:
    base = [
        "sysbench",
        script,
        "--db-driver=mysql",
        f"--mysql-host={HOST}",
        f"--mysql-port={source.port}",
        "--mysql-user=root",
        f"--mysql-db={SRC_DB}",
        f"--tables={len(TABLES)}",
        f"--table-size={TABLE_ROWS}",
    ]
    proc = subprocess.run([*base, *options, command], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"sysbench {command} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def _parse_run(output: str) -> SysbenchRun:
    tx = re.search(r"transactions:\s+(\d+)", output)
    total = re.search(r"total time:\s+([\d.]+)s", output)
    if tx is None or total is None:
        raise BenchError(f"unexpected sysbench output:\n{output[-2000:]}")
    return SysbenchRun(int(tx.group(1)), float(total.group(1)))


def prepare_source(source: Server) -> None:
    """A fresh source database: sysbench's 4 tables and the probe table."""
    db = quote_ident(SRC_DB)
    execute(source, [f"DROP DATABASE IF EXISTS {db}", f"CREATE DATABASE {db}"])
    sysbench(source, "prepare")
    conn = connect_to(source, SRC_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE probe (id INT PRIMARY KEY, ts DOUBLE NOT NULL)")
            # rows 0..3: the sysbench threads' lag stamps; SENTINEL_ID: end-of-range marks
            ids = [(i,) for i in (*range(SYSBENCH_THREADS), SENTINEL_ID)]
            cur.executemany("INSERT INTO probe (id, ts) VALUES (%s, 0)", ids)
    finally:
        conn.close()


def global_status(server: Server) -> dict[str, int]:
    conn = connect_to(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS")
            return {str(k): int(v) for k, v in cur.fetchall() if k in STATUS_KEYS}
    finally:
        conn.close()


# -- the duosync task ---------------------------------------------------------------------------


@dataclass
class Task:
    """One ``duosync migrate`` task to a target, run (and resumed) in a fresh home."""

    source: Server
    target: Server
    work: Path
    profile: Path | None = None
    profile_gil: bool = False
    proc: subprocess.Popen[bytes] | None = None
    under_spy: bool = False

    @property
    def log(self) -> Path:
        return self.work / "duosync.log"

    def spec(self) -> Path:
        path = self.work / "task.yaml"
        options = {"write_concurrency": 4}
        path.write_text(
            f"name: {TASK}\nsource: {self.source.url}\ntarget: {self.target.url}\n"
            "types: [schema, full, incremental]\n"
            f"select: {{databases: [{SRC_DB}]}}\n"
            f"rename: {{databases: {{{SRC_DB}: {DST_DB}}}}}\n"
            f"options: {json.dumps(options)}\n"
        )
        return path

    def start(self, *, profiled: bool = False) -> None:
        cmd = [*DUOSYNC, "--home", str(self.work / "home"), "migrate", "-f", str(self.spec())]
        if profiled and self.profile is not None:
            # raw + thread names: the samples can be split by thread (reader, apply, main)
            spy = [str(PY_SPY), "record", "--format", "raw", "--threads", "--rate", "100"]
            spy += ["--gil"] if self.profile_gil else []
            cmd = [*spy, "--subprocesses", "-o", str(self.profile), "--", *cmd]
        env = dict(os.environ, DUOSYNC_PLAIN="1")
        self.under_spy = profiled and self.profile is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)

    def pid(self) -> int | None:
        """The duosync process (py-spy's child when profiled)."""
        if self.proc is None:
            return None
        if not self.under_spy:
            return self.proc.pid
        for _ in range(100):
            kids = children(self.proc.pid)
            if kids:
                return kids[0]
            time.sleep(0.05)
        return None

    def kill(self) -> None:
        """After a failure: no duosync (nor py-spy) may outlive the bench."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pid = self.pid()
        if pid is not None and pid != self.proc.pid:
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()

    def check_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"duosync exited:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = self.pid()
        if pid is not None and self.proc.poll() is None:
            os.kill(pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if code != 0:
            raise BenchError(f"duosync failed ({code}):\n{self.log.read_text()[-3000:]}")


def _sentinel_seen(conn: pymysql.connections.Connection[Any], token: float) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ts FROM probe WHERE id = %s", (SENTINEL_ID,))
            row = cur.fetchone()
    except pymysql.err.ProgrammingError:  # the table is not there yet (schema phase)
        return False
    return row is not None and float(row[0]) == token


def wait_equal(
    task: Task,
    token: float,
    want: list[TableDigest],
    timeout: float,
    on_seen: Callable[[], None] | None = None,
) -> float:
    """Wait until the target holds the source's rows; returns (monotonic) when the
    comparison that found them equal started. The sentinel row (the last source
    transaction) is polled first, every 20 ms, because a digest of 100k rows costs
    the target CPU that the catch-up would otherwise have."""
    deadline = time.monotonic() + timeout
    conn: pymysql.connections.Connection[Any] | None = None
    try:
        while time.monotonic() < deadline:
            task.check_running()
            if conn is None:
                try:
                    conn = connect_to(task.target, DST_DB)
                except pymysql.err.MySQLError:  # no database yet
                    time.sleep(0.2)
                    continue
            if _sentinel_seen(conn, token):
                at = time.monotonic()
                if on_seen is not None:
                    on_seen()
                if digests(task.target, DST_DB) == want:
                    return at
            time.sleep(0.02)
    finally:
        if conn is not None:
            conn.close()
    raise BenchError(f"{task.target.name}: not equal to the source after {timeout:.0f} s")


@dataclass
class Snapshot:
    """CPU seconds and the target's status counters at one moment."""

    at: float = 0.0
    source_cpu: float = 0.0
    target_cpu: float = 0.0
    duosync_cpu: float = 0.0
    status: dict[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, task: Task, duosync_pid: int | None) -> Snapshot:
        ours = cpu_seconds(duosync_pid)
        if duosync_pid is not None:
            ours += sum(cpu_seconds(c) for c in children(duosync_pid))
        status = global_status(task.target) if task.target.flavor == "mariadb" else {}
        return cls(
            time.monotonic(),
            cpu_seconds(task.source.pid),
            cpu_seconds(task.target.pid),
            ours,
            status,
        )


@dataclass(frozen=True)
class CatchUp:
    seconds: float
    cpu: CpuSplit
    #: the target's SHOW GLOBAL STATUS deltas over the catch-up (MariaDB only)
    status: dict[str, int]
    profiled: bool


def catch_up(task: Task, token: float, want: list[TableDigest], *, profiled: bool) -> CatchUp:
    """Start the stopped task and time it until the target equals the source (the
    process start, its pre-checks and resume included)."""
    before = Snapshot.take(task, None)
    task.start(profiled=profiled)
    pid = task.pid()
    seen = Snapshot()

    def on_seen() -> None:
        # Taken when the sentinel shows, before the digests: their CPU is not the sync's.
        nonlocal seen
        seen = Snapshot.take(task, pid)

    at = wait_equal(task, token, want, timeout=900, on_seen=on_seen)
    seconds = at - before.at
    cpu = CpuSplit(
        seen.duosync_cpu,
        seen.source_cpu - before.source_cpu,
        seen.target_cpu - before.target_cpu,
        seconds,
    )
    delta = {k: seen.status.get(k, 0) - before.status.get(k, 0) for k in before.status}
    return CatchUp(seconds, cpu, delta, profiled)


# -- lag at a fixed offered load -----------------------------------------------------------------


@dataclass(frozen=True)
class Lag:
    p50: float
    p99: float
    samples: int
    run: SysbenchRun


def _sample_lag(
    target: Server, database: str, since: float, stop: threading.Event, out: list[float]
) -> None:
    conn = connect_to(target, database)
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT MAX(ts) FROM probe WHERE id < %s", (SYSBENCH_THREADS,))
                row = cur.fetchone()
                if row and row[0] is not None and float(row[0]) > since:
                    out.append(max(0.0, time.time() - float(row[0])))
                time.sleep(0.02)
    finally:
        conn.close()


def measure_lag(
    task: Task, rate: int, seconds: float, copy: tuple[Server, str] | None = None
) -> Lag:
    """The task runs (caught up) while sysbench offers *rate* tps with probe stamps;
    the probe is read in the task's target, or in *copy* (a server and database
    that another replicator keeps up to date)."""
    script = task.work / "oltp_probe.lua"
    script.write_text(PROBE_LUA)
    stop = threading.Event()
    samples: list[float] = []
    server, database = copy if copy is not None else (task.target, DST_DB)
    poller = threading.Thread(
        target=_sample_lag, args=(server, database, time.time(), stop, samples)
    )
    poller.start()
    try:
        out = sysbench(
            task.source,
            "run",
            f"--threads={SYSBENCH_THREADS}",
            f"--rate={rate}",
            f"--time={seconds:.0f}",
            script=str(script),
        )
    finally:
        stop.set()
        poller.join()
    # The first second holds the sync settling into the load (as incremental_e2e.py).
    steady = samples[50:] or samples
    if len(steady) < 2:
        raise BenchError("lag: the probe never reached the target")
    q = statistics.quantiles(steady, n=100)
    return Lag(statistics.median(steady), q[98], len(steady), _parse_run(out))


# -- running a target --------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    events: int = 40_000
    #: the lag phase's sysbench tps (x4 row changes per transaction)
    rate: int = 1250
    lag_seconds: float = 20.0
    replica_mode: str = "optimistic"
    #: py-spy raw profile of the MariaDB catch-up (the timing is then under py-spy)
    profile: Path | None = None
    #: only samples holding the GIL: where the Python CPU goes, not what waits
    profile_gil: bool = False


@dataclass(frozen=True)
class Backlog:
    range: BinlogRange
    count: RangeCount
    run: SysbenchRun
    token: float
    want: list[TableDigest]


@dataclass
class TargetResult:
    target: Server
    backlog: Backlog
    catch_up: CatchUp
    replica_mode: str
    lag: Lag | None = None
    replica_lag: Lag | None = None
    replay_seconds: float | None = None
    replica_seconds: float | None = None


def _forget_task(server: Server) -> None:
    """A previous run's checkpoint would make this task resume instead of copying."""
    conn = connect_to(server)
    try:
        with conn.cursor() as cur:
            for table in ("duosync_checkpoint", "duosync_conflict"):
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = %s",
                    (table,),
                )
                row = cur.fetchone()
                if row and row[0]:
                    cur.execute(f"DELETE FROM {qualified('oms', table)} WHERE task = %s", (TASK,))
    finally:
        conn.close()


def initial_sync(task: Task) -> None:
    """Fresh source data, copied by the task (schema, full, incremental) until the
    target equals it; then the task is stopped."""
    say(f"oltp: preparing {len(TABLES)} x {TABLE_ROWS} rows, syncing to {task.target.name}")
    prepare_source(task.source)
    execute(task.target, [f"DROP DATABASE IF EXISTS {quote_ident(DST_DB)}"])
    _forget_task(task.target)
    task.start()
    try:
        token = _sentinel(task.source)
        wait_equal(task, token, digests(task.source, SRC_DB), timeout=900)
    finally:
        task.stop()


def make_backlog(source: Server, events: int) -> Backlog:
    """sysbench writes the backlog while nothing reads the binlog; the sentinel is
    its last transaction."""
    start = master_status(source)
    say(f"oltp: {events} sysbench transactions from {start.file}:{start.pos}")
    out = sysbench(source, "run", f"--threads={SYSBENCH_THREADS}", f"--events={events}", "--time=0")
    token = _sentinel(source)
    rng = BinlogRange(start, master_status(source))
    count = count_range(source, rng)
    return Backlog(rng, count, _parse_run(out), token, digests(source, SRC_DB))


def lag_phase(task: Task, opts: Options) -> Lag:
    task.start()
    try:
        wait_equal(task, _sentinel(task.source), digests(task.source, SRC_DB), timeout=300)
        say(f"oltp: lag at {opts.rate} tps for {opts.lag_seconds:.0f} s")
        lag = measure_lag(task, opts.rate, opts.lag_seconds)
        wait_equal(task, _sentinel(task.source), digests(task.source, SRC_DB), timeout=300)
    finally:
        task.stop()
    return lag


def run_mariadb(task: Task, opts: Options) -> TargetResult:
    """duosync, mariadb-binlog replay and a native replica on the same range."""
    source, target = task.source, task.target
    initial_sync(task)
    with replica_server() as replica:
        # Both copies are the pre-backlog data: nothing writes the source now.
        copy_database(source, target, REPLAY_DB)
        copy_database(source, replica, SRC_DB)
        backlog = make_backlog(source, opts.events)
        say("oltp: duosync catch-up")
        got = catch_up(task, backlog.token, backlog.want, profiled=opts.profile is not None)
        task.stop()
        result = TargetResult(target, backlog, got, opts.replica_mode)
        check_equal(source, target, DST_DB, "duosync")
        say("oltp: mariadb-binlog | mariadb")
        result.replay_seconds = binlog_replay(source, target, backlog.range)
        check_equal(source, target, REPLAY_DB, "mariadb-binlog replay")
        say(f"oltp: native replica ({opts.replica_mode})")
        result.replica_seconds = native_replica(source, replica, backlog.range, opts.replica_mode)
        check_equal(source, replica, SRC_DB, "native replica")
        execute(target, [f"DROP DATABASE IF EXISTS {quote_ident(REPLAY_DB)}"])
        result.lag = lag_phase(task, opts)
        # The replica's own lag at the same offered load, duosync stopped: what the
        # machine allows a replicator that is not ours.
        with live_replica(source, replica, backlog.range.end, opts.replica_mode):
            say(f"oltp: native replica lag at {opts.rate} tps for {opts.lag_seconds:.0f} s")
            result.replica_lag = measure_lag(task, opts.rate, opts.lag_seconds, (replica, SRC_DB))
            _wait_replica_equal(source, replica)
    return result


def _wait_replica_equal(source: Server, replica: Server) -> None:
    """The replica has applied everything the source wrote, and holds its rows."""
    deadline = time.monotonic() + 300
    want = digests(source, SRC_DB)
    while digests(replica, SRC_DB) != want:
        if time.monotonic() > deadline:
            raise BenchError("native replica: not equal to the source 300 s after its lag phase")
        time.sleep(0.2)


def run_oceanbase(task: Task, opts: Options) -> TargetResult:
    initial_sync(task)
    backlog = make_backlog(task.source, opts.events)
    say("oltp: duosync catch-up")
    got = catch_up(task, backlog.token, backlog.want, profiled=False)
    task.stop()
    check_equal(task.source, task.target, DST_DB, "duosync")
    result = TargetResult(task.target, backlog, got, opts.replica_mode)
    result.lag = lag_phase(task, opts)
    return result


# -- report ------------------------------------------------------------------------------------


def _per_tx(status: dict[str, int], transactions: int) -> str:
    keys = ["Com_replace", "Com_insert", "Com_update", "Com_delete", "Com_begin", "Com_commit"]
    keys += ["Questions", "Handler_write", "Handler_update", "Handler_delete", "Handler_commit"]
    return ", ".join(f"{k} {status.get(k, 0) / transactions:.3f}" for k in keys)


def report(result: TargetResult) -> list[str]:
    b, c = result.backlog, result.catch_up
    rows = b.count.backlog_rows
    ours = rows / c.seconds
    name = f"oltp mariadb->{result.target.name}"
    lines = [
        f"{name}: backlog {b.run.transactions} sysbench transactions ({b.run.tps:.0f} tps),"
        f" {rows} row changes decoded by mariadb-binlog (x4 would be {4 * b.run.transactions}),"
        f" {b.count.transactions} transactions, binlog {b.range.start.file}:{b.range.start.pos}"
        f"..{b.range.end.file}:{b.range.end.pos}",
        f"{name}: duosync catch-up {ours:,.0f} rows/s ({rows} rows in {c.seconds:.2f} s,"
        f" process start included{', under py-spy' if c.profiled else ''})",
        f"{name}: {c.cpu.line()}",
    ]
    if c.status:
        lines.append(
            f"{name}: target per source transaction: {_per_tx(c.status, b.count.transactions)}"
            f" (Com_select {c.status.get('Com_select', 0)} includes the bench's polls)"
        )
    for label, seconds in (
        ("mariadb-binlog | mariadb", result.replay_seconds),
        (
            f"native replica (slave_parallel_threads=4, {result.replica_mode})",
            result.replica_seconds,
        ),
    ):
        if seconds is not None:
            lines.append(
                f"{name}: {label} {rows / seconds:,.0f} rows/s ({seconds:.2f} s);"
                f" duosync/peer {ours / (rows / seconds):.2f}"
            )
    for who, lag in (("duosync", result.lag), ("native replica", result.replica_lag)):
        if lag is not None:
            lines.append(
                f"{name}: {who} lag at {lag.run.tps:.0f} tps = {4 * lag.run.tps:,.0f} row"
                f" changes/s offered (+1 probe row per transaction): p50"
                f" {lag.p50 * 1000:.0f} ms, p99 {lag.p99 * 1000:.0f} ms ({lag.samples} samples)"
            )
    return lines


# -- entry point -------------------------------------------------------------------------------


def oltp_backlog(
    statuses: Sequence[ServerStatus], targets: Sequence[str], opts: Options
) -> list[str]:
    """Run the part for each target server name; returns the lines to print."""
    servers = {s.name: Server.of(s) for s in statuses if s.serving}
    source = servers.get("mariadb1")
    if source is None:
        raise BenchError("oltp: no mariadb1 serving")
    lines: list[str] = []
    for name in targets:
        if name not in servers:
            say(f"oltp: no {name} in the sandbox, skipped")
            continue
        with tempfile.TemporaryDirectory(prefix="duosync-oltp-") as tmp:
            task = Task(source, servers[name], Path(tmp), opts.profile, opts.profile_gil)
            try:
                if servers[name].flavor == "mariadb":
                    result = run_mariadb(task, opts)
                else:
                    result = run_oceanbase(task, opts)
            finally:
                task.kill()
                dbs = (DST_DB, REPLAY_DB) if servers[name].flavor == "mariadb" else (DST_DB,)
                execute(servers[name], [f"DROP DATABASE IF EXISTS {quote_ident(d)}" for d in dbs])
                _forget_task(servers[name])
        lines += report(result)
    execute(source, [f"DROP DATABASE IF EXISTS {quote_ident(SRC_DB)}"])
    if opts.profile is not None and opts.profile.exists():
        lines += profile_summary(opts.profile)
    return lines
