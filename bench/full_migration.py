"""Full-migration throughput: duosync against `mariadb-dump | mariadb` and against
mydumper + myloader, same run.

For each target (MariaDB mariadb1 -> mariadb2, MariaDB mariadb1 -> OceanBase
oceanbase1) the classic dump pipeline, then mydumper + myloader (as many threads as
duosync), then ``duosync migrate`` copy the same source database; every copy is
checked row by row against the source before any figure is printed, because the
speed of a wrong copy means nothing. Before each copy the target is settled (the
copy before it dropped, OceanBase's memstore dumped, the server's CPU quiet), so
that no copy pays for the one before it (``settle``). Each copy also prints the
CPU seconds it cost the tool's processes, the source server and the target server
(from /proc and the children's rusage): on 2 shared cores the sum over wall clock
says how far a copy is from the machine's limit, and the target's share says whose
statements cost more to apply.

The copies run ``--repeat`` rounds (default 3), each tool once per round in the
same order, and each tool's fastest copy counts: on this shared 2-core machine the
same copy's wall clock moved by +-15% from one run to the next (3.8 to 5.1 s), so
one run each could decide a ratio by chance.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox
    .venv/bin/python bench/full_migration.py --sandbox /tmp/benchbox --rows 100000

The last line is ``ratio=X.XX``: duosync rows/s divided by mydumper + myloader rows/s,
the lowest of the per-target ratios (the figure a regression must not push down).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pymysql.cursors
import yaml
from oltp_profile import cpu_seconds
from sandbox_urls import port_of

from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, Sandbox, ServerStatus

HOST = "127.0.0.1"
SOURCE_SERVER = "mariadb1"
SOURCE_DB = "bench_src"
PEER_DB = "peer_bench"
MYLOADER_DB = "myloader_bench"
DUOSYNC_DB = "ds_bench"
# The target databases are created by the tools (duosync, myloader) or by us (dump
# pipe); the names are fixed so a rerun on a reused sandbox replaces, never accumulates.
BENCH_DBS = (PEER_DB, MYLOADER_DB, DUOSYNC_DB)
# The peers, as results name them; the final ratio is duosync's against MYLOADER.
DUMP_PIPE = "mariadb-dump|mariadb"
MYLOADER = "mydumper+myloader"
# The checkout's own duosync, the one being optimised, whatever is first on PATH.
DUOSYNC = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "duosync"


@dataclass(frozen=True)
class Target:
    key: str  # what --targets names
    server: str  # sandbox server name
    label: str  # how results name the pair


@dataclass(frozen=True)
class Options:
    rows: int
    sandbox: Path | None
    concurrency: int
    targets: tuple[Target, ...]
    chunk_rows: int | None
    keep_databases: bool
    #: rounds of copies; each tool's fastest counts
    repeat: int = 1
    #: duosync builds secondary indexes after the copy (``options.post_indexing``):
    #: "on", "off", or "auto": on for MariaDB targets, off for OceanBase (see POST_INDEXING)
    post_indexing: str = "auto"

    def post_indexing_for(self, target: Target) -> bool:
        if self.post_indexing == "auto":
            return POST_INDEXING[target.key]
        return self.post_indexing == "on"


TARGETS = {
    "mariadb": Target("mariadb", "mariadb2", "mariadb->mariadb"),
    "oceanbase": Target("oceanbase", "oceanbase1", "mariadb->oceanbase"),
}

# mariadb-dump flags for every target. --single-transaction gives a consistent
# InnoDB snapshot without locking, which is what duosync's readers get too; the
# --skip-*-lock* flags keep LOCK TABLES out of the dump, neither side needs it.
PEER_DUMP_FLAGS = ("--single-transaction", "--skip-add-locks", "--skip-lock-tables")
# Extra flags for OceanBase (seekdb 4.3.5 in MySQL mode): none. Its default dump
# loads unchanged and verifies equal: seekdb runs the /*!NNNNN ...*/ versioned
# comments (so the dump's SET TIME_ZONE='+00:00' holds), accepts ALTER TABLE ...
# DISABLE KEYS (a no-op for InnoDB anyway), ENGINE=InnoDB and utf8mb4_general_ci.
# Never add --skip-tz-utc: the load would then use seekdb's +08:00 default time
# zone and shift every TIMESTAMP by 8 hours (the verification catches that).
OCEANBASE_DUMP_FLAGS: tuple[str, ...] = ()

# mydumper flags for every target. --trx-consistency-only is mydumper's
# --single-transaction: one consistent InnoDB snapshot shared by its threads, the
# global read lock released at once (duosync's readers take no lock either).
# --rows splits each table into files of that many rows, so that both tools
# parallelise within a table; it is duosync's chunk_rows (spec default 10,000).
MYDUMPER_FLAGS = ("--trx-consistency-only",)
DEFAULT_CHUNK_ROWS = 10_000
# myloader flags for every target. --enable-binlog: without it myloader runs
# SET SQL_LOG_BIN=0 and MariaDB skips its binlog (about 20% less work there), which
# neither duosync nor the dump pipe can do, since the target's binlog is what
# replicas and a reverse task read. OceanBase (seekdb 4.3.5) has no sql_log_bin
# variable at all (ERROR 1193); myloader ignores that SET's failure and loads
# anyway, so the flag only spares the failing statement there. Nothing else is needed for seekdb: it
# loads mydumper's schema files and INSERTs as they are, and honours their
# SET TIME_ZONE='+00:00' (mydumper's --tz-utc default), so TIMESTAMPs verify equal.
MYLOADER_FLAGS = ("--enable-binlog",)
# options.post_indexing as a user would set it, by target (measured with settled
# targets, 1M rows, 2026-12-03): on MariaDB building the secondary indexes after the
# copy is faster (4.28 s against 4.88 s), on OceanBase slower (7.00 s against 6.12 s).
POST_INDEXING = {"mariadb": True, "oceanbase": False}


# -- source data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[str, ...]  # every column, in the order verification reads them
    primary_key: tuple[str, ...]
    ddl: str
    # INSERT ... SELECT over the Sequence engine table {seq} (seq = 1..rows);
    # %(...)s parameters are the row counts of the mix, bound by PyMySQL.
    fill: str


# Non-ASCII names and domains make sure 4-byte/multi-byte utf8mb4 text round-trips;
# '' next to NULL in orders.note makes sure the two are not confused; the TIMESTAMP
# column makes a time zone slip visible (OceanBase's global default is +08:00).
TABLES = (
    TableDef(
        name="customers",
        columns=("id", "name", "email", "country", "created_at", "updated_at"),
        primary_key=("id",),
        ddl="""
