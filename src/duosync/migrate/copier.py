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

Values cross as the servers' own text, never as Python values, so nothing is lost
to a Python type (zero dates, DECIMAL(65,30), TIME beyond 24 h). In ``stop`` mode
the source renders each chunk and Python only forwards it: as ``LOAD DATA`` lines
(``migrate.tsv``) to a MariaDB or MySQL target that allows ``LOAD DATA LOCAL``, as
the ``VALUES`` list of an INSERT (``migrate.literals``) otherwise; ``ignore`` mode
must compare rows with the target's, so it reads them as text/bytes through a
connection without result converters and lets the driver escape them.

A load is all or nothing like an INSERT (one InnoDB transaction per chunk), but
the server turns a refused value into a warning and skips a duplicate key instead
of failing. So a load that raised a warning, or wrote fewer rows than it was sent,
is rolled back and the chunk written again with INSERTs, whose strict-mode errors
are the same as without loads (and name the row at fault). OceanBase targets always
get INSERTs: seekdb's LOAD DATA was measured to commit outside the open transaction
(a ROLLBACK kept its rows) and to cut over-long values and skip duplicate keys
without a warning.

A row the target refuses (a value out of its range, say) fails its whole chunk; the
chunk is then replayed row by row in a transaction that is rolled back, only to name
the first refused row's key in the error.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql.converters
from pymysql.connections import Connection

from duosync.config import Endpoint, Flavor
from duosync.core.catalog import Table
from duosync.endpoints.mysql.connection import connect, driver_errors, translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.local_infile import load_local
from duosync.errors import DataError, DuosyncError, RetriableError
from duosync.migrate import tsv
from duosync.migrate.chunks import Chunk, range_condition
from duosync.migrate.literals import row_expr
from duosync.migrate.ratelimit import RateLimiter

# Encoders only: arguments are escaped as usual, results stay text/bytes.
_TEXT_CONV = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


#: seconds a copy or verify statement may wait for the server's answer: a chunk is
#: read or written in seconds, so silence this long means a dead (half-open) link
COPY_TIMEOUT = 300.0


def open_connection(endpoint: Endpoint, **options: Any) -> Connection[Any]:
    """``connection.connect``: one connection of a copy or verify."""
    return connect(endpoint, **options)


def text_connect(
    endpoint: Endpoint, *, timeout: float | None = COPY_TIMEOUT, local_infile: bool = False
) -> Connection[Any]:
    """A connection whose results are the server's text (bytes for binary types).

    READ COMMITTED: writers of neighbouring key ranges must not block each other
    on gap locks (REPEATABLE READ locks the gap after an open-ended range).
    A read or write that waits longer than *timeout* raises ``RetriableError``
    (a connection whose peer vanished without a reset would wait forever); None
    waits as long as the statement takes (DDL). *local_infile* lets the session
    run ``LOAD DATA LOCAL`` (``endpoints.mysql.local_infile``)."""
    conn = open_connection(
        endpoint,
        conv=_TEXT_CONV,
        read_timeout=timeout,
        write_timeout=timeout,
        local_infile=local_infile,
    )
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # Literals rendered by QUOTE() and by the driver use backslash escapes.
        cur.execute("SELECT @@SESSION.sql_mode")
        row = cur.fetchone()
        modes = str(row[0] if row else "").split(",")
        if "NO_BACKSLASH_ESCAPES" in modes:
            kept = ",".join(m for m in modes if m and m != "NO_BACKSLASH_ESCAPES")
            cur.execute("SET SESSION sql_mode = %s", (kept,))
    return conn


def max_packet(conn: Connection[Any]) -> int:
    """The largest statement or result row the server takes (max_allowed_packet)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@max_allowed_packet")
        row = cur.fetchone()
    return int(row[0]) if row else 1 << 22


#: Upper bound of one INSERT's VALUES text: larger statements gain nothing and cost
#: memory on both servers.
MAX_STATEMENT = 16 << 20
#: Room left in a packet for the statement's ``INSERT INTO ... (columns) VALUES``.
_HEADER_ROOM = 256 << 10


_WRITE_ATTEMPTS = 5
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


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


@dataclass(frozen=True)
class Rendered:
    """Rows rendered by the source as one piece of text, and how many rows it holds."""

    text: bytes
    rows: int


@dataclass
class ChunkData:
    """A chunk's rows as read: literal ``VALUES`` lists, ``LOAD DATA`` lines, or
    text rows (``ignore``)."""

    rows: int
    nbytes: int
    #: each element is ``(..),(..)`` text that fits one INSERT statement
    literals: list[bytes] | None = None
    typed: list[tuple[Any, ...]] | None = None
    #: each element is lines (``migrate.tsv``) without the last newline
    lines: list[Rendered] | None = None


class LoadRefused(Exception):
    """A load raised warnings or wrote other than the rows sent: insert instead."""


def _row_bytes(rows: Sequence[Sequence[Any]]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for r in rows for v in r)


def _chunk_where(job: CopyJob, chunk: Chunk) -> tuple[str, list[Any]]:
    cond, args = range_condition(job.key, chunk.lower, chunk.upper)
    # The statement is formatted with bound arguments, so a '%' of the user's filter
    # (LIKE 'FR%') must be doubled to reach the server as written.
    where = f" AND ({job.where.replace('%', '%%')})" if job.where else ""
    return f"({cond}){where}", args


def set_literal_limit(conn: Connection[Any], limit: int) -> None:
    """Let GROUP_CONCAT build values lists up to *limit* bytes on this session."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION group_concat_max_len = %s", (limit,))


