"""Full migration MariaDB -> PostgreSQL: duosync against pgloader, same run.

The source is ``full_migration.py``'s three tables (``bench_src`` on mariadb1, 1M
rows by default). pgloader (Debian ``pgloader``; ``LOAD DATABASE`` with its defaults:
create tables, indexes, foreign keys, reset sequences, 4 workers) loads them into
schema ``pgloader_bench`` of the sandbox's PostgreSQL; ``duosync migrate`` (schema +
full, fresh ``--home``, 4 readers and writers) into schema ``ds_bench``. Every copy is
checked against the source before any figure is printed: row count plus a digest of
every row read in primary-key order, values as the drivers give them (Decimal,
datetime in UTC, str). Each tool copies ``--repeat`` times (default 3, taking turns)
and its fastest copy counts. CPU seconds per process (tool, MariaDB, PostgreSQL
server) are printed as in ``full_migration.py``.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox --postgres
    .venv/bin/python bench/postgres_copy.py --sandbox /tmp/benchbox [--rows 1000000]

The last line is ``ratio=X.XX``: duosync rows/s divided by pgloader rows/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from full_migration import (
    DUOSYNC,
    HOST,
    SOURCE_DB,
    SOURCE_SERVER,
    TABLES,
    BenchError,
    Digests,
    database_digests,
    differences,
    drop_databases,
    generate_source,
    timed_run,
)
from oltp_profile import cpu_seconds
from sandbox_urls import port_of

from duosync.sandbox import Sandbox

POSTGRES_SERVER = "postgres1"
DUOSYNC_SCHEMA = "ds_bench"
PGLOADER_SCHEMA = "pgloader_bench"
CONCURRENCY = 4


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def pg_digests(url: str, schema: str) -> Digests:
    """``full_migration.database_digests`` of a PostgreSQL schema: the same rows
    hash the same (aware timestamps are taken back to naive UTC, as MariaDB gives
    them in a UTC session)."""
    out: Digests = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            columns = ", ".join(f'"{c}"' for c in table.columns)
            order = ", ".join(f'"{c}"' for c in table.primary_key)
            digest = hashlib.blake2b(digest_size=16)
            count = 0
            with conn.cursor(name=f"digest_{table.name}") as cur:
                cur.execute(f'SELECT {columns} FROM "{schema}"."{table.name}" ORDER BY {order}')
                for row in cur:
                    digest.update(repr(tuple(_plain(v) for v in row)).encode())
                    count += 1
            out[table.name] = (count, digest.hexdigest())
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def drop_schemas(url: str, schemas: Sequence[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_pgloader(source_port: int, pg_url: str, directory: Path) -> float:
    command = directory / "load.pgl"
    command.write_text(
        f"LOAD DATABASE\n"
        f"  FROM mysql://root@{HOST}:{source_port}/{SOURCE_DB}\n"
        f"  INTO {pg_url}\n"
        f"  WITH create tables, create indexes, reset sequences, foreign keys,"
        f" workers = {CONCURRENCY}, concurrency = 1\n"
        f"  ALTER SCHEMA '{SOURCE_DB}' RENAME TO '{PGLOADER_SCHEMA}';\n"
    )
    return timed_run(["pgloader", str(command)], "pgloader")


def run_duosync(source_port: int, pg_url: str, directory: Path) -> float:
    spec = {
        "name": "bench-postgres-copy",
        "source": f"mariadb://root@{HOST}:{source_port}",
        "target": pg_url,
        "types": ["schema", "full"],
        "select": {"databases": [SOURCE_DB]},
        "rename": {"databases": {SOURCE_DB: DUOSYNC_SCHEMA}},
        "options": {"read_concurrency": CONCURRENCY, "write_concurrency": CONCURRENCY},
    }
    task = directory / "task.yaml"
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    # a fresh --home per run: an old store would resume (and skip every chunk)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=directory))
    return timed_run([str(DUOSYNC), "--home", str(home), "migrate", "-f", str(task)], "duosync")


def with_children(pid: int | None) -> float:
    """CPU seconds of *pid* and of its children it has reaped: a PostgreSQL server's
    work is done by backend processes of the postmaster, each reaped when its
    connection ends."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks


def metered(work: Callable[[], float], pids: Sequence[int | None]) -> tuple[float, list[float]]:
    """Wall seconds of *work* and the CPU seconds of (children, the source server,
    the PostgreSQL server with its backends)."""

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def now() -> list[float]:
        return [children(), cpu_seconds(pids[0]), with_children(pids[1])]

    before = now()
    seconds = work()
    after = now()
    return seconds, [a - b for a, b in zip(after, before, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sandbox", type=Path, required=True, help="a running sandbox (--postgres)"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="total source rows")
    parser.add_argument("--repeat", type=int, default=3, help="copies per tool; the fastest counts")
    args = parser.parse_args(argv)
    try:
        servers = {s.name: s for s in Sandbox(args.sandbox).status()}
        for name in (SOURCE_SERVER, POSTGRES_SERVER):
            if name not in servers or not servers[name].serving:
                raise BenchError(
                    f"sandbox {args.sandbox}: {name} not serving (sandbox up --postgres)"
                )
        source_port = port_of(servers[SOURCE_SERVER].url)
        pg_url = servers[POSTGRES_SERVER].url
        pids = [servers[SOURCE_SERVER].pid, servers[POSTGRES_SERVER].pid]
        say(f"generating {args.rows} rows in {SOURCE_DB} on {SOURCE_SERVER}")
        generate_source(source_port, args.rows)
        source = database_digests(source_port, SOURCE_DB)
        rows = sum(count for count, _ in source.values())
        best: dict[str, tuple[float, list[float]]] = {}
        with tempfile.TemporaryDirectory(prefix="duosync-bench-pg-") as tmp:
            tools = (
                ("pgloader", PGLOADER_SCHEMA, lambda: run_pgloader(source_port, pg_url, Path(tmp))),
                ("duosync", DUOSYNC_SCHEMA, lambda: run_duosync(source_port, pg_url, Path(tmp))),
            )
            for round_ in range(1, max(1, args.repeat) + 1):
                for tool, schema, work in tools:
                    drop_schemas(pg_url, [schema])
                    time.sleep(2.0)  # the previous copy's cleanup settles
                    got = metered(work, pids)
                    say(f"{tool}, round {round_}: {got[0]:.2f} s")
                    wrong = differences(source, pg_digests(pg_url, schema))
                    if wrong:
                        raise BenchError(
                            f"{tool} copy differs from the source:\n  " + "\n  ".join(wrong)
                        )
                    if tool not in best or got[0] < best[tool][0]:
                        best[tool] = got
                    drop_schemas(pg_url, [schema])
        drop_databases(source_port, [SOURCE_DB])
    except (BenchError, subprocess.SubprocessError, psycopg.Error, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(f"cores=2 concurrency={CONCURRENCY} rows={rows}")
    for tool, (seconds, cpu) in best.items():
        per_row = 1e6 / rows
        print(
            f"mariadb->postgresql {tool}: {rows / seconds:.0f} rows/s ({seconds:.2f} s);"
            f" CPU {cpu[0]:.1f} s tool, {cpu[1]:.1f} s source server, {cpu[2]:.1f} s target"
            f" server ({cpu[0] * per_row:.1f} / {cpu[1] * per_row:.1f} / {cpu[2] * per_row:.1f}"
            " us per row)"
        )
    ratio = best["pgloader"][0] / best["duosync"][0]
    print(f"mariadb->postgresql vs pgloader: ratio {ratio:.2f}")
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