CREATE TABLE `customers` (
  `id` INT NOT NULL AUTO_INCREMENT,
  `name` VARCHAR(64) NOT NULL,
  `email` VARCHAR(128) NOT NULL,
  `country` CHAR(2) NOT NULL,
  `created_at` DATETIME NOT NULL,
  `updated_at` TIMESTAMP NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_email` (`email`),
  KEY `idx_country` (`country`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        fill="""
INSERT INTO `customers` (`id`, `name`, `email`, `country`, `created_at`, `updated_at`)
SELECT seq,
  CONCAT(ELT(1 + MOD(seq, 8), 'Zoë', 'José', 'Łukasz', '李雷', 'Müller', 'Ana', 'Søren',
             'Олег 😀'), ' ', SUBSTRING(MD5(seq), 1, 6 + MOD(seq, 10))),
  CONCAT('user', seq, '@', ELT(1 + MOD(seq, 4), 'example.com', 'mail.example.org',
                               'exämple.de', '例え.jp')),
  ELT(1 + MOD(seq, 10), 'FR', 'DE', 'US', 'CN', 'JP', 'BR', 'PL', 'SE', 'RU', 'ES'),
  TIMESTAMP'2015-01-01 00:00:00' + INTERVAL MOD(seq * 7919, 300000000) SECOND,
  IF(MOD(seq, 7) = 0, NULL, FROM_UNIXTIME(1500000000 + MOD(seq * 104729, 250000000)))
FROM {seq}""",
    ),
    TableDef(
        name="orders",
        columns=("id", "customer_id", "status", "total", "note", "created_at"),
        primary_key=("id",),
        ddl="""
CREATE TABLE `orders` (
  `id` BIGINT NOT NULL,
  `customer_id` INT NOT NULL,
  `status` ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL,
  `total` DECIMAL(12,2) NOT NULL,
  `note` VARCHAR(255) NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_customer` (`customer_id`),
  KEY `idx_created` (`created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        # ids step by 3: real keys have gaps, and chunking must not assume density
        fill="""
INSERT INTO `orders` (`id`, `customer_id`, `status`, `total`, `note`, `created_at`)
SELECT seq * 3,
  1 + MOD(seq * 7919, %(customers)s),
  ELT(1 + MOD(seq, 4), 'new', 'paid', 'shipped', 'cancelled'),
  (CAST(MOD(seq * 37, 10000000) AS SIGNED) - 500000) / 100,
  CASE WHEN MOD(seq, 5) = 0 THEN NULL
       WHEN MOD(seq, 17) = 0 THEN ''
       ELSE CONCAT('note ', LEFT(MD5(seq), 8 + MOD(seq, 24)),
                   IF(MOD(seq, 3) = 0, ' — livraison prévue ✓', ''))
  END,
  TIMESTAMP'2020-01-01 00:00:00' + INTERVAL MOD(seq * 1000003, 126230400000000) MICROSECOND
FROM {seq}""",
    ),
    TableDef(
        name="order_items",
        columns=("order_id", "line_no", "product_id", "qty", "price"),
        primary_key=("order_id", "line_no"),
        ddl="""
CREATE TABLE `order_items` (
  `order_id` BIGINT NOT NULL,
  `line_no` SMALLINT NOT NULL,
  `product_id` INT NOT NULL,
  `qty` INT NOT NULL,
  `price` DECIMAL(10,2) NOT NULL,
  PRIMARY KEY (`order_id`, `line_no`),
  KEY `idx_product` (`product_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        # item k goes to order (k mod orders) as its line (k div orders): unique keys
        fill="""
INSERT INTO `order_items` (`order_id`, `line_no`, `product_id`, `qty`, `price`)
SELECT 3 * (1 + MOD(seq - 1, %(orders)s)),
  1 + (seq - 1) DIV %(orders)s,
  1 + MOD(seq * 104729, 50000),
  1 + MOD(seq, 9),
  (1 + MOD(seq * 31, 99999)) / 100
FROM {seq}""",
    ),
)


