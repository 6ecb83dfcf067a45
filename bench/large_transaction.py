"""Peak memory of the sync process against the size of one source transaction.

Incremental sync applies a large source transaction as it is read
(``sync.streamed``): the stream yields ``Fragment``s of ``options.fragment_rows``
rows, written in one target transaction. This bench shows that the process's
memory is bounded by the fragment size, not by the transaction, for both change
streams:

- ``mariadb``: mariadb1 -> mariadb2, read from the binlog;
- ``oceanbase``: oceanbase1 -> mariadb2, read from the trigger log.

For each stream kind and each transaction size N, on a fresh source database with
one table ``big (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(220))``:

1. ``duosync migrate`` (schema, full, incremental; a fresh ``--home`` and a task
   name of its own) starts as a subprocess; the bench waits until the task's
   checkpoint rows exist on the target (incremental sync has started);
2. ONE source transaction inserts N rows of ~220 bytes (MariaDB: from the
   Sequence engine; OceanBase: a cross join of a digits table kept in a helper
   database the task does not select), and with ``--updates`` a second one
   updates all N rows (two images per row);
3. while it is applied, the process's VmRSS is sampled every 0.2 s; its VmHWM is
   reset before the transaction (``/proc/PID/clear_refs``) and read at the end;
4. the apply time runs from the source COMMIT until the target shows the
   transaction's last row (the target transaction commits whole, so that is when
   every row shows); then ``COUNT(*)`` and ``SUM(CRC32(CONCAT_WS('|', id, v,
   pad)))`` of source and target must be equal (CRC32 exists on seekdb too). The
   tool's own counters are never read.

The largest MariaDB size that fits is also run once with ``fragment_rows`` at its
maximum (1,000,000, with a transaction of 1,000,000 rows): the transaction then is
one fragment, held whole, as it was before fragments: the unbounded figure.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox
    .venv/bin/python bench/large_transaction.py --sandbox /tmp/benchbox

Printed: one line per transaction (stream kind, operation, rows, fragment_rows,
peak RSS MB, the RSS before it, apply seconds, rows/s; or the error), and as the
last line ``peak_rss_mb=X``: the highest peak of the runs with the default
fragment size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
from sandbox_urls import port_of

from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, Sandbox
from duosync.spec_options import Options

TABLE = "big"
SRC_DB = "bench_lt_src"
#: on the target, followed by the source server's name (runs of both kinds may overlap)
DST_DB = "bench_lt_dst"
#: the OceanBase row generator's digits table: in a database the task does not select
HELPER_DB = "bench_lt_helper"
TARGET_SERVER = "mariadb2"
DUOSYNC = [sys.executable, "-m", "duosync.cli"]
DEFAULT_FRAGMENT_ROWS = int(Options.model_fields["fragment_rows"].default)
MAX_FRAGMENT_ROWS = 1_000_000
SAMPLE_SECONDS = 0.2
#: seconds (microseconds for OceanBase) a source statement may run
SOURCE_TIMEOUT = 7200
#: the checksum both servers compute the same way
CHECKSUM_SQL = "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, v, pad))) FROM {table}"


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StreamKind:
    """A source server and the change stream duosync reads from it."""

    name: str
    server: str
    stream: str
    default_sizes: tuple[int, ...]


KINDS: dict[str, StreamKind] = {
    k.name: k
    for k in (
        StreamKind("mariadb", "mariadb1", "binlog", (100_000, 1_000_000, 4_000_000)),
        StreamKind("oceanbase", "oceanbase1", "trigger log", (100_000, 1_000_000)),
    )
}


@dataclass(frozen=True)
class Server:
    name: str
    url: str

    @property
    def port(self) -> int:
        return port_of(self.url)

    @property
    def oceanbase(self) -> bool:
        return self.url.startswith("oceanbase:")


@dataclass(frozen=True)
class Plan:
    """One run: a fresh task syncing one large transaction (and its update)."""

    kind: StreamKind
    rows: int
    #: None: the tool's default (not written in the spec)
    fragment_rows: int | None
    updates: bool

    @property
    def fragments(self) -> int:
        return self.fragment_rows or DEFAULT_FRAGMENT_ROWS


@dataclass
class Result:
    """One source transaction's apply."""

    plan: Plan
    op: str
    baseline_mb: float = 0.0
    #: the higher of VmHWM (reset before the transaction) and the sampled VmRSS
    peak_mb: float = 0.0
    source_seconds: float = 0.0
    apply_seconds: float = 0.0
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.plan.rows / self.apply_seconds if self.apply_seconds else 0.0

    def line(self) -> str:
        head = (
            f"{self.plan.kind.name:<9} {self.op:<6} rows={self.plan.rows:<8}"
            f" fragment_rows={self.plan.fragments:<7}"
        )
        if self.error is not None:
            return f"{head} FAILED after {self.source_seconds:.1f} s: {self.error}"
        return (
            f"{head} peak_rss_mb={self.peak_mb:.0f} apply_s={self.apply_seconds:.2f}"
            f" rows_s={self.rows_per_second:.0f}"
            f"  (RSS before {self.baseline_mb:.0f} MB; source transaction"
            f" {self.source_seconds:.1f} s)"
        )


