"""The incremental phase of a task: source change stream -> batches -> target, until stopped.

Threads: one reads the change stream into a bounded queue (decoding overlaps with
applying; the queue is the back-pressure), the calling thread batches, merges and
hands batches to the applier, whose partitions write in parallel.

Where it starts: from the lowest of the partitions' checkpoints on the target
(``sync.checkpoint``), which a first run initialises to the handover position of
the full migration (or the position it is given). Transactions up to the highest
checkpoint are replayed with per-partition filtering, so nothing is applied twice.

A batch is applied when it holds ``max_rows`` row changes, when its first
transaction has waited ``max_delay`` seconds, when DDL arrives (DDL is never
reordered against the rows around it), and when the stream goes idle.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from duosync.core.events import Heartbeat, RowChange, SchemaChange, Transaction
from duosync.core.interfaces import ChangeStream
from duosync.core.positions import Position
from duosync.migrate.ratelimit import RateLimiter
from duosync.spec import TaskSpec
from duosync.sync.applier import Applier
from duosync.sync.batch import Batch
from duosync.sync.ddl import SchemaSync
from duosync.sync.heartbeat import SourceHeartbeat
from duosync.sync.mapping import Mapper
from duosync.sync.streams import open_stream

Say = Callable[[str], None]

#: Row changes per batch; more gives bigger target transactions, but more lag.
MAX_ROWS = 20000
#: Seconds the oldest transaction of a batch may wait before the batch is applied.
MAX_DELAY = 0.2
#: Seconds between checkpoint moves of an idle stream (and progress lines).
IDLE_CHECKPOINT = 5.0
#: Lag (seconds) under which the phase counts as caught up ("monitoring").
MONITOR_LAG = 5.0

_END = object()


@dataclass
class SyncStats:
    """What the phase did so far, for progress lines, metrics and tests."""

    rows: int = 0
    transactions: int = 0
    batches: int = 0
    lag: float | None = None
    position: Position | None = None
    monitoring: bool = False
    started: float = field(default_factory=time.monotonic)
    lags: list[float] = field(default_factory=list)


def run_incremental(
    spec: TaskSpec,
    start: Position,
    incarnation: str,
    stop: threading.Event,
    say: Say,
    *,
    on_state: Callable[[str], None] | None = None,
    stats: SyncStats | None = None,
    skip_before: float | None = None,
) -> SyncStats:
    """Sync from *start* (first run of this *incarnation* of the task, see
    ``sync.checkpoint.prepare``) or the target's checkpoints until *stop* is set;
    apply what was read and return. Transactions committed before *skip_before*
    (Unix time) only advance the position. Raises ``DuosyncError`` on failure."""
    stats = stats if stats is not None else SyncStats()
    partitions = spec.options.write_concurrency
    mapper = Mapper(spec)
    applier = Applier(spec.target, spec.name, partitions)
    try:
        checkpoints = applier.prepare(start, incarnation)
        resume = min(checkpoints)
        replay_until = max(checkpoints)
        stream = open_stream(spec, resume, mapper, say)
        say(f"incremental: reading the source's changes from {resume}")
        schema = SchemaSync(spec, mapper, say)
        feed: queue.Queue[object] = queue.Queue(maxsize=512)
        reader = threading.Thread(
            target=_read, args=(stream, stop, feed), name="changes", daemon=True
        )
        reader.start()
        beat = (
            SourceHeartbeat(spec.source, spec.name, spec.options.heartbeat_seconds)
            if spec.options.heartbeat_seconds
            else None
        )
        try:
            _loop(
                spec,
                stream,
                applier,
                mapper,
                schema,
                feed,
                checkpoints,
                replay_until,
                stop,
                say,
                on_state,
                stats,
                skip_before,
            )
        finally:
            stop.set()
            reader.join(timeout=10)
            stream.close()
            if beat is not None:
                beat.close()
    finally:
        applier.close()
    return stats


def _read(stream: ChangeStream, stop: threading.Event, feed: queue.Queue[object]) -> None:
    try:
        for item in stream.read(stop):
            while not stop.is_set():
                try:
                    feed.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
    except BaseException as exc:
        feed.put(exc)
    finally:
        feed.put(_END)


def _loop(
    spec: TaskSpec,
    stream: ChangeStream,
    applier: Applier,
    mapper: Mapper,
    schema: SchemaSync,
    feed: queue.Queue[object],
    checkpoints: list[Position],
    replay_until: Position,
    stop: threading.Event,
    say: Say,
    on_state: Callable[[str], None] | None,
    stats: SyncStats,
    skip_before: float | None,
) -> None:
    replaying = replay_until > min(checkpoints)

    def new_batch() -> Batch:
        return Batch(applier.partitions, mapper.mapping, checkpoints if replaying else None)

    batch = new_batch()
    limiter = RateLimiter(spec.options.rate_rows_per_second, spec.options.rate_bytes_per_second)
    last_flush = time.monotonic()
    last_line = time.monotonic()
    idle_position: Position | None = None

    def flush(everyone: bool = False) -> None:
        nonlocal batch, last_flush
        if batch.last is None:
            return
        limiter.acquire(batch.rows, batch.nbytes)
        for p in applier.apply(batch, all_partitions=everyone):
            checkpoints[p] = batch.last
        # What every partition holds may leave the source's change log.
        stream.confirm(min(checkpoints))
        stats.rows += batch.rows
        stats.transactions += batch.transactions
        stats.batches += 1
        stats.position = batch.last
        if batch.last_commit_ts is not None:
            stats.lag = max(0.0, time.time() - batch.last_commit_ts)
            stats.lags.append(stats.lag)
        batch = new_batch()
        last_flush = time.monotonic()

    while True:
        try:
            item = feed.get(timeout=0.1)
        except queue.Empty:
            item = None
        if item is _END:
            break
        if isinstance(item, BaseException):
            raise item
        now = time.monotonic()
        if isinstance(item, Transaction) and skip_before and item.commit_ts < skip_before:
            item = Heartbeat(item.position, item.commit_ts)
        if isinstance(item, Transaction):
            if replaying and item.position > replay_until:
                replaying = False
                batch.skip_upto = None
            ddl = [c for c in item.changes if isinstance(c, SchemaChange)]
            if ddl:
                flush()
                for statement in ddl:
                    schema.apply(statement, applier)
                # CREATE TABLE ... SELECT: the new table's rows share the transaction.
                for row in item.changes:
                    if isinstance(row, RowChange):
                        batch.add(row, item.position)
                batch.end_transaction(item.position, item.commit_ts, now)
                flush(everyone=True)
                continue
            for row in item.changes:
                if isinstance(row, RowChange):
                    batch.add(row, item.position)
            batch.end_transaction(item.position, item.commit_ts, now)
            idle_position = None
        elif isinstance(item, Heartbeat):
            idle_position = item.position
            if not batch:
                stats.lag = max(0.0, time.time() - item.ts)
        if batch and (
            batch.rows >= MAX_ROWS
            or (batch.first_seen is not None and now - batch.first_seen >= MAX_DELAY)
            or item is None
            or isinstance(item, Heartbeat)
        ):
            flush()
        elif not batch and idle_position is not None and now - last_flush >= IDLE_CHECKPOINT:
            # Idle: move every partition's checkpoint so a restart starts near here.
            batch.last = idle_position
            flush(everyone=True)
            idle_position = None
        _state(stats, on_state)
        if now - last_line >= IDLE_CHECKPOINT:
            last_line = now
            _progress(stats, say)
    flush()
    _progress(stats, say)


def _state(stats: SyncStats, on_state: Callable[[str], None] | None) -> None:
    monitoring = stats.lag is not None and stats.lag < MONITOR_LAG
    if monitoring != stats.monitoring:
        stats.monitoring = monitoring
        if on_state is not None:
            on_state("monitoring" if monitoring else "running")


def _progress(stats: SyncStats, say: Say) -> None:
    elapsed = max(time.monotonic() - stats.started, 1e-6)
    lag = "?" if stats.lag is None else f"{stats.lag:.1f}s"
    say(
        f"incremental: {stats.rows} rows in {stats.transactions} transactions"
        f" ({stats.rows / elapsed:.0f} rows/s), lag {lag},"
        f" {'monitoring' if stats.monitoring else 'catching up'}, at {stats.position}"
    )