def row_mix(total: int) -> dict[str, int]:
    """Rows per table: customers 10%, orders 40%, order_items the rest (~50%)."""
    customers = max(1, total // 10)
    orders = max(1, total * 4 // 10)
    return {"customers": customers, "orders": orders, "order_items": total - customers - orders}


# -- connections -----------------------------------------------------------------------------


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


@contextmanager
def connect(port: int, database: str | None = None) -> Iterator[pymysql.connections.Connection]:
    # Sessions in UTC, as duosync pins its own: TIMESTAMP values then read the same
    # on every server whatever its global time_zone (OceanBase: +08:00).
    conn = pymysql.connect(
        host=HOST,
        port=port,
        user="root",
        database=database,
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )
    try:
        yield conn
    finally:
        conn.close()


def recreate_database(port: int, database: str) -> None:
    with connect(port) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote(database)}")
        cur.execute(f"CREATE DATABASE {quote(database)} DEFAULT CHARACTER SET utf8mb4")


def drop_databases(port: int, databases: Sequence[str]) -> None:
    with connect(port) as conn, conn.cursor() as cur:
        for database in databases:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(database)}")


def generate_source(port: int, rows: int) -> None:
    """(Re)create the source database with *rows* rows spread over TABLES."""
    mix = row_mix(rows)
    recreate_database(port, SOURCE_DB)
    with connect(port, SOURCE_DB) as conn, conn.cursor() as cur:
        for table in TABLES:
            cur.execute(table.ddl)
            # The Sequence engine table is named by its bounds; it cannot be bound.
            seq = quote(f"seq_1_to_{mix[table.name]}")
            cur.execute(table.fill.format(seq=seq), mix)
            cur.execute(f"ANALYZE TABLE {quote(table.name)}")
            cur.fetchall()  # ANALYZE returns a result set; drain it before the next query