@dataclass
class Sampler:
    """VmRSS of a process every SAMPLE_SECONDS, in a thread; the maximum kept."""

    pid: int
    peak_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        _reset_hwm(self.pid)
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = _status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.peak_kb = max(self.peak_kb, rss)
            self._stop.wait(SAMPLE_SECONDS)

    def finish(self) -> float:
        """Stop sampling; the peak in MB (VmHWM included)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        hwm = _status_kb(self.pid, "VmHWM") or 0
        return max(hwm, self.peak_kb) / 1024


def _status_kb(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _reset_hwm(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: "5" to clear_refs), so that the
    peak read afterwards is this transaction's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        say(f"  (cannot reset VmHWM of {pid}: {exc}; the peak includes earlier phases)")


# -- SQL ------------------------------------------------------------------------------------------


def _conn(server: Server, db: str | None = None) -> pymysql.connections.Connection[Any]:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=server.port,
        user="root",
        database=db,
        autocommit=True,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
    )
    with conn.cursor() as cur:
        if server.oceanbase:  # seekdb stops a statement after 10 s by default
            cur.execute("SET ob_query_timeout = %s", (SOURCE_TIMEOUT * 1_000_000,))
            cur.execute("SET ob_trx_timeout = %s", (SOURCE_TIMEOUT * 1_000_000,))
    return conn


def _execute(server: Server, statements: Sequence[str], db: str | None = None) -> None:
    conn = _conn(server, db)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def _one(server: Server, sql: str, args: Sequence[Any] = (), db: str | None = None) -> Any:
    conn = _conn(server, db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()
    finally:
        conn.close()


def _dst_db(source: Server) -> str:
    return f"{DST_DB}_{source.name}"


def _prepare(source: Server, target: Server) -> None:
    """A fresh source database with the empty table; no target database."""
    _execute(
        source,
        [
            f"DROP DATABASE IF EXISTS {quote_ident(SRC_DB)}",
            f"CREATE DATABASE {quote_ident(SRC_DB)}",
            f"CREATE TABLE {qualified(SRC_DB, TABLE)} (id BIGINT PRIMARY KEY,"
            " v INT NOT NULL, pad VARCHAR(220))",
        ],
    )
    _execute(target, [f"DROP DATABASE IF EXISTS {quote_ident(_dst_db(source))}"])
    if source.oceanbase:
        digits = qualified(HELPER_DB, "digits")
        _execute(
            source,
            [
                f"CREATE DATABASE IF NOT EXISTS {quote_ident(HELPER_DB)}",
                f"DROP TABLE IF EXISTS {digits}",
                f"CREATE TABLE {digits} (d INT PRIMARY KEY)",
                f"INSERT INTO {digits} VALUES " + ", ".join(f"({d})" for d in range(10)),
            ],
        )


def _generator(rows: int) -> str:
    """OceanBase: a derived table of n = 1 .. 10^k (k digits, 10^k >= rows)."""
    width = max(1, len(str(rows - 1)))
    digits = qualified(HELPER_DB, "digits")
    terms = " + ".join(f"{10**i} * d{i}.d" for i in range(width))
    joins = " CROSS JOIN ".join(f"{digits} d{i}" for i in range(width))
    return f"(SELECT {terms} + 1 AS n FROM {joins})"


def _insert_sql(source: Server, rows: int) -> tuple[str, tuple[int, ...]]:
    big = qualified(SRC_DB, TABLE)
    if source.oceanbase:
        return (
            f"INSERT INTO {big} SELECT g.n, MOD(g.n, 1000), REPEAT(CHAR(65 + MOD(g.n, 26)), 220)"
            f" FROM {_generator(rows)} g WHERE g.n <= %s",
            (rows,),
        )
    # The Sequence engine's table name carries the bound: it cannot be a parameter.
    seq = quote_ident(f"seq_1_to_{rows}")
    return (
        f"INSERT INTO {big} SELECT seq, MOD(seq, 1000), REPEAT(CHAR(65 + MOD(seq, 26)), 220)"
        f" FROM {seq}",
        (),
    )


def _update_sql() -> tuple[str, tuple[int, ...]]:
    big = qualified(SRC_DB, TABLE)
    return f"UPDATE {big} SET v = v + 1, pad = REPEAT(CHAR(97 + MOD(id, 26)), 220)", ()


def _transaction(source: Server, sql: str, args: tuple[int, ...]) -> float:
    """Run *sql* as one explicit transaction; return the time of its COMMIT."""
    conn = _conn(source, SRC_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(sql, args or None)
            cur.execute("COMMIT")
            return time.monotonic()
    finally:
        conn.close()


def _checksum(server: Server, db: str) -> tuple[int, int]:
    row = _one(server, CHECKSUM_SQL.format(table=qualified(db, TABLE)))
    return int(row[0]), int(row[1] or 0)


def _cleanup(source: Server, target: Server, task: str) -> None:
    _execute(source, [f"DROP DATABASE IF EXISTS {quote_ident(SRC_DB)}"])
    _execute(target, [f"DROP DATABASE IF EXISTS {quote_ident(_dst_db(source))}"])
    for server in (target, source):
        conn = _conn(server)
        try:
            with conn.cursor() as cur:
                if _has_checkpoints(cur):
                    cur.execute("DELETE FROM oms.duosync_checkpoint WHERE task = %s", (task,))
        finally:
            conn.close()


def _has_checkpoints(cur: Any) -> bool:
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = 'duosync_checkpoint'"
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _checkpoint_rows(target: Server, task: str) -> int:
    """The task's checkpoint rows on the target (0 before its sync started)."""
    conn = _conn(target)
    try:
        with conn.cursor() as cur:
            if not _has_checkpoints(cur):
                return 0
            cur.execute("SELECT COUNT(*) FROM oms.duosync_checkpoint WHERE task = %s", (task,))
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def _marker(target: Server, db: str, rows: int) -> int | None:
    """v of the transaction's last row on the target (None: not there yet)."""
    try:
        row = _one(target, f"SELECT v FROM {qualified(db, TABLE)} WHERE id = %s", (rows,))
    except pymysql.err.ProgrammingError:  # the table not created yet
        return None
    return None if row is None else int(row[0])