def read_chunk_literals(conn: Connection[Any], job: CopyJob, chunk: Chunk, limit: int) -> ChunkData:
    """The chunk as INSERT values text rendered by the source (``migrate.literals``)."""
    row = row_expr(job.source, [s for s, _ in job.columns])
    pieces = _read_rendered(conn, job, chunk, limit, row, b",")
    rows, nbytes = sum(p.rows for p in pieces), sum(len(p.text) for p in pieces)
    return ChunkData(rows, nbytes, literals=[p.text for p in pieces])


def read_chunk_lines(conn: Connection[Any], job: CopyJob, chunk: Chunk, limit: int) -> ChunkData:
    """The chunk as ``LOAD DATA`` lines rendered by the source (``migrate.tsv``)."""
    line = tsv.line_expr(job.source, [s for s, _ in job.columns])
    pieces = _read_rendered(conn, job, chunk, limit, line, b"\n")
    rows, nbytes = sum(p.rows for p in pieces), sum(len(p.text) for p in pieces)
    return ChunkData(rows, nbytes, lines=pieces)


def _read_rendered(
    conn: Connection[Any], job: CopyJob, chunk: Chunk, limit: int, expr: str, separator: bytes
) -> list[Rendered]:
    """The chunk's rows rendered by *expr*, joined by *separator*, in pieces under *limit*.

    One GROUP_CONCAT per chunk; when its text would reach *limit* (the session's
    group_concat_max_len, which then cuts it) the rows are read one by one instead
    and packed into several pieces.
    """
    where, args = _chunk_where(job, chunk)
    table = qualified(job.source.database, job.source.name)
    sep = separator.decode()
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), GROUP_CONCAT({expr} SEPARATOR %s) FROM {table} WHERE {where}",
            [sep, *args],
        )
        got = cur.fetchone()
        count, text = (int(got[0]), got[1]) if got else (0, None)
        if count == 0 or text is None:
            return []
        if len(text) < limit:
            return [Rendered(bytes(text), count)]
        cur.execute(f"SELECT {expr} FROM {table} WHERE {where}", args)
        pieces: list[Rendered] = []
        batch: list[bytes] = []
        size = 0
        for (value,) in cur.fetchall():
            if batch and size + len(value) + 1 > limit:
                pieces.append(Rendered(separator.join(batch), len(batch)))
                batch, size = [], 0
            batch.append(bytes(value))
            size += len(value) + 1
        if batch:
            pieces.append(Rendered(separator.join(batch), len(batch)))
    return pieces


def _select_expr(table: Table, name: str) -> str:
    # FLOAT's text form has 6 significant digits, which would round the value; the
    # double that holds the float exactly rounds back to the very same float.
    if table.column(name).data_type == "float":
        return f"CAST({quote_ident(name)} AS DOUBLE)"
    return quote_ident(name)


def read_chunk(conn: Connection[Any], job: CopyJob, chunk: Chunk) -> ChunkData:
    """The chunk's rows as the server's text (bytes for binary types)."""
    cols = ", ".join(_select_expr(job.source, s) for s, _ in job.columns)
    where, args = _chunk_where(job, chunk)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {cols} FROM {qualified(job.source.database, job.source.name)} WHERE {where}",
            args,
        )
        rows = list(cur.fetchall())
    return ChunkData(len(rows), _row_bytes(rows), typed=rows)


def _insert_header(job: CopyJob) -> str:
    names = ", ".join(quote_ident(t) for _, t in job.columns)
    return f"INSERT INTO {qualified(job.target.database, job.target.name)} ({names}) VALUES "