# -- verification -------------------------------------------------------------------------


# seekdb ends any statement after ob_query_timeout (10 s by default); one digest
# SELECT reads a whole table, which took longer than that on the shared cores.
OCEANBASE_DIGEST_SESSION = ("SET SESSION ob_query_timeout = 3600000000",)  # 1 h, in us


def table_digest(
    port: int, database: str, table: TableDef, session: Sequence[str] = ()
) -> tuple[int, str]:
    """Row count and a digest of every row read in primary-key order.

    Rows are hashed as PyMySQL's Python values (Decimal, datetime, str, None), not as
    server text, so two servers that print the same value differently (trailing
    zeros of a fraction, ...) still agree, while NULL and '' stay distinct.
    """
    columns = ", ".join(quote(c) for c in table.columns)
    order = ", ".join(quote(c) for c in table.primary_key)
    sql = f"SELECT {columns} FROM {quote(database)}.{quote(table.name)} ORDER BY {order}"
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    with connect(port) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        for statement in session:
            cur.execute(statement)
        cur.execute(sql)  # streamed: a million rows never sit in memory at once
        for row in cur:
            digest.update(repr(row).encode())
            count += 1
    return count, digest.hexdigest()


Digests = dict[str, tuple[int, str]]


def database_digests(port: int, database: str, session: Sequence[str] = ()) -> Digests:
    return {t.name: table_digest(port, database, t, session) for t in TABLES}


def differences(source: Digests, copy: Digests) -> list[str]:
    out = []
    for name, (src_count, src_hash) in source.items():
        count, digest = copy[name]
        if count != src_count:
            out.append(f"{name}: {count} rows, source has {src_count}")
        elif digest != src_hash:
            out.append(f"{name}: same row count ({count}) but different contents")
    return out


# -- the two tools -------------------------------------------------------------------------


class BenchError(Exception):
    """A step failed; the message says which and why."""


def timed_run(argv: Sequence[str], what: str) -> float:
    """Run *argv*, return its wall-clock seconds; fail with its stderr if it fails."""
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        raise BenchError(f"{what} exited with status {proc.returncode}:\n{output}")
    return seconds


def peer_command(source_port: int, target_port: int, extra_flags: Sequence[str]) -> str:
    dump = [
        "mariadb-dump",
        f"-h{HOST}",
        f"-P{source_port}",
        "-uroot",
        *PEER_DUMP_FLAGS,
        *extra_flags,
        SOURCE_DB,
    ]
    load = ["mariadb", f"-h{HOST}", f"-P{target_port}", "-uroot", PEER_DB]
    return f"{shlex.join(dump)} | {shlex.join(load)}"


def run_peer(source_port: int, target: Target, target_port: int) -> float:
    recreate_database(target_port, PEER_DB)
    extra = OCEANBASE_DUMP_FLAGS if target.key == "oceanbase" else ()
    pipeline = peer_command(source_port, target_port, extra)
    say(f"{target.label}: {pipeline}")
    # pipefail: a dump that dies halfway must fail the run, not look like a fast load
    return timed_run(["bash", "-o", "pipefail", "-c", pipeline], f"peer ({pipeline})")


def task_spec(
    source_url: str,
    target_url: str,
    concurrency: int,
    chunk_rows: int | None,
    post_indexing: bool = True,
) -> str:
    options: dict[str, object] = {
        "read_concurrency": concurrency,
        "write_concurrency": concurrency,
        "post_indexing": post_indexing,
    }
    if chunk_rows is not None:
        options["chunk_rows"] = chunk_rows
    spec = {
        "name": "bench-full-migration",
        "source": source_url,
        "target": target_url,
        "types": ["schema", "full"],
        "select": {"databases": [SOURCE_DB]},
        "rename": {"databases": {SOURCE_DB: DUOSYNC_DB}},
        "options": options,
    }
    return yaml.safe_dump(spec, sort_keys=False)


