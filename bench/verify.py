"""Verification throughput against full-migration throughput, same data, same run.

For each target (MariaDB mariadb1 -> mariadb2, MariaDB mariadb1 -> OceanBase
oceanbase1), duosync's own full migration (``run_spec``, types schema and
full, ``post_indexing``) copies a generated source database; then ``verify_task``
compares source and target. The verification must find them equal, and must find
exactly one planted difference afterwards, before any figure is printed: the speed
of a comparison that sees nothing means nothing. On MariaDB -> MariaDB the peer,
``pt-table-sync --print`` (a dry run that prints the statements that would fix the
target), compares the same tables in the same run, and must print nothing for the
equal copy and exactly one statement for the planted difference.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox
    .venv/bin/python bench/verify.py --sandbox /tmp/benchbox [--rows 200000]

The last two lines are ``peer_ratio=X.XX``, duosync verify rows/s divided by
pt-table-sync rows/s (MariaDB -> MariaDB; absent without that target), and
``ratio=X.XX``: verification rows/s divided by full-migration rows/s, the lower of
the per-target ratios. All are wall clock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql
from full_migration import TABLES, row_mix

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import connect
from duosync.endpoints.mysql.dialect import quote_ident
from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, Sandbox
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.spec import TaskSpec
from duosync.specfile import parse_spec
from duosync.verify import VerifyReport, verify_task

SOURCE_SERVER = "mariadb1"
SOURCE_DB = "bench_verify_src"
TARGET_DB = "bench_verify_dst"
TARGETS = {"mariadb": "mariadb2", "oceanbase": "oceanbase1"}
# The planted difference: a row of the largest table, changed on the target only.
PLANTED_TABLE = "order_items"
# pt-table-sync runs where it can: MariaDB -> MariaDB (it speaks MySQL only, and
# its checksum SQL is not known to agree between MariaDB and OceanBase).
PEER_TARGET = "mariadb"
# Its only flag beyond --print: --chunk-size as duosync's chunk_rows, so both
# checksum ranges of the same size (its default is 1,000 rows). The rest are its
# defaults: the Chunk algorithm (CRC32 checksums of key ranges on both sides,
# descending to rows only in chunks that differ) and per-chunk transactions.
PEER_FLAGS = ("--print",)


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    rows: int
    sandbox: Path | None
    concurrency: int
    chunk_rows: int
    targets: tuple[str, ...]
    keep_databases: bool


@dataclass(frozen=True)
class Result:
    target: str
    rows: int
    migrate_seconds: float
    verify_seconds: float
    #: pt-table-sync --print over the same equal tables (PEER_TARGET only)
    peer_seconds: float | None = None

    @property
    def ratio(self) -> float:
        # same rows both times: the rows/s ratio is the inverse time ratio
        return self.migrate_seconds / self.verify_seconds

    @property
    def peer_ratio(self) -> float | None:
        return None if self.peer_seconds is None else self.peer_seconds / self.verify_seconds

    def line(self) -> str:
        text = (
            f"mariadb->{self.target}: full migration {self.rows / self.migrate_seconds:.0f} rows/s"
            f" ({self.migrate_seconds:.2f} s), verify {self.rows / self.verify_seconds:.0f}"
            f" rows/s ({self.verify_seconds:.2f} s), ratio {self.ratio:.2f}"
        )
        if self.peer_seconds is not None:
            text += (
                f"; pt-table-sync {self.rows / self.peer_seconds:.0f} rows/s"
                f" ({self.peer_seconds:.2f} s), peer ratio {self.peer_ratio:.2f}"
            )
        return text


def execute(endpoint: Endpoint, *statements: str, database: str | None = None) -> None:
    conn = connect(endpoint, database=database)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
                if cur.description:
                    cur.fetchall()  # ANALYZE TABLE answers with a result set
    finally:
        conn.close()


def generate(source: Endpoint, rows: int) -> None:
    """The full-migration bench's three tables (customers, orders, order_items)."""
    mix = row_mix(rows)
    execute(
        source,
        f"DROP DATABASE IF EXISTS {quote_ident(SOURCE_DB)}",
        f"CREATE DATABASE {quote_ident(SOURCE_DB)} DEFAULT CHARACTER SET utf8mb4",
    )
    conn = connect(source, database=SOURCE_DB)
    try:
        with conn.cursor() as cur:
            for table in TABLES:
                cur.execute(table.ddl)
                seq = quote_ident(f"seq_1_to_{mix[table.name]}")
                cur.execute(table.fill.format(seq=seq), mix)
                cur.execute(f"ANALYZE TABLE {quote_ident(table.name)}")
                cur.fetchall()
    finally:
        conn.close()


