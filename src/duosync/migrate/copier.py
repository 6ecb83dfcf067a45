"""Full migration: copy key-range chunks with parallel readers and writers.

Pipeline: ``read_concurrency`` reader threads each take a chunk, read its rows from
the source into memory, and put them on a bounded queue; ``write_concurrency``
writer threads take them off and write each chunk in one target transaction; the
calling thread records finished chunks in the metadata store. The bounded queue is
the back-pressure: readers wait when writers fall behind.

Resume without loss or duplicates: a chunk is recorded done only after its target
transaction committed. A chunk that is not recorded done is written again from
scratch; in ``stop`` mode its key range is first emptied in the same transaction
(the target table was verified empty before the first write, so only our own rows
can be there), in ``ignore`` mode rows whose key exists are kept and compared.

Values cross as the servers' own text (and bytes for binary types): the reader
connection has no result converters, so nothing is lost to a Python type
(zero dates, DECIMAL(65,30), TIME beyond 24 h) and no time goes to converting.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql.converters
from pymysql.connections import Connection

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.endpoints.mysql.connection import connect, translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import DuosyncError, RetriableError
from duosync.migrate.chunks import Chunk, range_condition
from duosync.migrate.ratelimit import RateLimiter

# Encoders only: arguments are escaped as usual, results stay text/bytes.
_TEXT_CONV = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def text_connect(endpoint: Endpoint) -> Connection[Any]:
    """A connection whose results are the server's text (bytes for binary types).

    READ COMMITTED: writers of neighbouring key ranges must not block each other
    on gap locks (REPEATABLE READ locks the gap after an open-ended range)."""
    conn = connect(endpoint, conv=_TEXT_CONV)
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn


_WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class CopyJob:
    """One table to copy: source and target names, columns, key and filter."""

    source: Table
    target: Table
    #: (source column, target column) pairs, generated columns excluded
    columns: tuple[tuple[str, str], ...]
    #: row identity on the source side and its target names (empty: full scan)
    key: tuple[str, ...]
    target_key: tuple[str, ...]
    where: str | None
    chunks: tuple[Chunk, ...]
    ignore_existing: bool
    #: chunks planned by an earlier run that did not record them done: their range
    #: may hold rows that run wrote, so ``stop`` mode empties it first
    resumed: frozenset[int] = frozenset()

    @property
    def name(self) -> str:
        return self.source.qualified


@dataclass
class ChunkResult:
    job: CopyJob
    chunk: Chunk
    rows: int
    nbytes: int
    conflicts: list[tuple[list[Any], str]] = field(default_factory=list)


ChunkDone = Callable[[ChunkResult], None]


def _row_bytes(rows: Sequence[Sequence[Any]]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for r in rows for v in r)


def _select_expr(table: Table, name: str) -> str:
    # FLOAT's text form has 6 significant digits, which would round the value; the
    # double that holds the float exactly rounds back to the very same float.
    if table.column(name).data_type == "float":
        return f"CAST({quote_ident(name)} AS DOUBLE)"
    return quote_ident(name)


def read_chunk(conn: Connection[Any], job: CopyJob, chunk: Chunk) -> list[tuple[Any, ...]]:
    cols = ", ".join(_select_expr(job.source, s) for s, _ in job.columns)
    cond, args = range_condition(job.key, chunk.lower, chunk.upper)
    where = f"({cond})" + (f" AND ({job.where})" if job.where else "")
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {cols} FROM {qualified(job.source.database, job.source.name)} WHERE {where}",
            args,
        )
        return list(cur.fetchall())


def write_chunk(
    conn: Connection[Any], job: CopyJob, chunk: Chunk, rows: list[tuple[Any, ...]]
) -> ChunkResult:
    """Write one chunk in one transaction; safe to repeat (see module docstring)."""
    target = qualified(job.target.database, job.target.name)
    cond, args = range_condition(job.target_key, chunk.lower, chunk.upper)
    names = [t for _, t in job.columns]
    result = ChunkResult(job, chunk, 0, _row_bytes(rows))
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            if job.ignore_existing and job.target_key:
                rows = _without_existing(cur, job, target, cond, args, names, rows, result)
            elif not job.ignore_existing and chunk.index in job.resumed:
                cur.execute(f"DELETE FROM {target} WHERE {cond}", args)
            if rows:
                marks = ", ".join(["%s"] * len(names))
                cur.executemany(
                    f"INSERT INTO {target} ({', '.join(quote_ident(n) for n in names)})"
                    f" VALUES ({marks})",
                    rows,
                )
            cur.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
    result.rows = len(rows)
    return result


def _without_existing(
    cur: Any,
    job: CopyJob,
    target: str,
    cond: str,
    args: list[Any],
    names: list[str],
    rows: list[tuple[Any, ...]],
    result: ChunkResult,
) -> list[tuple[Any, ...]]:
    """``ignore`` mode: keep target rows whose key exists; record those that differ."""
    cur.execute(
        f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {target} WHERE {cond} FOR UPDATE",
        args,
    )
    key_pos = [names.index(k) for k in job.target_key]
    existing = {tuple(r[i] for i in key_pos): tuple(r) for r in cur.fetchall()}
    if not existing:
        return rows
    keep = []
    for row in rows:
        key = tuple(row[i] for i in key_pos)
        have = existing.get(key)
        if have is None:
            keep.append(row)
        elif have != tuple(row):
            result.conflicts.append(
                ([_jsonable(v) for v in key], "target row exists and differs; target kept")
            )
    return keep


def _jsonable(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else v


def run_copy(
    jobs: Sequence[CopyJob],
    source: Endpoint,
    target: Endpoint,
    *,
    read_concurrency: int,
    write_concurrency: int,
    limiter: RateLimiter,
    on_done: ChunkDone,
    task: str,
) -> None:
    """Copy every pending chunk of *jobs*; call *on_done* (in this thread) per chunk."""
    work: queue.Queue[tuple[CopyJob, Chunk] | None] = queue.Queue()
    for job in jobs:
        for chunk in job.chunks:
            work.put((job, chunk))
    total = work.qsize()
    if total == 0:
        return
    readers = max(1, min(read_concurrency, total))
    writers = max(1, min(write_concurrency, total))
    for _ in range(readers):
        work.put(None)
    data: queue.Queue[tuple[CopyJob, Chunk, list[tuple[Any, ...]]]] = queue.Queue(
        maxsize=max(2, writers * 2)
    )
    done: queue.Queue[ChunkResult | BaseException] = queue.Queue()
    stop = threading.Event()

    def reader() -> None:
        try:
            conn = text_connect(source)
        except BaseException as exc:
            done.put(exc)
            return
        try:
            while not stop.is_set():
                item = work.get()
                if item is None:
                    break
                job, chunk = item
                try:
                    rows = read_chunk(conn, job, chunk)
                except pymysql.err.MySQLError as exc:
                    raise translate(exc, source, table=job.name) from None
                while not stop.is_set():
                    try:
                        data.put((job, chunk, rows), timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:
            done.put(exc)
        finally:
            conn.close()

    def writer() -> None:
        try:
            conn = text_connect(target)
        except BaseException as exc:
            done.put(exc)
            return
        try:
            while not stop.is_set():
                try:
                    item = data.get(timeout=0.5)
                except queue.Empty:
                    continue
                job, chunk, rows = item
                limiter.acquire(len(rows), _row_bytes(rows))
                for attempt in range(1, _WRITE_ATTEMPTS + 1):
                    try:
                        done.put(write_chunk(conn, job, chunk, rows))
                        break
                    except pymysql.err.MySQLError as exc:
                        error = translate(exc, target, table=job.target.qualified)
                        # A deadlock or lock wait rolled the chunk back whole: retry it.
                        if not isinstance(error, RetriableError) or attempt == _WRITE_ATTEMPTS:
                            raise error from None
                        time.sleep(0.05 * 2**attempt)
        except BaseException as exc:
            done.put(exc)
        finally:
            conn.close()

    threads = [
        threading.Thread(target=reader, name=f"reader-{i}", daemon=True) for i in range(readers)
    ]
    wthreads = [
        threading.Thread(target=writer, name=f"writer-{i}", daemon=True) for i in range(writers)
    ]
    for t in threads + wthreads:
        t.start()
    failure: BaseException | None = None
    finished = 0
    try:
        while finished < total:
            got = done.get()
            if isinstance(got, BaseException):
                failure = got
                break
            on_done(got)
            finished += 1
    except BaseException as exc:  # Ctrl-C: stop cleanly at a chunk boundary
        failure = exc
    finally:
        stop.set()  # readers and writers poll it and leave within half a second
        for t in threads + wthreads:
            t.join(timeout=30)
    if failure is not None:
        if isinstance(failure, DuosyncError):
            if failure.task is None:
                failure.task = task
            raise failure
        raise failure