def mydumper_commands(
    source_port: int, target_port: int, directory: Path, threads: int, chunk_rows: int
) -> tuple[list[str], list[str]]:
    login = ["-h", HOST, "-u", "root"]
    dump = ["mydumper", *login, "-P", str(source_port), "--threads", str(threads)]
    dump += [*MYDUMPER_FLAGS, "--rows", str(chunk_rows), "-B", SOURCE_DB, "-o", str(directory)]
    load = ["myloader", *login, "-P", str(target_port), "--threads", str(threads)]
    load += [*MYLOADER_FLAGS, "-B", MYLOADER_DB, "-d", str(directory)]
    return dump, load


def run_myloader(source_port: int, target: Target, target_port: int, args: Options) -> float:
    """Wall clock of mydumper to files, then myloader from them (schema, data and the
    indexes, which myloader 0.10 creates with the tables)."""
    drop_databases(target_port, [MYLOADER_DB])  # myloader creates it from the dump
    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    with tempfile.TemporaryDirectory(prefix="duosync-bench-mydumper-") as tmp:
        directory = Path(tmp) / "dump"  # mydumper wants to create it
        dump, load = mydumper_commands(
            source_port, target_port, directory, args.concurrency, chunk_rows
        )
        say(f"{target.label}: {shlex.join(dump)} && {shlex.join(load)}")
        seconds = timed_run(dump, "mydumper")
        seconds += timed_run(load, "myloader")
    return seconds


def run_duosync(
    source_url: str, target: Target, target_url: str, target_port: int, args: Options
) -> float:
    if not DUOSYNC.exists():
        raise BenchError(f"{DUOSYNC} not found (run scripts/setup)")
    drop_databases(target_port, [DUOSYNC_DB])
    # A fresh --home per run: a store left by an earlier run would make migrate
    # resume (and skip every chunk) instead of copying.
    with tempfile.TemporaryDirectory(prefix="duosync-bench-") as tmp:
        task = Path(tmp) / "task.yaml"
        task.write_text(
            task_spec(
                source_url,
                target_url,
                args.concurrency,
                args.chunk_rows,
                args.post_indexing_for(target),
            )
        )
        home = Path(tmp) / "home"
        home.mkdir()
        argv = [str(DUOSYNC), "--home", str(home), "migrate", "-f", str(task)]
        return timed_run(argv, "duosync migrate")


# -- the benchmark -------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One tool's copy: wall clock and the CPU seconds it cost, by process."""

    seconds: float
    #: the tool's processes (mydumper plus myloader, the dump pipe's two clients, duosync)
    tool_cpu: float
    source_cpu: float
    target_cpu: float

    def line(self, rows: int) -> str:
        per_row = 1e6 / rows
        return (
            f"CPU {self.tool_cpu:.1f} s tool, {self.source_cpu:.1f} s source server,"
            f" {self.target_cpu:.1f} s target server ({self.tool_cpu * per_row:.1f} /"
            f" {self.source_cpu * per_row:.1f} / {self.target_cpu * per_row:.1f} us per row;"
            f" {2 * self.seconds:.1f} core-s on 2 cores)"
        )


def metered(work: Callable[[], float], source_pid: int | None, target_pid: int | None) -> Copy:
    """Run *work* (a copy that returns its wall seconds) and count the CPU its child
    processes and the two servers used meanwhile: where a copy's time goes."""

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = children(), cpu_seconds(source_pid), cpu_seconds(target_pid)
    seconds = work()
    return Copy(
        seconds,
        children() - before[0],
        cpu_seconds(source_pid) - before[1],
        cpu_seconds(target_pid) - before[2],
    )


