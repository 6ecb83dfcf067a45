"""The servers, the binlog range and the peers of the OLTP backlog part
(``bench/oltp_backlog.py``): connections to the sandbox servers, the ordered row
digests that decide equality, the range X..Y counted by ``mariadb-binlog -v``, and
the two peers applying the same range (``mariadb-binlog | mariadb``, a native
parallel replica on a third, throwaway mariadbd)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
from sandbox_urls import port_of

from duosync.endpoints.mysql.dialect import quote_ident
from duosync.sandbox import HOST, Sandbox, ServerSpec, ServerStatus

SRC_DB = "bench_oltp_src"
REPLAY_DB = "bench_oltp_replay"
TABLES = tuple(f"sbtest{i}" for i in range(1, 5))
SYSBENCH_THREADS = 4
#: the replica's server id: unique among the sandbox servers (1-3) and binlog readers
REPLICA_SERVER_ID = 41


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- servers and SQL ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A sandbox server this part uses: where it listens, and its process for CPU time."""

    name: str
    flavor: str
    port: int
    pid: int | None

    @classmethod
    def of(cls, status: ServerStatus) -> Server:
        return cls(status.name, status.flavor, port_of(status.url), status.pid)

    @property
    def url(self) -> str:
        return f"{self.flavor}://root@{HOST}:{self.port}"


