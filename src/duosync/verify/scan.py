"""Comparing whole tables chunk by chunk, in parallel.

Each selected table is split into primary-key range chunks (``core.copying``,
boundaries walked on the source). For every chunk both servers compute a row count
and a checksum of the chunk's rows (``normalize.checksum_sql``), so only two numbers
per chunk cross the network; the rows of a chunk are read (as key -> digest) only
when its checksums differ. ``concurrency`` worker threads each hold one connection
to either side and take chunks off a shared queue.

Keys whose order differs between the sides (text keys under another collation or
server family) may put a row in chunk 3 on the source and chunk 4 on the target. It
then shows as missing in one chunk and extra in the other; such keys, and on those
tables every extra key, are looked up by key on both sides once the table is done
(binary key comparison), so a row is never reported because of where it sorts. The
chunks themselves still use each side's own collation, hence its index.

A task whose incremental sync does not carry every kind of row change
(``options.dml``) leaves some rows different on purpose: without ``insert`` rows
missing on the target, without ``delete`` extra rows, without ``update`` rows whose
values differ. Once a table's rows are settled those are set aside as *kept*
(``TableState.set_aside``): counted and listed apart, never a difference, never
rechecked nor fixed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pymysql.connections import Connection

from duosync.config import Endpoint
from duosync.core.copying import Chunk
from duosync.core.copying import Key as Bound
from duosync.endpoints.mysql.connection import driver_errors
from duosync.endpoints.mysql.ranges import plan_chunks
from duosync.endpoints.mysql.sessions import text_connect
from duosync.spec import DmlKind
from duosync.verify.compare import Diff, Readers, compare_keys, diff_chunk
from duosync.verify.pairs import TablePair
from duosync.verify.report import TableReport, ordered
from duosync.verify.rows import Key, SideReader

#: differing keys kept per kind and table for the recheck and --fix; beyond it only
#: counts are kept, so a table that differs entirely cannot exhaust memory
KEEP_KEYS = 100_000

_INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})

Say = Callable[[str], None]

#: the kind of difference a row change kind leaves when it is not carried
LEFT_BY = {DmlKind.INSERT: "missing", DmlKind.DELETE: "extra", DmlKind.UPDATE: "different"}

_V = TypeVar("_V")


def _move(src: dict[Key, _V], dst: dict[Key, _V]) -> int:
    """Move *src*'s entries to *dst* up to KEEP_KEYS; how many did not fit."""
    over = 0
    for k, v in src.items():
        if len(dst) < KEEP_KEYS:
            dst[k] = v
        else:
            over += 1
    src.clear()
    return over


@dataclass
class TableState:
    """A table's comparison in progress (and, when done, what --fix needs)."""

    report: TableReport
    pair: TablePair | None
    source: SideReader | None = None
    target: SideReader | None = None
    diff: Diff = field(default_factory=Diff)
    #: differing rows counted but not kept (beyond KEEP_KEYS), per kind
    overflow: dict[str, int] = field(
        default_factory=lambda: {"missing": 0, "extra": 0, "different": 0}
    )
    chunks_left: int = 0
    #: the row change kinds the task's incremental sync carries (``options.dml``)
    carried: frozenset[DmlKind] = frozenset(DmlKind)
    #: rows that differ only as a kind not carried leaves them (see the module
    #: docstring), and those counted beyond KEEP_KEYS
    kept: Diff = field(default_factory=Diff)
    kept_overflow: dict[str, int] = field(
        default_factory=lambda: {"missing": 0, "extra": 0, "different": 0}
    )

    @property
    def truncated(self) -> bool:
        return any(self.overflow.values())

    def add(self, found: Diff) -> None:
        for kind, mine, new in (
            ("missing", self.diff.missing, found.missing),
            ("extra", self.diff.extra, found.extra),
        ):
            for k, v in new.items():
                if len(mine) < KEEP_KEYS:
                    mine[k] = v
                else:
                    self.overflow[kind] += 1
        for k, cols in found.different.items():
            if len(self.diff.different) < KEEP_KEYS:
                self.diff.different[k] = cols
            else:
                self.overflow["different"] += 1

    def set_aside(self) -> None:
        """Move the differences the task's ``options.dml`` leaves to ``kept``."""
        for dml, kind in LEFT_BY.items():
            if dml in self.carried:
                continue
            if kind == "different":
                over = _move(self.diff.different, self.kept.different)
            else:
                over = _move(
                    self.diff.missing if kind == "missing" else self.diff.extra,
                    self.kept.missing if kind == "missing" else self.kept.extra,
                )
            self.kept_overflow[kind] += over + self.overflow[kind]
            self.overflow[kind] = 0

    def readers(self, src: Connection[Any], tgt: Connection[Any]) -> Readers:
        assert self.pair is not None and self.source is not None and self.target is not None
        return Readers(self.pair, self.source, self.target, src, tgt)