# -- the sync process -----------------------------------------------------------------------------


@dataclass
class Task:
    """A running ``duosync migrate`` of its own name, home and log."""

    name: str
    work: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.work / "duosync.log"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def check_alive(self, what: str) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"duosync exited ({self.proc.returncode}) {what}:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            say(f"  duosync {self.proc.pid} did not stop in 120 s: killed")
            self.proc.kill()
            self.proc.wait()


def _start(plan: Plan, source: Server, target: Server, work: Path) -> Task:
    name = f"bench-lt-{plan.kind.name}-{plan.rows}-{plan.fragments}-{os.getpid()}-{time.time_ns()}"
    options: dict[str, Any] = {}
    if plan.fragment_rows is not None:
        options["fragment_rows"] = plan.fragment_rows
    spec = work / "task.yaml"
    # JSON is YAML: the options as a flow mapping
    spec.write_text(
        f"name: {name}\nsource: {source.url}\ntarget: {target.url}\n"
        "types: [schema, full, incremental]\n"
        f"select: {{databases: [{SRC_DB}]}}\n"
        f"rename: {{databases: {{{SRC_DB}: {_dst_db(source)}}}}}\n"
        f"options: {json.dumps(options)}\n"
    )
    env = dict(os.environ, DUOSYNC_PLAIN="1")
    with (work / "duosync.log").open("ab") as out:
        proc = subprocess.Popen(
            [*DUOSYNC, "--home", str(work / "home"), "migrate", "-f", str(spec)],
            stdout=out,
            stderr=out,
            env=env,
        )
    return Task(name, work, proc)