def task(source: Endpoint, target: Endpoint, args: Options) -> TaskSpec:
    def url(e: Endpoint) -> str:
        return f"{e.flavor.value}://{e.user}@{e.host}:{e.port}"

    return parse_spec(
        {
            "name": "bench-verify",
            "source": url(source),
            "target": url(target),
            "types": ["schema", "full"],
            "select": {"databases": [SOURCE_DB]},
            "rename": {"databases": {SOURCE_DB: TARGET_DB}},
            "options": {
                "read_concurrency": args.concurrency,
                "write_concurrency": args.concurrency,
                "chunk_rows": args.chunk_rows,
                "post_indexing": True,
            },
        },
        "bench-verify",
    )


def quiet(_line: str) -> None:
    pass


def check_equal(report: VerifyReport, what: str) -> None:
    if report.differs:
        bad = [t.source for t in report.tables if t.differs]
        raise BenchError(f"{what}: verification finds differences in {', '.join(bad)}")


def dsn(endpoint: Endpoint, database: str, table: str | None = None) -> str:
    """A Percona Toolkit DSN (``h=..,P=..``); the table goes in the source's only."""
    parts = [f"h={endpoint.host}", f"P={endpoint.port}", f"u={endpoint.user}", f"D={database}"]
    password = endpoint.resolved_password()
    if password:
        parts.append(f"p={password}")
    if table is not None:
        parts.append(f"t={table}")
    return ",".join(parts)


def run_peer(source: Endpoint, target: Endpoint, chunk_rows: int) -> tuple[float, list[str]]:
    """pt-table-sync --print over every table: its wall clock (the Perl tool starts
    once per table, which is how it takes a table whose name differs on the
    destination) and the statements it printed (lines that are not # comments)."""
    seconds = 0.0
    statements: list[str] = []
    for table in TABLES:
        argv = [
            "pt-table-sync",
            *PEER_FLAGS,
            "--chunk-size",
            str(chunk_rows),
            dsn(source, SOURCE_DB, table.name),
            dsn(target, TARGET_DB),
        ]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds += time.monotonic() - started
        # exit status 2 means "a table differed"; 1 and 3 an error
        if proc.returncode not in (0, 2):
            raise BenchError(
                f"pt-table-sync on {table.name} exited {proc.returncode}: {proc.stderr}"
            )
        statements += [
            line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#")
        ]
    return seconds, statements


def peer_seconds(source: Endpoint, target: Endpoint, args: Options) -> float:
    """pt-table-sync's seconds over the equal copy, which it must find equal."""
    seconds, statements = run_peer(source, target, args.chunk_rows)
    if statements:
        raise BenchError(f"pt-table-sync finds differences in an equal copy: {statements[:3]}")
    return seconds


def check_peer_planted(source: Endpoint, target: Endpoint, args: Options) -> None:
    """After the planted change: pt-table-sync must print its one fix, and only that."""
    _seconds, statements = run_peer(source, target, args.chunk_rows)
    if len(statements) != 1 or f"`{PLANTED_TABLE}`" not in statements[0]:
        raise BenchError(f"pt-table-sync should print one fix, it printed: {statements[:3]}")


def bench_target(source: Endpoint, key: str, target: Endpoint, args: Options) -> Result:
    execute(target, f"DROP DATABASE IF EXISTS {quote_ident(TARGET_DB)}")
    spec = task(source, target, args)
    say(f"mariadb->{key}: full migration")
    # A fresh store: an old one would make the task resume and skip every chunk.
    with (
        tempfile.TemporaryDirectory(prefix="duosync-bench-") as home,
        MetadataStore.in_home(Path(home)) as store,
    ):
        started = time.monotonic()
        migrated = run_spec(spec, store, quiet).report
        migrate_seconds = time.monotonic() - started
    say(f"mariadb->{key}: verify")
    started = time.monotonic()
    report = verify_task(spec, say=quiet)
    verify_seconds = time.monotonic() - started
    check_equal(report, f"mariadb->{key}")
    if report.rows != migrated.rows:
        raise BenchError(f"verified {report.rows} rows, the migration copied {migrated.rows}")
    peer = None
    if key == PEER_TARGET:
        say(f"mariadb->{key}: pt-table-sync --print")
        peer = peer_seconds(source, target, args)

    say(f"mariadb->{key}: planting one difference, verifying again")
    execute(
        target,
        f"UPDATE {quote_ident(PLANTED_TABLE)} SET qty = qty + 1 WHERE order_id = 3 AND line_no = 1",
        database=TARGET_DB,
    )
    planted = verify_task(spec, say=quiet).table(f"{SOURCE_DB}.{PLANTED_TABLE}")
    if planted.different_keys != [("3", "1")] or planted.missing or planted.extra:
        raise BenchError(f"mariadb->{key}: the planted difference was not found exactly")
    if key == PEER_TARGET:
        check_peer_planted(source, target, args)
    if not args.keep_databases:
        execute(target, f"DROP DATABASE IF EXISTS {quote_ident(TARGET_DB)}")
    return Result(key, report.rows, migrate_seconds, verify_seconds, peer)


