"""Trigger change capture on OceanBase: what it costs the source, how fast it is read.

(a) Overhead: sysbench ``oltp_write_only`` (4 tables of 10k rows, 4 threads) on
oceanbase1, without and then with duosync's capture triggers on its tables; the
pair runs twice (``--rounds``), alternating, after an unrecorded warm-up, and the
better tps of each side is kept (the two CPU cores are shared with the database
servers, so single runs are noisy). No reader runs meanwhile: this is the cost of
the triggers alone.

(b) Reader: ~200k row changes (multi-row INSERTs, then UPDATEs, ~100 rows per
transaction) are written to a captured table, then ``TriggerLogStream`` reads them
from the capture's start position. Its peer in the same run is the floor cost of
just transferring the log: one plain PyMySQL ``SELECT`` of the same change-log rows
in ``seq`` order, ``json.loads`` of every image. Both fold the changes into the
final table state; each must have seen exactly the row changes made and end with
the table's actual content (digest of every row as text) before figures print.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox
    .venv/bin/python bench/capture.py --sandbox /tmp/benchbox [--seconds 20] [--rows 200000]

The last line is ``ratio=X.XX``: sysbench tps with capture divided by tps without,
the fraction of write throughput capture leaves (absent with --skip-overhead).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.core.events import RowChange, Transaction
from duosync.core.positions import TriggerLogPosition
from duosync.endpoints.mysql.connection import connect
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.oceanbase import capture
from duosync.endpoints.oceanbase.capture import log
from duosync.endpoints.oceanbase.capture.stream import TriggerLogStream
from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, Sandbox
from duosync.service.phases.inspection import inspect_endpoint

SERVER = "oceanbase1"
BENCH_DB = "bench_capture"
# One consumer name for both parts: a rerun after a crash finds and removes it.
CONSUMER = "bench-capture"
SB_TABLES = 4
SB_TABLE_SIZE = 10_000
SB_THREADS = 4
WARMUP_S = 5
BACKLOG = "backlog"
BATCH_ROWS = 100
# The reader has caught up long before this much time passes without a transaction.
IDLE_LIMIT_S = 60.0

Row = tuple[str, ...]


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def execute(endpoint: Endpoint, *statements: str) -> None:
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def bench_tables(endpoint: Endpoint, names: Iterable[str]) -> list[Table]:
    db = inspect_endpoint(endpoint, [BENCH_DB]).database(BENCH_DB)
    return [db.table(n) for n in names]


def remove_capture(endpoint: Endpoint) -> None:
    """Remove our consumer and, when the log outlives it, our rows in the log."""
    capture.remove(endpoint, CONSUMER)
    forget_logged_rows(endpoint)


def forget_logged_rows(endpoint: Endpoint) -> None:
    """Delete the bench database's rows from a change log other consumers keep.

    ``capture.remove`` drops the log only with its last consumer; otherwise our rows
    stay until every other consumer moves past them, and every reader's page query
    scans them meanwhile. Nobody else captures this database, so nobody needs them.
    """
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            if not log.tables_exist(cur):
                return
            cur.execute(f"SELECT tables FROM {log.CONSUMERS}")
            for (tables,) in cur.fetchall():
                if any(ref[0] == BENCH_DB for ref in json.loads(tables)):
                    return
            delete = f"DELETE FROM {log.CHANGELOG} WHERE db = %s LIMIT 10000"
            while cur.execute(delete, (BENCH_DB,)) > 0:
                pass
    finally:
        conn.close()


def cleanup(endpoint: Endpoint) -> None:
    # Each step on its own: a failed capture removal must not leave the database.
    try:
        remove_capture(endpoint)
    except (DuosyncError, pymysql.MySQLError) as exc:
        say(f"cleanup: removing capture failed: {exc}")
    try:
        execute(endpoint, f"DROP DATABASE IF EXISTS {quote_ident(BENCH_DB)}")
    except (DuosyncError, pymysql.MySQLError) as exc:
        say(f"cleanup: dropping {BENCH_DB} failed: {exc}")


# -- (a) overhead on the source's writes ---------------------------------------------------

_TPS = re.compile(r"transactions:\s+\d+\s+\(([\d.]+) per sec\.\)")


def sysbench(endpoint: Endpoint, action: str, seconds: int = 0) -> str:
    args = [
        "sysbench",
        "oltp_write_only",
        "--db-driver=mysql",
        f"--mysql-host={endpoint.host}",
        f"--mysql-port={endpoint.port}",
        f"--mysql-user={endpoint.user}",
        f"--mysql-password={endpoint.resolved_password() or ''}",
        f"--mysql-db={BENCH_DB}",
        f"--tables={SB_TABLES}",
        f"--table-size={SB_TABLE_SIZE}",
    ]
    if action == "run":
        args += [f"--threads={SB_THREADS}", f"--time={seconds}"]
    done = subprocess.run([*args, action], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"sysbench {action} failed: {done.stderr.strip() or done.stdout[-500:]}")
    return done.stdout


def sysbench_tps(endpoint: Endpoint, seconds: int) -> float:
    output = sysbench(endpoint, "run", seconds)
    match = _TPS.search(output)
    if match is None:
        raise BenchError(f"no tps in sysbench output: {output[-500:]}")
    return float(match.group(1))


def overhead(endpoint: Endpoint, seconds: int, rounds: int = 2) -> tuple[float, float]:
    """Best sysbench tps (without capture, with capture)."""
    execute(
        endpoint,
        f"DROP DATABASE IF EXISTS {quote_ident(BENCH_DB)}",
        f"CREATE DATABASE {quote_ident(BENCH_DB)}",
    )
    say(f"sysbench prepare: {SB_TABLES} tables x {SB_TABLE_SIZE} rows in {BENCH_DB}")
    sysbench(endpoint, "prepare")
    tables = bench_tables(endpoint, [f"sbtest{i}" for i in range(1, SB_TABLES + 1)])
    # The first run after prepare is slowed by cold caches and new tablets; an
    # unrecorded warm-up keeps that out of the first "without" figure.
    sysbench_tps(endpoint, min(seconds, WARMUP_S))
    without: list[float] = []
    with_capture: list[float] = []
    for round_no in range(1, rounds + 1):
        without.append(sysbench_tps(endpoint, seconds))
        say(f"round {round_no}: without capture {without[-1]:,.1f} tps")
        capture.install(endpoint, CONSUMER, tables)
        try:
            with_capture.append(sysbench_tps(endpoint, seconds))
        finally:
            remove_capture(endpoint)
        say(f"round {round_no}: with capture    {with_capture[-1]:,.1f} tps")
    execute(endpoint, f"DROP DATABASE IF EXISTS {quote_ident(BENCH_DB)}")
    best_without, best_with = max(without), max(with_capture)
    runs = f"best of {rounds} runs of {seconds}s, {SB_THREADS} threads"
    print(f"sysbench oltp_write_only without capture: {best_without:,.1f} tps ({runs})")
    print(f"sysbench oltp_write_only with capture:    {best_with:,.1f} tps ({runs})")
    print(f"capture overhead on source writes: {1 - best_with / best_without:.1%}")
    return best_without, best_with


# -- (b) reader rows/s ---------------------------------------------------------------------


def as_text(image: Iterable[Any]) -> Row:
    # Every side compares values as text: the table's DATETIME comes back as a
    # datetime, the reader's as text, the raw log's JSON as text too.
    return tuple(str(v) for v in image)


@dataclass
class FinalState:
    """The table content implied by a sequence of row changes (keyed by id)."""

    rows: dict[str, Row] = field(default_factory=dict)
    changes: int = 0
    transactions: int = 0
    # before-images of rows the state did not hold: changes out of order or lost
    unknown: int = 0

    def apply(self, before: Iterable[Any] | None, after: Iterable[Any] | None) -> None:
        self.changes += 1
        if before is not None and self.rows.pop(as_text(before)[0], None) is None:
            self.unknown += 1
        if after is not None:
            row = as_text(after)
            self.rows[row[0]] = row

    def digest(self) -> str:
        h = hashlib.sha256()
        for key in sorted(self.rows, key=int):
            h.update(json.dumps(self.rows[key]).encode())
        return h.hexdigest()


def create_backlog_table(endpoint: Endpoint) -> Table:
    # sysbench's sbtest plus a DATETIME: only types whose text is exact both ways.
    execute(
        endpoint,
        f"DROP DATABASE IF EXISTS {quote_ident(BENCH_DB)}",
        f"CREATE DATABASE {quote_ident(BENCH_DB)}",
        f"CREATE TABLE {qualified(BENCH_DB, BACKLOG)} ("
        " id INT NOT NULL, k INT NOT NULL DEFAULT 0,"
        " c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '',"
        " updated DATETIME NOT NULL, PRIMARY KEY (id), KEY k_1 (k))",
    )
    return bench_tables(endpoint, [BACKLOG])[0]


def _text(rng: random.Random, length: int) -> str:
    # sysbench-like c/pad: groups of digits separated by dashes
    return "-".join(str(rng.randrange(10**10, 10**11)) for _ in range(length // 12))[:length]


def generate_backlog(endpoint: Endpoint, rows: int, seed: int = 11) -> tuple[int, int]:
    """About *rows* row changes, half INSERTs then UPDATEs of random id ranges, in
    transactions of ``BATCH_ROWS``; returns (row changes, transactions) made."""
    rng = random.Random(seed)
    table = qualified(BENCH_DB, BACKLOG)
    insert = f"INSERT INTO {table} (id, k, c, pad, updated) VALUES (%s, %s, %s, %s, %s)"
    update = f"UPDATE {table} SET k = k + 1, c = %s, updated = %s WHERE id BETWEEN %s AND %s"
    inserts = max(1, rows // 2)
    base = datetime(2024, 1, 1)
    changes = transactions = 0
    conn = connect(endpoint)
    conn.autocommit(False)
    try:
        with conn.cursor() as cur:
            for first in range(1, inserts + 1, BATCH_ROWS):
                values = [
                    (i, rng.randrange(inserts), _text(rng, 120), _text(rng, 60), base)
                    for i in range(first, min(first + BATCH_ROWS, inserts + 1))
                ]
                # PyMySQL sends this as one multi-row INSERT.
                cur.executemany(insert, values)
                conn.commit()
                changes += len(values)
                transactions += 1
            while changes < rows:
                size = min(BATCH_ROWS, rows - changes, inserts)
                first = rng.randint(1, inserts - size + 1)
                stamp = base + timedelta(seconds=changes)
                cur.execute(update, (_text(rng, 120), stamp, first, first + size - 1))
                conn.commit()
                changes += cur.rowcount
                transactions += 1
    finally:
        conn.close()
    return changes, transactions


def read_duosync(
    endpoint: Endpoint, start: TriggerLogPosition, expected: int
) -> tuple[FinalState, float]:
    """Read with ``TriggerLogStream`` until *expected* row changes arrived and the
    stream went idle; the time is until the expected count was reached."""
    state = FinalState()
    apply = state.apply
    stop = threading.Event()
    t0 = time.perf_counter()
    reached: float | None = None
    last = t0

    def ours(db: str, table: str) -> bool:
        return db == BENCH_DB and table == BACKLOG

    with TriggerLogStream(endpoint, start, consumer=CONSUMER, tables=ours, say=say) as stream:
        for item in stream.read(stop):
            now = time.perf_counter()
            if isinstance(item, Transaction):
                state.transactions += 1
                for change in item.changes:
                    if isinstance(change, RowChange):
                        apply(change.before, change.after)
                last = now
                if reached is None and state.changes >= expected:
                    reached = now
            elif reached is not None or now - last > IDLE_LIMIT_S:
                # A Heartbeat: idle (or a transaction of other tables only). Reading
                # on to it, not stopping at the count, is what shows extra rows.
                break
    return state, (reached or time.perf_counter()) - t0


def read_plain(endpoint: Endpoint) -> tuple[FinalState, float]:
    """The floor: one SELECT of the same log rows, json.loads of every image."""
    state = FinalState()
    apply = state.apply
    loads = json.loads
    t0 = time.perf_counter()
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT seq, tx, db, tbl, ver, op, before_img, after_img"
                f" FROM {log.CHANGELOG} WHERE db = %s AND tbl = %s ORDER BY seq",
                (BENCH_DB, BACKLOG),
            )
            txs: set[int] = set()
            for _, tx, _, _, _, _, before, after in cur.fetchall():
                txs.add(int(tx))
                apply(
                    None if before is None else loads(before),
                    None if after is None else loads(after),
                )
    finally:
        conn.close()
    seconds = time.perf_counter() - t0
    state.transactions = len(txs)
    return state, seconds


def table_state(endpoint: Endpoint) -> FinalState:
    state = FinalState()
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT id, k, c, pad, updated FROM {qualified(BENCH_DB, BACKLOG)}")
            for row in cur.fetchall():
                state.apply(None, row)
    finally:
        conn.close()
    return state


def verify(name: str, got: FinalState, made: int, txs: int, table: FinalState) -> None:
    # A fast wrong read means nothing: the reader must see every change, once.
    problems = []
    if got.changes != made:
        problems.append(f"{got.changes} row changes, made {made}")
    if got.transactions != txs:
        problems.append(f"{got.transactions} transactions, made {txs}")
    if got.unknown:
        problems.append(f"{got.unknown} changes of rows not yet inserted")
    if len(got.rows) != len(table.rows):
        problems.append(f"{len(got.rows)} rows implied, table has {len(table.rows)}")
    elif got.digest() != table.digest():
        problems.append("the implied rows differ from the table's")
    if problems:
        raise BenchError(f"{name}: " + "; ".join(problems))


def reader(endpoint: Endpoint, rows: int) -> tuple[float, float]:
    """Rows/s of (TriggerLogStream, plain SELECT) over the same backlog."""
    table = create_backlog_table(endpoint)
    start = capture.install(endpoint, CONSUMER, [table])
    say(f"capture installed on {BENCH_DB}.{BACKLOG}, start {start}; writing ~{rows} changes")
    t0 = time.perf_counter()
    made, txs = generate_backlog(endpoint, rows)
    write_s = time.perf_counter() - t0
    say(f"backlog: {made} row changes in {txs} transactions, written in {write_s:.1f}s")

    ours, ours_s = read_duosync(endpoint, start, made)
    plain, plain_s = read_plain(endpoint)
    actual = table_state(endpoint)
    verify("TriggerLogStream", ours, made, txs, actual)
    verify("plain SELECT", plain, made, txs, actual)
    print(
        f"backlog written with capture: {made} row changes, {txs} transactions"
        f" in {write_s:.1f}s = {made / write_s:,.0f} rows/s"
    )
    print(f"duosync TriggerLogStream: {made} rows in {ours_s:.2f}s = {made / ours_s:,.0f} rows/s")
    print(
        f"plain SELECT + json.loads: {made} rows in {plain_s:.2f}s = {made / plain_s:,.0f} rows/s"
    )
    print(f"reader / plain SELECT: {plain_s / ours_s:.2f}")
    return made / ours_s, made / plain_s


# -- running -------------------------------------------------------------------------------


def reused_endpoint(directory: Path) -> Endpoint:
    statuses = {s.name: s for s in Sandbox(directory).status()}
    if SERVER not in statuses or not statuses[SERVER].serving:
        raise BenchError(
            f"sandbox {directory}: {SERVER} not serving"
            f" (run: .venv/bin/duosync sandbox up --dir {directory})"
        )
    return Endpoint.from_url(statuses[SERVER].url)


def run(endpoint: Endpoint, args: argparse.Namespace) -> float | None:
    say(f"{SERVER}: {endpoint.display}; load average {os.getloadavg()[0]:.2f}")
    # A consumer left by an interrupted run would make install resume from its old
    # position: start clean.
    remove_capture(endpoint)
    ratio: float | None = None
    if not args.skip_overhead:
        without, with_capture = overhead(endpoint, args.seconds, args.rounds)
        ratio = with_capture / without
    if not args.skip_reader:
        reader(endpoint, args.rows)
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument("--seconds", type=int, default=20, help="length of each sysbench run")
    parser.add_argument("--rounds", type=int, default=2, help="sysbench pairs to run")
    parser.add_argument("--rows", type=int, default=200_000, help="row changes in the backlog")
    parser.add_argument("--skip-overhead", action="store_true", help="no sysbench part")
    parser.add_argument("--skip-reader", action="store_true", help="no reader part")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.rounds < 1 or args.rows < 2 * BATCH_ROWS:
        parser.error(f"--seconds, --rounds: at least 1; --rows: at least {2 * BATCH_ROWS}")
    if shutil.which("sysbench") is None and not args.skip_overhead:
        parser.error("sysbench is not installed (scripts/setup installs it)")
    directory: Path | None = None
    box: Sandbox | None = None
    endpoint: Endpoint | None = None
    ratio: float | None = None
    try:
        if args.sandbox is not None:
            endpoint = reused_endpoint(args.sandbox)
        else:
            directory = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
            box = Sandbox(directory, [s for s in DEFAULT_SERVERS if s.name == SERVER])
            say(f"starting a sandbox in {directory}")
            endpoint = Endpoint.from_url(box.up()[0].url)
        ratio = run(endpoint, args)
    except (BenchError, DuosyncError, pymysql.MySQLError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if endpoint is not None:
            cleanup(endpoint)
        if box is not None:
            box.down(purge=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    if ratio is not None:
        print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