@dataclass(frozen=True)
class Result:
    target: Target
    rows: int
    #: each peer's copy (DUMP_PIPE, MYLOADER), in the order they ran
    peers: dict[str, Copy]
    duosync: Copy

    def ratio(self, peer: str) -> float:
        # same rows on both sides: the rows/s ratio is the inverse time ratio
        return self.peers[peer].seconds / self.duosync.seconds

    def lines(self) -> list[str]:
        ds_rps = self.rows / self.duosync.seconds
        lines = [
            f"{self.target.label} vs {peer}: peer {self.rows / copy.seconds:.0f} rows/s"
            f" ({copy.seconds:.2f} s), duosync {ds_rps:.0f} rows/s ({self.duosync.seconds:.2f} s),"
            f" ratio {self.ratio(peer):.2f}"
            for peer, copy in self.peers.items()
        ]
        for who, copy in (*self.peers.items(), ("duosync", self.duosync)):
            lines.append(f"{self.target.label} {who}: {copy.line(self.rows)}")
        return lines


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def verify(target: Target, port: int, source: Digests, tool: str, database: str) -> None:
    session = OCEANBASE_DIGEST_SESSION if target.key == "oceanbase" else ()
    wrong = differences(source, database_digests(port, database, session))
    if wrong:
        raise BenchError(
            f"{target.label}: {tool} copy {database} differs from the source:\n  "
            + "\n  ".join(wrong)
        )


#: the target counts as settled once it used less than this share of a core ...
QUIET_SHARE = 0.10
#: ... over each of this many consecutive half-second windows
QUIET_WINDOWS = 4
SETTLE_TIMEOUT = 180.0


def settle(target: Target, port: int, pid: int | None) -> float:
    """Bring the target to the same state before every copy; the seconds it took.

    Without it the order of the copies decides their figures on OceanBase: a copy
    that runs after two others pays for their memstore being frozen and dumped (and
    their dropped tablets being cleaned up) in the middle of its own load. Measured:
    run last, duosync cost OceanBase 22 us of CPU per row and reached 0.69x myloader;
    run first, 9.3 us per row and 1.09x. So each copy's database is dropped as soon
    as it is verified, OceanBase is told to dump its memstore now (MINOR FREEZE),
    and the copy starts once the server's CPU has gone quiet.
    """
    started = time.monotonic()
    if target.key == "oceanbase":
        with connect(port) as conn, conn.cursor() as cur:
            cur.execute("ALTER SYSTEM MINOR FREEZE")
    if pid is None:
        return 0.0
    quiet = 0
    last = cpu_seconds(pid)
    while quiet < QUIET_WINDOWS and time.monotonic() - started < SETTLE_TIMEOUT:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < QUIET_SHARE * 0.5 else 0
        last = now
    return time.monotonic() - started


def bench_target(
    box: dict[str, ServerStatus], target: Target, source: Digests, args: Options
) -> Result:
    source_url, target_url = box[SOURCE_SERVER].url, box[target.server].url
    source_port, target_port = port_of(source_url), port_of(target_url)
    pids = box[SOURCE_SERVER].pid, box[target.server].pid
    copies: list[tuple[str, str, str, Callable[[], float]]] = [
        (
            DUMP_PIPE,
            PEER_DB,
            "mariadb-dump | mariadb",
            lambda: run_peer(source_port, target, target_port),
        ),
        (
            MYLOADER,
            MYLOADER_DB,
            "mydumper + myloader",
            lambda: run_myloader(source_port, target, target_port, args),
        ),
        (
            "duosync",
            DUOSYNC_DB,
            "duosync migrate",
            lambda: run_duosync(source_url, target, target_url, target_port, args),
        ),
    ]
    measured: dict[str, Copy] = {}
    for round_ in range(1, args.repeat + 1):
        for tool, database, what, work in copies:
            waited = settle(target, target_port, pids[1])
            say(f"{target.label}: {what}, round {round_} (target settled in {waited:.1f} s)")
            copy = metered(work, *pids)
            say(f"{target.label}: {what}: {copy.seconds:.2f} s")
            verify(target, target_port, source, tool, database)
            if tool not in measured or copy.seconds < measured[tool].seconds:
                measured[tool] = copy
            if not args.keep_databases:
                # the next copy finds the target as this one did
                drop_databases(target_port, [database])
    duosync = measured.pop("duosync")
    rows = sum(count for count, _ in source.values())
    return Result(target, rows, measured, duosync)