def run(urls: dict[str, str], args: Options) -> list[Result]:
    source = Endpoint.from_url(urls[SOURCE_SERVER])
    say(f"generating {args.rows} rows in {SOURCE_DB} on {SOURCE_SERVER}")
    generate(source, args.rows)
    try:
        return [
            bench_target(source, key, Endpoint.from_url(urls[TARGETS[key]]), args)
            for key in args.targets
        ]
    finally:
        if not args.keep_databases:
            execute(source, f"DROP DATABASE IF EXISTS {quote_ident(SOURCE_DB)}")


def needed(args: Options) -> set[str]:
    return {SOURCE_SERVER, *(TARGETS[k] for k in args.targets)}


def reused_sandbox_urls(directory: Path, args: Options) -> dict[str, str]:
    # status(), not up(): servers started here would be left running by nobody.
    statuses = {s.name: s for s in Sandbox(directory).status()}
    missing = [n for n in sorted(needed(args)) if not (n in statuses and statuses[n].serving)]
    if missing:
        raise BenchError(
            f"sandbox {directory}: {', '.join(missing)} not serving"
            f" (run: .venv/bin/duosync sandbox up --dir {directory})"
        )
    return {name: s.url for name, s in statuses.items()}


def run_in_fresh_sandbox(args: Options) -> list[Result]:
    directory = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
    wanted = needed(args)
    box = Sandbox(directory, [s for s in DEFAULT_SERVERS if s.name in wanted])
    try:
        say(f"starting a sandbox in {directory}")
        return run({s.name: s.url for s in box.up()}, args)
    finally:
        box.down(purge=True)
        shutil.rmtree(directory, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000, help="total source rows")
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument("--concurrency", type=int, default=4, help="read/write threads")
    parser.add_argument("--chunk-rows", type=int, default=10_000, help="rows per chunk")
    parser.add_argument("--targets", default="oceanbase,mariadb", help="comma-separated")
    parser.add_argument(
        "--keep-databases", action="store_true", help="leave the bench databases for inspection"
    )
    ns = parser.parse_args(argv)
    keys = [k.strip() for k in ns.targets.split(",") if k.strip()]
    if not keys or any(k not in TARGETS for k in keys):
        parser.error(f"--targets: choose from {', '.join(TARGETS)} (got {ns.targets!r})")
    if ns.rows < 1000:
        parser.error("--rows: at least 1000")
    if ns.concurrency < 1:
        parser.error("--concurrency: at least 1")
    if not 100 <= ns.chunk_rows <= 1_000_000:
        parser.error("--chunk-rows: 100 to 1000000")
    return Options(
        rows=ns.rows,
        sandbox=ns.sandbox,
        concurrency=ns.concurrency,
        chunk_rows=ns.chunk_rows,
        targets=tuple(dict.fromkeys(keys)),
        keep_databases=ns.keep_databases,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"cores={os.cpu_count()} concurrency={args.concurrency} rows={args.rows}", flush=True)
    try:
        if args.sandbox is not None:
            results = run(reused_sandbox_urls(args.sandbox, args), args)
        else:
            results = run_in_fresh_sandbox(args)
    except (BenchError, DuosyncError, pymysql.MySQLError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(result.line())
    peer_ratios = [r.peer_ratio for r in results if r.peer_ratio is not None]
    if peer_ratios:
        print(f"peer_ratio={min(peer_ratios):.2f}")
    print(f"ratio={min(r.ratio for r in results):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