def typed_bounds(pair: TablePair, bound: Bound | None) -> Bound | None:
    """Chunk boundaries read as text, typed for binding: integers and decimals are
    bound as numbers, since a quoted number compared with a numeric column is
    compared as a double, which rounds large BIGINT and DECIMAL keys."""
    if bound is None:
        return None
    out: list[Any] = []
    for name, value in zip(pair.source.key, bound, strict=True):
        dt = pair.source.table.column(name).data_type
        if isinstance(value, (bytes, bytearray)) and dt in _INTEGERS | {"decimal"}:
            value = bytes(value).decode()
        if isinstance(value, str) and dt in _INTEGERS:
            out.append(int(value))
        elif isinstance(value, str) and dt == "decimal":
            out.append(Decimal(value))
        else:
            out.append(value)
    return tuple(out)


def plan(state: TableState, conn: Connection[Any], chunk_rows: int) -> list[Chunk]:
    pair = state.pair
    assert pair is not None
    if not pair.keyed:
        return [Chunk(0, None, None)]
    table = pair.source.table
    chunks = plan_chunks(conn, table.database, table.name, pair.source.key, chunk_rows)
    return [
        Chunk(c.index, typed_bounds(pair, c.lower), typed_bounds(pair, c.upper)) for c in chunks
    ]


@dataclass
class _Result:
    state: TableState
    source_rows: int
    target_rows: int
    differs: bool
    fetched: int = 0
    diff: Diff | None = None


def scan(
    states: list[TableState],
    source: Endpoint,
    target: Endpoint,
    *,
    chunk_rows: int,
    concurrency: int,
    max_keys: int,
    say: Say,
) -> None:
    """Compare every paired table of *states*; fill their reports and diffs."""
    work: queue.Queue[tuple[TableState, Chunk] | None] = queue.Queue()
    results: queue.Queue[_Result | BaseException] = queue.Queue()
    stop = threading.Event()

    def worker() -> None:
        try:
            src = text_connect(source)
        except BaseException as exc:
            results.put(exc)
            return
        try:
            tgt = text_connect(target)
        except BaseException as exc:
            src.close()
            results.put(exc)
            return
        try:
            while not stop.is_set():
                item = work.get()
                if item is None:
                    break
                state, chunk = item
                results.put(_chunk(state.readers(src, tgt), state, source, target, chunk))
        except BaseException as exc:
            results.put(exc)
        finally:
            src.close()
            tgt.close()

    # Workers connect while the first table's chunks are planned, and start on it
    # while the next one is.
    threads = [
        threading.Thread(target=worker, name=f"verify-{i}", daemon=True)
        for i in range(max(1, concurrency))
    ]
    for t in threads:
        t.start()
    total = 0
    conn = None
    try:
        conn = text_connect(source)
        for state in states:
            if state.pair is None:
                continue
            with driver_errors(source, table=state.report.source):
                chunks = plan(state, conn, chunk_rows)
            state.chunks_left = len(chunks)
            state.report.chunks = len(chunks)
            total += len(chunks)
            for chunk in chunks:
                work.put((state, chunk))
    except BaseException:
        stop.set()
        raise
    finally:
        if conn is not None:
            conn.close()
        for _ in threads:
            work.put(None)
    failure: BaseException | None = None
    try:
        for _ in range(total):
            got = results.get()
            if isinstance(got, BaseException):
                failure = got
                break
            _merge(got)
            if got.state.chunks_left == 0:
                _finish(got.state, source, target, say, max_keys)
    except BaseException as exc:  # Ctrl-C: stop the workers at their next chunk
        failure = exc
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    if failure is not None:
        raise failure