def _wait(task: Task, what: str, done: Callable[[], bool], timeout: float, every: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        task.check_alive(f"before {what}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- one run --------------------------------------------------------------------------------------


def _apply_one(
    plan: Plan, op: str, source: Server, target: Server, task: Task, timeout: float
) -> Result:
    """One source transaction (*op*: insert or update), measured."""
    result = Result(plan, op)
    sql, args = _insert_sql(source, plan.rows) if op == "insert" else _update_sql()
    expected = plan.rows % 1000 + (1 if op == "update" else 0)
    sampler = Sampler(task.proc.pid)
    result.baseline_mb = (_status_kb(task.proc.pid, "VmRSS") or 0) / 1024
    sampler.start()
    started = time.monotonic()
    try:
        try:
            committed = _transaction(source, sql, args)
        except pymysql.MySQLError as exc:
            result.source_seconds = time.monotonic() - started
            result.error = f"the source refused the transaction: {exc}"
            return result
        result.source_seconds = committed - started
        say(f"  {op}: source committed {plan.rows} rows in {result.source_seconds:.1f} s")
        _wait(
            task,
            f"the {op} of {plan.rows} rows on the target",
            lambda: _marker(target, _dst_db(source), plan.rows) == expected,
            timeout,
            0.1,
        )
        result.apply_seconds = time.monotonic() - committed
    finally:
        result.peak_mb = sampler.finish()
    _compare(source, target, task, op)
    return result


def _compare(source: Server, target: Server, task: Task, op: str) -> None:
    """Source and target rows equal (count, checksum); a little grace for a
    target that shows the last row before the others (it should not)."""
    want = _checksum(source, SRC_DB)
    deadline = time.monotonic() + 30
    while True:
        got = _checksum(target, _dst_db(source))
        if got == want:
            return
        if time.monotonic() > deadline:
            raise BenchError(
                f"after the {op}, the target differs from the source: (count, checksum)"
                f" {got} vs {want}"
            )
        task.check_alive(f"comparing after the {op}")
        time.sleep(1)


def run(plan: Plan, source: Server, target: Server, timeout: float) -> list[Result]:
    """One fresh task; its insert (and update) transaction; the results."""
    say(f"{plan.kind.name} ({plan.kind.stream}): {plan.rows} rows, fragment_rows {plan.fragments}")
    _prepare(source, target)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="duosync-lt-") as tmp:
        task = _start(plan, source, target, Path(tmp))
        try:
            _wait(
                task,
                "incremental sync",
                lambda: _checkpoint_rows(target, task.name) > 0,
                300,
                0.5,
            )
            for op in ("insert", "update") if plan.updates else ("insert",):
                result = _apply_one(plan, op, source, target, task, timeout)
                results.append(result)
                say(f"  {result.line()}")
                if result.error is not None:
                    break
        except (BenchError, pymysql.MySQLError) as exc:
            op = "update" if results else "insert"
            results.append(Result(plan, op, error=f"{exc}"))
            say(f"  {results[-1].line()}\n  duosync log:\n{task.tail()}")
        finally:
            task.stop()
        _cleanup(source, target, task.name)
    return results


# -- running --------------------------------------------------------------------------------------


def _servers(directory: Path | None) -> tuple[dict[str, Server], Sandbox | None, Path | None]:
    """The sandbox's serving servers (a throwaway sandbox without *directory*)."""
    if directory is not None:
        statuses = Sandbox(directory).status()
        found = {s.name: Server(s.name, s.url) for s in statuses if s.serving}
        if TARGET_SERVER not in found:
            raise BenchError(
                f"sandbox {directory}: {TARGET_SERVER} not serving"
                f" (run: .venv/bin/duosync sandbox up --dir {directory})"
            )
        return found, None, None
    tmp = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
    box = Sandbox(tmp, list(DEFAULT_SERVERS))
    say(f"starting a sandbox in {tmp}")
    return {s.name: Server(s.name, s.url) for s in box.up()}, box, tmp


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(s.replace("_", "")) for s in text.split(",") if s.strip())
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("comma-separated row counts, each at least 1000")
    return sizes