def write_chunk(conn: Connection[Any], job: CopyJob, chunk: Chunk, data: ChunkData) -> ChunkResult:
    """Write one chunk in one transaction; safe to repeat (see module docstring)."""
    target = qualified(job.target.database, job.target.name)
    cond, args = range_condition(job.target_key, chunk.lower, chunk.upper)
    names = [t for _, t in job.columns]
    result = ChunkResult(job, chunk, data.rows, data.nbytes)
    header = _insert_header(job)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            _empty_if_resumed(cur, job, chunk)
            if data.lines is not None:
                _load_lines(conn, job, data.lines)
            elif data.literals is not None:
                for values in data.literals:
                    _execute_bytes(cur, header.encode() + values)
            else:
                rows = data.typed or []
                if job.ignore_existing and job.target_key:
                    rows = _without_existing(cur, job, target, cond, args, names, rows, result)
                if rows:
                    marks = ", ".join(["%s"] * len(names))
                    cur.executemany(f"{header}({marks})", rows)
                result.rows = len(rows)
            cur.execute("COMMIT")
        except BaseException:
            # a dead connection cannot roll back (the server did): keep the first error
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                conn.rollback()
            raise
    return result


def _load_lines(conn: Connection[Any], job: CopyJob, pieces: Sequence[Rendered]) -> None:
    """Load each piece; ``LoadRefused`` unless every row went in without a warning."""
    statement = tsv.load_statement(job.source, job.target.database, job.target.name, job.columns)
    for piece in pieces:
        # The newline ends the last line: without it a last empty field would be
        # taken as missing (NULL and a warning).
        got = load_local(conn, statement, tsv.TOKEN, (piece.text, b"\n"))
        if got.warnings or got.rows != piece.rows:
            raise LoadRefused(f"{job.target.qualified}: {piece.rows} rows sent, {got.message}")


def _empty_if_resumed(cur: Any, job: CopyJob, chunk: Chunk) -> None:
    """``stop`` mode, a chunk an earlier run may have half written: empty its range
    (only our own rows can be there: the table was empty before the first write)."""
    if not job.ignore_existing and chunk.index in job.resumed:
        cond, args = range_condition(job.target_key, chunk.lower, chunk.upper)
        target = qualified(job.target.database, job.target.name)
        cur.execute(f"DELETE FROM {target} WHERE {cond}", args)


def _execute_bytes(cur: Any, statement: bytes) -> None:
    # The statement holds utf8mb4 text and hex only; sending the bytes as they are
    # spares decoding and re-encoding megabytes per chunk (PyMySQL accepts bytes).
    cur.execute(statement)


def first_refused_row(
    source: Connection[Any], target: Connection[Any], job: CopyJob, chunk: Chunk
) -> tuple[str, Exception] | None:
    """Replay the chunk row by row in a rolled-back transaction; the first row the
    target refuses, as ``(key text, driver error)``, or None if none is refused."""
    row = row_expr(job.source, [s for s, _ in job.columns])
    keys = ", ".join(quote_ident(k) for k in job.key) or "NULL"
    where, args = _chunk_where(job, chunk)
    table = qualified(job.source.database, job.source.name)
    # in key order, so that of two rows colliding on the target the later is named
    order = f" ORDER BY {keys}" if job.key else ""
    with source.cursor() as cur:
        cur.execute(f"SELECT {keys}, {row} FROM {table} WHERE {where}{order}", args)
        rows = list(cur.fetchall())
    header = _insert_header(job).encode()
    with target.cursor() as cur:
        cur.execute("BEGIN")
        try:
            _empty_if_resumed(cur, job, chunk)
            for *key, values in rows:
                try:
                    _execute_bytes(cur, header + values)
                except pymysql.err.MySQLError as exc:
                    if not job.key:
                        return "(no key: a full-scan table)", exc
                    shown = ", ".join(_show(v) for v in key)
                    return f"({', '.join(job.key)}) = ({shown})", exc
        finally:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                target.rollback()
    return None


def _show(value: Any) -> str:
    """A key value as a user would type it: numbers bare, text quoted, bytes hex."""
    if isinstance(value, bytes):
        raw: bytes = value
        try:
            value = raw.decode()
        except UnicodeDecodeError:
            return "0x" + raw.hex()
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        return repr(value)
    return str(value)


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


def _literal_limit(source: Endpoint, target: Endpoint) -> int:
    """Bytes of VALUES text per statement: what both servers' packets take."""
    sizes = [MAX_STATEMENT]
    for endpoint in (source, target):
        # first connection of the copy: learns whether the server offers TLS
        conn = open_connection(endpoint)
        try:
            sizes.append(max_packet(conn) - _HEADER_ROOM)
        except pymysql.err.MySQLError as exc:
            raise translate(exc, endpoint) from None
        finally:
            conn.close()
    return max(min(sizes), 64 << 10)