def _chunk(
    readers: Readers, state: TableState, source: Endpoint, target: Endpoint, chunk: Chunk
) -> _Result:
    name = state.report.source
    with driver_errors(source, table=name):
        a = readers.source.checksum(readers.src, chunk.lower, chunk.upper)
    with driver_errors(target, table=state.report.target):
        b = readers.target.checksum(readers.tgt, chunk.lower, chunk.upper)
    if a == b:
        return _Result(state, a.rows, b.rows, differs=False)
    if not readers.pair.keyed:
        return _Result(state, a.rows, b.rows, differs=True)
    # Either side may fail in the row comparison; name the table, the source's
    # endpoint being the likelier culprit of a filter error.
    with driver_errors(source, table=name):
        diff, fetched = diff_chunk(readers, chunk)
    return _Result(state, a.rows, b.rows, differs=True, fetched=fetched, diff=diff)


def _merge(got: _Result) -> None:
    state, report = got.state, got.state.report
    state.chunks_left -= 1
    report.source_rows += got.source_rows
    report.target_rows += got.target_rows
    if not got.differs:
        return
    report.chunks_differing += 1
    report.rows_fetched += got.fetched
    if got.diff is None:
        report.keyless_differs = True
    else:
        state.add(got.diff)


def _finish(state: TableState, source: Endpoint, target: Endpoint, say: Say, max_keys: int) -> None:
    """A table's last chunk is in: settle keys that may sit in different chunks."""
    pair = state.pair
    assert pair is not None
    diff = state.diff
    look = [k for k in diff.missing if k in diff.extra]
    if pair.loose_order:
        look += [k for k in diff.extra if k not in diff.missing]
    if look or pair.loose_order:
        assert state.target is not None
        src, tgt = text_connect(source), text_connect(target)
        try:
            with driver_errors(target, table=state.report.target):
                if pair.loose_order:
                    # chunks may overlap on the target when its order differs: count once
                    with tgt.cursor() as cur:
                        cur.execute(f"SELECT COUNT(*) FROM {state.target.table}")
                        row = cur.fetchone()
                        state.report.target_rows = int(row[0]) if row else 0
                for k in look:
                    diff.missing.pop(k, None)
                    diff.extra.pop(k, None)
                state.add(compare_keys(state.readers(src, tgt), look))
        finally:
            src.close()
            tgt.close()
    state.set_aside()
    counted(state, max_keys)
    r = state.report
    if r.chunks_differing and not len(diff) and not r.keyless_differs:
        r.notes.append(
            f"{r.chunks_differing} chunks had different checksums but equal rows (values the"
            " servers print differently, e.g. JSON key order): they were compared row by row"
        )
    if r.keyless_differs and state.carried != frozenset(DmlKind):
        r.notes.append(
            "no key: rows the task's options.dml leaves different on purpose cannot be told"
            " from differences here"
        )
    word = "differs" if r.differs else "equal"
    if r.kept:
        word += f" ({r.kept} rows kept by options.dml)"
    say(
        f"verify: {r.source}: {word}, {r.source_rows} rows, {r.chunks} chunks"
        f" ({r.chunks_differing} compared row by row)"
    )


def counted(state: TableState, max_keys: int) -> None:
    """Set the report's counts, (capped) key lists and column counts from the diff."""
    r, d = state.report, state.diff
    r.missing = len(d.missing) + state.overflow["missing"]
    r.extra = len(d.extra) + state.overflow["extra"]
    r.different = len(d.different) + state.overflow["different"]
    r.missing_keys = ordered(d.missing)[:max_keys]
    r.extra_keys = ordered(d.extra)[:max_keys]
    r.different_keys = ordered(d.different)[:max_keys]
    k, over = state.kept, state.kept_overflow
    r.kept_missing = len(k.missing) + over["missing"]
    r.kept_extra = len(k.extra) + over["extra"]
    r.kept_different = len(k.different) + over["different"]
    r.kept_missing_keys = ordered(k.missing)[:max_keys]
    r.kept_extra_keys = ordered(k.extra)[:max_keys]
    r.kept_different_keys = ordered(k.different)[:max_keys]
    columns: dict[str, int] = {}
    for cols in d.different.values():
        for c in cols:
            columns[c] = columns.get(c, 0) + 1
    r.columns_differing = columns