def _plans(args: argparse.Namespace) -> list[Plan]:
    plans: list[Plan] = []
    for name in args.kinds.split(","):
        kind = KINDS[name.strip()]
        sizes = args.sizes or kind.default_sizes
        if kind.name == "oceanbase" and args.oceanbase_sizes:
            sizes = args.oceanbase_sizes
        for rows in sizes:
            plans.append(Plan(kind, rows, args.fragment_rows, args.updates))
        if kind.name == "mariadb" and args.unbounded_rows:
            rows = min(args.unbounded_rows, MAX_FRAGMENT_ROWS)
            plans.append(Plan(kind, rows, MAX_FRAGMENT_ROWS, args.updates))
    return plans


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument("--kinds", default="mariadb,oceanbase", help="mariadb and/or oceanbase")
    parser.add_argument(
        "--sizes", type=_sizes, help="rows per transaction (default: 100k,1M,4M; OceanBase 100k,1M)"
    )
    parser.add_argument("--oceanbase-sizes", type=_sizes, help="OceanBase's sizes (over --sizes)")
    parser.add_argument(
        "--fragment-rows",
        type=int,
        help=f"options.fragment_rows (default the tool's, {DEFAULT_FRAGMENT_ROWS})",
    )
    parser.add_argument(
        "--unbounded-rows",
        type=int,
        default=MAX_FRAGMENT_ROWS,
        help="MariaDB: also this many rows with fragment_rows 1,000,000 (held whole); 0: skip",
    )
    parser.add_argument(
        "--updates", action="store_true", help="also update all N rows in a second transaction"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds one transaction may take to apply"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if any(k.strip() not in KINDS for k in args.kinds.split(",")):
        parser.error("--kinds: mariadb and/or oceanbase")
    if args.fragment_rows is not None and not 100 <= args.fragment_rows <= MAX_FRAGMENT_ROWS:
        parser.error(f"--fragment-rows: 100 .. {MAX_FRAGMENT_ROWS}")
    results: list[Result] = []
    box: Sandbox | None = None
    directory: Path | None = None
    try:
        servers, box, directory = _servers(args.sandbox)
        for plan in _plans(args):
            if plan.kind.server not in servers:
                say(f"no {plan.kind.server} in the sandbox: {plan.kind.name} skipped")
                continue
            results += run(plan, servers[plan.kind.server], servers[TARGET_SERVER], args.timeout)
    except (BenchError, DuosyncError, pymysql.MySQLError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if box is not None:
            box.down(purge=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    for result in results:
        print(result.line(), flush=True)
    bounded = [r.peak_mb for r in results if r.error is None and r.plan.fragment_rows is None]
    print(f"peak_rss_mb={max(bounded):.0f}" if bounded else "peak_rss_mb=-")
    return 1 if any(r.error is not None for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