def run(box: dict[str, ServerStatus], args: Options) -> list[Result]:
    """The bench on the sandbox servers *box* (by name)."""
    source_port = port_of(box[SOURCE_SERVER].url)
    say(f"generating {args.rows} rows in {SOURCE_DB} on {SOURCE_SERVER}")
    started = time.monotonic()
    generate_source(source_port, args.rows)
    say(f"generated in {time.monotonic() - started:.1f} s; digesting the source")
    source = database_digests(source_port, SOURCE_DB)
    try:
        return [bench_target(box, target, source, args) for target in args.targets]
    finally:
        if args.sandbox is not None and not args.keep_databases:
            # A reused sandbox outlives us: leave it as we found it.
            drop_databases(source_port, [SOURCE_DB])
            for target in args.targets:
                drop_databases(port_of(box[target.server].url), BENCH_DBS)


def needed_servers(targets: Sequence[Target]) -> set[str]:
    return {SOURCE_SERVER, *(t.server for t in targets)}


def reused_sandbox(directory: Path, targets: Sequence[Target]) -> dict[str, ServerStatus]:
    # status(), not up(): servers we started here would be left running by nobody.
    statuses = {s.name: s for s in Sandbox(directory).status()}
    missing = [
        n for n in sorted(needed_servers(targets)) if not (n in statuses and statuses[n].serving)
    ]
    if missing:
        raise BenchError(
            f"sandbox {directory}: {', '.join(missing)} not serving"
            f" (run: .venv/bin/duosync sandbox up --dir {directory})"
        )
    return statuses


def run_in_fresh_sandbox(args: Options) -> list[Result]:
    directory = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
    # Only the servers the chosen targets need: OceanBase alone takes a while to start.
    wanted = needed_servers(args.targets)
    box = Sandbox(directory, [s for s in DEFAULT_SERVERS if s.name in wanted])
    try:
        say(f"starting a sandbox in {directory}")
        return run({s.name: s for s in box.up()}, args)
    finally:
        box.down(purge=True)
        shutil.rmtree(directory, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="total source rows")
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument("--concurrency", type=int, default=4, help="duosync read/write threads")
    parser.add_argument("--targets", default="mariadb,oceanbase", help="comma-separated")
    parser.add_argument("--chunk-rows", type=int, help="duosync chunk_rows (default: spec's)")
    parser.add_argument(
        "--post-indexing",
        choices=("auto", "on", "off"),
        default="auto",
        help="duosync's options.post_indexing (auto: on for MariaDB targets, off for OceanBase)",
    )
    parser.add_argument(
        "--keep-databases", action="store_true", help="leave the bench databases for inspection"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of copies; each tool's fastest counts"
    )
    ns = parser.parse_args(argv)
    keys = [k.strip() for k in ns.targets.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TARGETS]
    if unknown or not keys:
        parser.error(f"--targets: choose from {', '.join(TARGETS)} (got {ns.targets!r})")
    if ns.rows < 10:
        parser.error("--rows: at least 10")
    if ns.concurrency < 1:
        parser.error("--concurrency: at least 1")
    if ns.repeat < 1:
        parser.error("--repeat: at least 1")
    return Options(
        rows=ns.rows,
        sandbox=ns.sandbox,
        concurrency=ns.concurrency,
        targets=tuple(TARGETS[k] for k in dict.fromkeys(keys)),
        chunk_rows=ns.chunk_rows,
        keep_databases=ns.keep_databases,
        repeat=ns.repeat,
        post_indexing=ns.post_indexing,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"cores={os.cpu_count()} concurrency={args.concurrency} rows={args.rows}", flush=True)
    try:
        if args.sandbox is not None:
            results = run(reused_sandbox(args.sandbox, args.targets), args)
        else:
            results = run_in_fresh_sandbox(args)
    except (BenchError, DuosyncError, pymysql.MySQLError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    for result in results:
        for line in result.lines():
            print(line)
    print(f"ratio={min(r.ratio(MYLOADER) for r in results):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