def _target_loads(target: Endpoint) -> bool:
    """Whether chunks go to *target* by ``LOAD DATA LOCAL`` (module docstring)."""
    if target.flavor is Flavor.OCEANBASE:
        return False
    conn = open_connection(target, local_infile=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@local_infile")
            row = cur.fetchone()
    except pymysql.err.MySQLError as exc:
        raise translate(exc, target) from None
    finally:
        conn.close()
    # MySQL 8 ships with local_infile OFF: such a target gets INSERTs
    return bool(row and str(row[0]) in ("1", "ON"))


def _inserts_instead(source: Endpoint, job: CopyJob, chunk: Chunk, limit: int) -> ChunkData:
    """The chunk read again as INSERT values (a load of it was refused)."""
    conn = text_connect(source)
    try:
        set_literal_limit(conn, limit)
        return read_chunk_literals(conn, job, chunk, limit)
    except pymysql.err.MySQLError as exc:
        raise translate(exc, source, table=job.name) from None
    finally:
        conn.close()


def _name_refused_row(
    error: DataError,
    source: Endpoint,
    target: Endpoint,
    conn: Connection[Any],
    job: CopyJob,
    chunk: Chunk,
) -> DataError:
    """The chunk's error, naming the first row the target refuses (if one is found)."""
    try:
        src = text_connect(source)
    except DuosyncError:
        return error
    try:
        found = first_refused_row(src, conn, job, chunk)
    except pymysql.err.MySQLError:
        return error
    finally:
        src.close()
    if found is None:
        return error
    key, exc = found
    refused = translate(exc, target, table=job.target.qualified)
    return DataError(
        f"the target refuses source row {key} of {job.name}: {refused.message}",
        endpoint=error.endpoint,
        table=job.target.qualified,
        hint="change or filter out that row on the source, or widen the target column",
    )


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
    cancel: threading.Event | None = None,
) -> None:
    """Copy every pending chunk of *jobs*; call *on_done* (in this thread) per chunk.
    Setting *cancel* (a pause, a shutdown) stops it within about a second: chunks
    under way are left unrecorded, so a resume copies them again (their range is
    emptied first), and nothing is lost or doubled."""
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
    limit = _literal_limit(source, target)
    loads = _target_loads(target)
    # None tells a writer to leave at once (it would otherwise notice *stop* only at
    # its next half-second poll, which every run paid at its end).
    data: queue.Queue[tuple[CopyJob, Chunk, ChunkData] | None] = queue.Queue(
        maxsize=max(2, writers * 2)
    )
    done: queue.Queue[ChunkResult | BaseException] = queue.Queue()
    stop = threading.Event()

    def reader() -> None:
        try:
            conn = text_connect(source)
            set_literal_limit(conn, limit)
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
                    if job.ignore_existing:
                        rows = read_chunk(conn, job, chunk)
                    elif loads:
                        rows = read_chunk_lines(conn, job, chunk, limit)
                    else:
                        rows = read_chunk_literals(conn, job, chunk, limit)
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
            conn = text_connect(target, local_infile=loads)
        except BaseException as exc:
            done.put(exc)
            return
        try:
            while not stop.is_set():
                try:
                    item = data.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    break
                job, chunk, rows = item
                limiter.acquire(rows.rows, rows.nbytes)
                for attempt in range(1, _WRITE_ATTEMPTS + 1):
                    try:
                        done.put(write_chunk(conn, job, chunk, rows))
                        break
                    except LoadRefused:
                        # rolled back whole: the INSERTs say what the target refuses
                        rows = _inserts_instead(source, job, chunk, limit)
                    except pymysql.err.MySQLError as exc:
                        error = translate(exc, target, table=job.target.qualified)
                        if isinstance(error, DataError):
                            raise _name_refused_row(
                                error, source, target, conn, job, chunk
                            ) from None
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
        while finished < total and not (cancel is not None and cancel.is_set()):
            try:
                got = done.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(got, BaseException):
                failure = got
                break
            on_done(got)
            finished += 1
    except BaseException as exc:  # Ctrl-C: stop cleanly at a chunk boundary
        failure = exc
    finally:
        stop.set()  # readers and writers poll it and leave within half a second
        for _ in wthreads:
            # A full queue means writers are busy: they see *stop* after that item.
            with contextlib.suppress(queue.Full):
                data.put_nowait(None)
        for t in threads + wthreads:
            t.join(timeout=30)
    if failure is not None:
        if isinstance(failure, DuosyncError):
            if failure.task is None:
                failure.task = task
            raise failure
        raise failure