def connect_to(server: Server, db: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(host=HOST, port=server.port, user="root", database=db, autocommit=True)


def execute(server: Server, statements: Sequence[str], db: str | None = None) -> None:
    conn = connect_to(server, db)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


@dataclass(frozen=True, order=True)
class BinlogPos:
    file: str
    pos: int


def master_status(server: Server) -> BinlogPos:
    conn = connect_to(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            if row is None:
                raise BenchError(f"{server.name}: no binlog")
            return BinlogPos(str(row[0]), int(row[1]))
    finally:
        conn.close()


@dataclass(frozen=True)
class TableDigest:
    table: str
    rows: int
    md5: str


def digests(server: Server, db: str) -> list[TableDigest]:
    """Row count and an MD5 over the MD5s of every row in primary-key order, per
    table, computed by the server (it works the same on MariaDB and OceanBase)."""
    conn = connect_to(server, db)
    out: list[TableDigest] = []
    try:
        with conn.cursor() as cur:
            # 25k rows x 32 hex digits: far beyond the default 1 KB
            cur.execute("SET SESSION group_concat_max_len = 67108864")
            for table in TABLES:
                cur.execute(
                    "SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT_WS('#', id, k, c, pad))"
                    f" ORDER BY id SEPARATOR '')) FROM {quote_ident(table)}"
                )
                row = cur.fetchone()
                assert row is not None
                out.append(TableDigest(table, int(row[0]), str(row[1])))
    finally:
        conn.close()
    return out


def check_equal(source: Server, target: Server, db: str, what: str) -> None:
    want, got = digests(source, SRC_DB), digests(target, db)
    if want != got:
        raise BenchError(f"{what}: {target.name}.{db} differs from the source: {got} vs {want}")


# -- the binlog range ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BinlogRange:
    """Everything the source logged from *start* (exclusive: the position before the
    first event) to *end* (the position after the last)."""

    start: BinlogPos
    end: BinlogPos

    def files(self, source: Server) -> list[str]:
        conn = connect_to(source)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW BINARY LOGS")
                names = [str(r[0]) for r in cur.fetchall()]
        finally:
            conn.close()
        return [n for n in names if self.start.file <= n <= self.end.file]

    def reader(self, source: Server, *extra: str) -> list[str]:
        """The mariadb-binlog command reading the range from the server."""
        return [
            "mariadb-binlog",
            "--read-from-remote-server",
            f"--host={HOST}",
            f"--port={source.port}",
            "--user=root",
            f"--start-position={self.start.pos}",
            f"--stop-position={self.end.pos}",
            *extra,
            *self.files(source),
        ]


@dataclass(frozen=True)
class RangeCount:
    """Row changes and transactions in a range, decoded by mariadb-binlog -v."""

    rows: int
    transactions: int
    per_table: dict[str, int] = field(default_factory=dict)

    @property
    def backlog_rows(self) -> int:
        """The sysbench tables' row changes (the sentinel's one is left out)."""
        return sum(n for t, n in self.per_table.items() if t.split(".")[-1] in TABLES)


def count_range(source: Server, rng: BinlogRange) -> RangeCount:
    cmd = rng.reader(source, "--base64-output=decode-rows", "--verbose")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"mariadb-binlog failed: {proc.stderr[-2000:]}")
    pattern = re.compile(r"^### (?:INSERT INTO|UPDATE|DELETE FROM) (\S+)$", re.MULTILINE)
    per_table = Counter(m.group(1).replace("`", "") for m in pattern.finditer(proc.stdout))
    transactions = len(re.findall(r"\bXid = \d+", proc.stdout))
    other = [t for t in per_table if not t.startswith(f"{SRC_DB}.")]
    if other:
        # Another writer in the range would make the peers apply more than duosync.
        raise BenchError(f"the backlog range holds changes of other tables: {other}")
    return RangeCount(sum(per_table.values()), transactions, dict(per_table))


# -- the peers ---------------------------------------------------------------------------------


def copy_database(source: Server, target: Server, db: str) -> None:
    """The source database as it is now (quiescent) into *db* on *target*."""
    execute(
        target, [f"DROP DATABASE IF EXISTS {quote_ident(db)}", f"CREATE DATABASE {quote_ident(db)}"]
    )
    dump = ["mariadb-dump", f"--host={HOST}", f"--port={source.port}", "--user=root"]
    load = ["mariadb", f"--host={HOST}", f"--port={target.port}", "--user=root", db]
    _pipe([*dump, "--single-transaction", SRC_DB], load)


def _pipe(producer: list[str], consumer: list[str]) -> None:
    left = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    right = subprocess.Popen(consumer, stdin=left.stdout, stderr=subprocess.PIPE)
    assert left.stdout is not None
    left.stdout.close()  # the consumer owns the pipe now: a failing consumer stops the producer
    _, right_err = right.communicate()
    _, left_err = left.communicate()
    if left.returncode != 0 or right.returncode != 0:
        raise BenchError(f"{producer[0]} | {consumer[0]} failed: {left_err!r} {right_err!r}")


def binlog_replay(source: Server, target: Server, rng: BinlogRange) -> float:
    """``mariadb-binlog | mariadb`` of the range into REPLAY_DB; seconds taken."""
    reader = rng.reader(source, f"--rewrite-db={SRC_DB}->{REPLAY_DB}")
    started = time.monotonic()
    _pipe(reader, ["mariadb", f"--host={HOST}", f"--port={target.port}", "--user=root"])
    return time.monotonic() - started


@contextmanager
def replica_server() -> Iterator[Server]:
    """A third, throwaway MariaDB started like the sandbox's (binlog, log_slave_updates)."""
    directory = Path(tempfile.mkdtemp(prefix="duosync-bench-replica-"))
    box = Sandbox(directory, (ServerSpec("replica1", "mariadb", REPLICA_SERVER_ID),))
    try:
        say(f"starting a replica server in {directory}")
        yield Server.of(box.up()[0])
    finally:
        box.down(purge=True)
        shutil.rmtree(directory, ignore_errors=True)


def _point_replica(cur: Any, source: Server, start: BinlogPos, mode: str) -> None:
    """The replica, stopped, set to replicate *source* from *start* with
    ``slave_parallel_threads`` as sysbench's threads and *mode*."""
    cur.execute("STOP SLAVE")
    cur.execute("RESET SLAVE ALL")
    cur.execute("SET GLOBAL slave_parallel_threads = %s", (SYSBENCH_THREADS,))
    cur.execute("SET GLOBAL slave_parallel_mode = %s", (mode,))
    cur.execute(
        "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = 'root',"
        " MASTER_PASSWORD = '', MASTER_LOG_FILE = %s, MASTER_LOG_POS = %s,"
        " MASTER_USE_GTID = no",
        (HOST, source.port, start.file, start.pos),
    )


def native_replica(source: Server, replica: Server, rng: BinlogRange, mode: str) -> float:
    """The replica applies X..Y (``START SLAVE UNTIL``); seconds from START SLAVE
    until its SQL thread has executed up to Y."""
    conn = connect_to(replica)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            _point_replica(cur, source, rng.start, mode)
            started = time.monotonic()
            cur.execute(
                "START SLAVE UNTIL MASTER_LOG_FILE = %s, MASTER_LOG_POS = %s",
                (rng.end.file, rng.end.pos),
            )
            seconds = _wait_replica(cur, rng.end, started)
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
            return seconds
    finally:
        conn.close()


@contextmanager
def live_replica(source: Server, replica: Server, start: BinlogPos, mode: str) -> Iterator[None]:
    """The replica replicates *source* from *start* (where its data is) with no
    end, as a live replica does, once caught up with the source's position now;
    stopped and reset on leaving."""
    conn = connect_to(replica)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            _point_replica(cur, source, start, mode)
            cur.execute("START SLAVE")
            _wait_replica(cur, master_status(source), time.monotonic())
            try:
                yield
            finally:
                cur.execute("STOP SLAVE")
                cur.execute("RESET SLAVE ALL")
    finally:
        conn.close()


def _wait_replica(cur: Any, end: BinlogPos, started: float) -> float:
    while time.monotonic() - started < 900:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
        if row is None:
            raise BenchError("replica: no slave status")
        if row["Last_SQL_Errno"] or row["Last_IO_Errno"]:
            raise BenchError(f"replica: {row['Last_SQL_Error'] or row['Last_IO_Error']}")
        done = BinlogPos(str(row["Relay_Master_Log_File"]), int(row["Exec_Master_Log_Pos"]))
        if done >= end:
            return time.monotonic() - started
        time.sleep(0.02)
    raise BenchError("replica: not at the end of the range after 900 s")
