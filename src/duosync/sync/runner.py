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

Memory is bounded whatever the transactions: the stream hands a transaction of
more than ``options.fragment_rows`` rows on in fragments, applied as they come in
one target transaction (``sync.streamed``), and the reader's queue holds at most
``QUEUE_FRAGMENTS`` times that many rows.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from duosync.core.events import Fragment, Heartbeat, RowChange, SchemaChange, Transaction
from duosync.core.interfaces import ChangeStream
from duosync.core.positions import Position
from duosync.errors import DataError, FatalError
from duosync.migrate.ratelimit import RateLimiter
from duosync.spec import ConflictPolicy, OnDataError, TaskSpec
from duosync.sync.applier import Applier
from duosync.sync.batch import Batch
from duosync.sync.checkpoint import Tenure
from duosync.sync.convergence import Part, Role
from duosync.sync.ddl import SchemaSync
from duosync.sync.heartbeat import SourceHeartbeat
from duosync.sync.loopguard import LoopGuard
from duosync.sync.mapping import Mapper
from duosync.sync.row_selection import OUTSIDE, Refusal, RowSelection
from duosync.sync.streamed import StreamedApply
from duosync.sync.streams import open_stream

Say = Callable[[str], None]

#: Row changes per batch; more gives bigger target transactions, but more lag.
MAX_ROWS = 20000
#: Fragments of the task's size (``options.fragment_rows``, default 25,000: more
#: than a batch, so the opposite task's batches, whose loop marker comes last, are
#: seldom fragmented) the reader may have read ahead of the apply (its queue).
QUEUE_FRAGMENTS = 2
#: Seconds the oldest transaction of a batch may wait before the batch is applied,
#: while the task works through a backlog: big batches, fewer target commits.
MAX_DELAY = 0.2
#: The same wait once the task is live (its newest transaction committed less than
#: LIVE_WINDOW seconds ago): the sync's lag is then mostly this wait, so it is short.
#: A source at 1,250 transactions/s still gives batches of ~40 transactions. Catch-up
#: keeps MAX_DELAY: there, small batches would only cost the reader CPU (one core is
#: shared by the reader and the apply threads under the GIL).
LIVE_DELAY = 0.03
#: Seconds within which a commit time counts as live. Binlog event times have a
#: resolution of one second, so a commit read at once looks up to 1 s old.
LIVE_WINDOW = 2.0
#: Seconds between checkpoint moves of an idle stream (and progress lines).
IDLE_CHECKPOINT = 5.0
#: Lag (seconds) under which the phase counts as caught up ("monitoring").
MONITOR_LAG = 5.0
#: Seconds without anything from the stream (not even a heartbeat) after which lag
#: counts the silence: the reader is stuck, the figures must not say "caught up".
SILENCE = 5.0

_END = object()


@dataclass
class SyncStats:
    """What the phase did so far, for progress lines, metrics and tests."""

    rows: int = 0
    #: bytes of the row images applied
    bytes: int = 0
    transactions: int = 0
    batches: int = 0
    #: transactions and heartbeats read from the stream (a sign of life, for healing)
    reads: int = 0
    #: changes recorded in the conflict log (sync.conflicts)
    conflicts: int = 0
    #: transactions dropped because the opposite task of a two-way sync (or this
    #: task, on one server) wrote them
    echoes: int = 0
    lag: float | None = None
    position: Position | None = None
    monitoring: bool = False
    started: float = field(default_factory=time.monotonic)
    #: the latest lags seen, one per batch (bounded: a service runs for months)
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


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
    checked_after: Position | None = None,
    opposite: str | None = None,
    ddl: bool = True,
    tenure: Tenure | None = None,
    role: Role | None = None,
    pair_filters: dict[str, str] | None = None,
) -> SyncStats:
    """Sync from *start* (first run of this *incarnation* of the task, see
    ``sync.checkpoint.prepare``) or the target's checkpoints until *stop* is set;
    apply what was read and return. Transactions committed before *skip_before*
    (Unix time) only advance the position. Raises ``DuosyncError`` on failure.

    With a conflict policy (``TaskSpec.conflict_policy``), transactions after
    *checked_after* (default: *start*) are applied with conflict detection; those up
    to it (the catch-up over rows a full copy already holds) are applied
    idempotently, as every transaction is without a policy. With *opposite* (two-way
    sync), transactions carrying that task's marker are dropped. Without *ddl* (a
    reverse task), DDL is not applied, only noted so that rows map onto the tables
    as they are now. *tenure* is the cluster assignment the run holds: its commits
    are fenced by it (``sync.checkpoint``; ``Fenced`` once a newer one exists).

    *role* is the task's part in a converging pair (``sync.convergence``): the
    decider applies with its policy; the echo applies idempotently and keeps the
    opposite task's transactions (only its own are dropped).

    Row filters and ``options.dml`` choose what is applied (``sync.row_selection``);
    a reverse task passes its forward task's filters as *pair_filters*."""
    stats = stats if stats is not None else SyncStats()
    partitions = spec.options.write_concurrency
    mapper = Mapper(spec)
    policy = spec.conflict_policy
    if role is not None and role.part is Part.ECHO:
        policy, opposite = None, None
    applier = Applier(
        spec.target,
        spec.name,
        partitions,
        policy or ConflictPolicy.OVERWRITE,
        on_data_error=spec.options.on_data_error,
        tenure=tenure,
        role=role,
    )
    if policy is None:
        checked_after = None
    elif checked_after is None:
        checked_after = start
    guard = LoopGuard(spec.name, opposite)
    if pair_filters is not None:
        selection = RowSelection(spec, pair_filters, spec.target, guard=True)
    else:
        selection = RowSelection(spec, dict(spec.filters), spec.source)
    try:
        checkpoints = applier.prepare(start, incarnation)
        resume = min(checkpoints)
        replay_until = max(checkpoints)
        stream = open_stream(
            spec,
            resume,
            mapper,
            say,
            markers=True,
            ddl=ddl,
            fragment_rows=spec.options.fragment_rows,
        )
        say(f"incremental: reading the source's changes from {resume}")
        schema = SchemaSync(spec, mapper, say) if ddl else None
        feed: queue.Queue[object] = queue.Queue(maxsize=512)
        budget = _RowBudget(QUEUE_FRAGMENTS * spec.options.fragment_rows)
        reader = threading.Thread(
            target=_read,
            args=(stream, stop, feed, selection if selection.active else None, budget),
            name="changes",
            daemon=True,
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
                budget,
                checkpoints,
                replay_until,
                stop,
                say,
                on_state,
                stats,
                skip_before,
                checked_after,
                guard,
            )
        finally:
            stop.set()
            reader.join(timeout=10)
            stream.close()
            if beat is not None:
                beat.close()
    finally:
        applier.close()
        selection.close()
    return stats


@dataclass(frozen=True)
class _Chosen:
    """A transaction (or fragment) as read, and what row selection keeps of it
    (``_read``)."""

    read: Transaction | Fragment
    kept: Transaction | Fragment
    refused: list[Refusal]


class _RowBudget:
    """How many row changes the reader may hold ahead of the apply: the queue's
    bound in rows (its bound in items alone would let 512 large fragments pile
    up). One item is always let through, however large."""

    def __init__(self, rows: int) -> None:
        self.limit = rows
        self.used = 0
        self._cond = threading.Condition()

    def take(self, rows: int, stop: threading.Event) -> None:
        with self._cond:
            while self.used and self.used + rows > self.limit and not stop.is_set():
                self._cond.wait(0.5)
            self.used += rows

    def give(self, rows: int) -> None:
        with self._cond:
            self.used -= rows
            self._cond.notify()


def _rows_of(item: object) -> int:
    read = item.read if isinstance(item, _Chosen) else item
    return len(read.changes) if isinstance(read, Transaction | Fragment) else 0


def _read(
    stream: ChangeStream,
    stop: threading.Event,
    feed: queue.Queue[object],
    selection: RowSelection | None,
    budget: _RowBudget,
) -> None:
    # Row selection runs here, on the reader thread: the source's verdicts on a
    # transaction's rows are awaited while the applier writes the batch before it.
    try:
        for read in stream.read(stop):
            item: object = read
            if selection is not None and isinstance(read, Transaction | Fragment):
                picked = selection.select(read.changes)
                kept: Transaction | Fragment
                if isinstance(read, Fragment):
                    rows = tuple(c for c in picked.changes if isinstance(c, RowChange))
                    kept = replace(read, changes=rows)
                else:
                    kept = replace(read, changes=tuple(picked.changes))
                item = _Chosen(read, kept, picked.refused)
            budget.take(_rows_of(item), stop)
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


@dataclass(frozen=True)
class _Ended:
    """How a fragmented transaction ended (``_Large.finish``)."""

    txn: Transaction
    #: applied: every partition's checkpoint is at its position now
    committed: bool
    #: the source itself moved (not an echo of the opposite task)
    moved: bool


class _Large:
    """The large transaction under way, applied as its fragments come
    (``sync.streamed``): the fragments and last part of a fragmented transaction
    go here, not into batches."""

    def __init__(
        self,
        spec: TaskSpec,
        applier: Applier,
        mapper: Mapper,
        guard: LoopGuard,
        stats: SyncStats,
        limiter: RateLimiter,
    ) -> None:
        self.spec, self.applier, self.mapper, self.guard = spec, applier, mapper, guard
        self.stats, self.limiter = stats, limiter
        self.open: StreamedApply | None = None
        #: its first fragment carried the opposite task's marker: the rest is dropped
        self.dropping = False
        self.checked = False

    @staticmethod
    def wants(item: object) -> bool:
        read = item.read if isinstance(item, _Chosen) else item
        return isinstance(read, Fragment) or (isinstance(read, Transaction) and read.fragments > 0)

    def fragment(
        self, item: object, checked: Callable[[Position], bool], before: Callable[[], None]
    ) -> None:
        """Write one fragment (*before*: apply the batch that precedes the
        transaction; *checked*: whether the transaction after a position is
        applied with conflict detection)."""
        read, kept, refused = _parts(item)
        assert isinstance(read, Fragment)
        if self.dropping:
            return
        if self.guard.echo(read):
            self.abandon()
            self.dropping = True
            self.stats.echoes += 1
            return
        if self.open is None:
            before()
            self.checked = checked(read.follows)
            self.open = StreamedApply(self.applier)
        self.open.write(self._part(kept, refused, read.follows))

    def finish(self, item: object, skip_before: float | None) -> _Ended:
        """The transaction's last part: committed, or rolled back when it turns
        out to be an echo or older than *skip_before*."""
        read, kept, refused = _parts(item)
        assert isinstance(read, Transaction)
        if any(isinstance(c, SchemaChange) for c in read.changes):
            self.abandon()
            raise FatalError(
                "a fragmented source transaction ends with DDL, which cannot be applied"
                " inside its target transaction",
                task=self.spec.name,
                position=str(read.position),
            )
        opened, self.open = self.open, None
        try:
            echo = self.dropping or self.guard.echo(read)
            if echo and not self.dropping:
                self.stats.echoes += 1
            if echo or (skip_before and read.commit_ts < skip_before) or opened is None:
                if opened is not None:
                    opened.abandon()
                return _Ended(read, committed=False, moved=not echo)
            opened.write(self._part(kept, refused, read.position))
            self.stats.conflicts += opened.commit(read.position, read.commit_ts)
        finally:
            self.dropping = False
        stats = self.stats
        stats.rows += opened.rows
        stats.bytes += opened.nbytes
        stats.transactions += 1
        stats.batches += 1
        stats.position = read.position
        stats.lag = max(0.0, time.time() - read.commit_ts)
        stats.lags.append(stats.lag)
        return _Ended(read, committed=True, moved=True)

    def abandon(self) -> None:
        if self.open is not None:
            self.open.abandon()
            self.open = None

    def _part(self, kept: Transaction | Fragment, refused: list[Refusal], at: Position) -> Batch:
        part = Batch(1, self.mapper.mapping, checked=self.checked)
        for row in kept.changes:
            if isinstance(row, RowChange):
                part.add(row, at)
        for refusal in refused:
            _refuse(self.spec, part, refusal, at)
        self.limiter.acquire(part.rows, part.nbytes)
        return part


def _parts(item: object) -> tuple[Transaction | Fragment, Transaction | Fragment, list[Refusal]]:
    if isinstance(item, _Chosen):
        return item.read, item.kept, item.refused
    assert isinstance(item, Transaction | Fragment)
    return item, item, []


def _loop(
    spec: TaskSpec,
    stream: ChangeStream,
    applier: Applier,
    mapper: Mapper,
    schema: SchemaSync | None,
    feed: queue.Queue[object],
    budget: _RowBudget,
    checkpoints: list[Position],
    replay_until: Position,
    stop: threading.Event,
    say: Say,
    on_state: Callable[[str], None] | None,
    stats: SyncStats,
    skip_before: float | None,
    checked_after: Position | None,
    guard: LoopGuard,
) -> None:
    replaying = replay_until > min(checkpoints)
    checking = checked_after is not None and min(checkpoints) >= checked_after

    def new_batch() -> Batch:
        return Batch(
            applier.partitions,
            mapper.mapping,
            checkpoints if replaying else None,
            checked=checking,
        )

    batch = new_batch()
    heard = time.monotonic()  # when the stream last yielded something
    limiter = RateLimiter(spec.options.rate_rows_per_second, spec.options.rate_bytes_per_second)
    last_flush = time.monotonic()
    last_line = time.monotonic()
    # While idle, every partition's checkpoint is moved up to what was read, so a
    # restart (and the source's log purge) starts near here; but only when the
    # source itself moved (a transaction or a heartbeat past what was read), never
    # for dropped echoes alone, or two idle tasks of a two-way sync would bounce
    # idle checkpoints between them forever.
    last_seen: Position = min(checkpoints)  # the position after everything read
    moved: Position | None = None  # the latest position the source itself reached
    large = _Large(spec, applier, mapper, guard, stats, limiter)

    def checked_from(follows: Position) -> bool:
        # ``follows`` is the position before the transaction: at or past the
        # catch-up's end, the transaction is after it
        return checked_after is not None and (checking or follows >= checked_after)

    def flush(everyone: bool = False) -> None:
        nonlocal batch, last_flush
        if batch.last is None:
            return
        limiter.acquire(batch.rows, batch.nbytes)
        touched, conflicts = applier.apply(batch, all_partitions=everyone)
        stats.conflicts += conflicts
        for p in touched:
            checkpoints[p] = batch.last
        # What every partition holds may leave the source's change log.
        stream.confirm(min(checkpoints))
        stats.rows += batch.rows
        stats.bytes += batch.nbytes
        stats.transactions += batch.transactions
        stats.batches += 1
        stats.position = batch.last
        if batch.last_commit_ts is not None:
            stats.lag = max(0.0, time.time() - batch.last_commit_ts)
            stats.lags.append(stats.lag)
        batch = new_batch()
        last_flush = time.monotonic()

    while True:
        delay = _delay(batch)
        wait = 0.1
        if batch.first_seen is not None:
            # wake up when the batch is due, so a trickle is applied on time
            wait = min(wait, max(0.001, batch.first_seen + delay - time.monotonic()))
        try:
            item = feed.get(timeout=wait)
        except queue.Empty:
            item = None
        if item is _END:
            break
        if isinstance(item, BaseException):
            large.abandon()
            raise item
        if item is not None:
            budget.give(_rows_of(item))
            stats.reads += 1
            heard = time.monotonic()
        elif not batch and time.monotonic() - heard > SILENCE and stats.lag is not None:
            # Every stream sends a heartbeat at least every second or two when idle:
            # silence means the reader is stuck (a link gone half-open). Lag is then
            # at least the silence, which shows it (and leaves monitoring).
            stats.lag = max(stats.lag, time.monotonic() - heard)
        now = time.monotonic()
        if item is None and large.open is not None:
            large.open.keepalive()
        if item is not None and large.wants(item):
            if isinstance(_parts(item)[0], Fragment):
                large.fragment(item, checked_from, flush)
            else:
                ended = large.finish(item, skip_before)
                last_seen = ended.txn.position
                if ended.moved:
                    moved = last_seen
                if ended.committed:
                    checkpoints[:] = [last_seen] * len(checkpoints)
                    stream.confirm(last_seen)
                    last_flush = now
                if checked_after is not None and not checking and last_seen > checked_after:
                    checking = True
                    batch = new_batch()
            item = None
        elif large.open is not None and isinstance(item, Transaction | _Chosen):
            # a batch now would begin a transaction on the open one's connection
            raise FatalError(
                "the change stream yielded a whole transaction in the middle of a fragmented one",
                task=spec.name,
                position=str(last_seen),
            )
        refused: list[Refusal] = []
        if isinstance(item, _Chosen):
            # the loop guard reads the transaction as written (its marker rows)
            chosen, refused = item, item.refused
            item = chosen.kept if not guard.echo(chosen.read) else chosen.read
        if isinstance(item, Transaction) and skip_before and item.commit_ts < skip_before:
            item = Heartbeat(item.position, item.commit_ts)
        if isinstance(item, Transaction) and guard.echo(item):
            stats.echoes += 1
            last_seen = item.position
            if not batch:
                stats.lag = max(0.0, time.time() - item.commit_ts)
            item = None
        if item is None:
            refused = []
        if isinstance(item, Transaction):
            last_seen = item.position
            if replaying and item.position > replay_until:
                replaying = False
                batch.skip_upto = None
            if checked_after is not None and not checking and item.position > checked_after:
                # Past the catch-up: from here on the target must hold what the
                # source held, and a change that finds otherwise is a conflict.
                flush()
                checking = True
                batch = new_batch()
            ddl = [c for c in item.changes if isinstance(c, SchemaChange)]
            if ddl:
                flush()
                for statement in ddl:
                    if schema is not None:
                        schema.apply(statement, applier)
                if schema is None:
                    mapper.forget_all()
                # CREATE TABLE ... SELECT: the new table's rows share the transaction.
                for row in item.changes:
                    if isinstance(row, RowChange):
                        batch.add(row, item.position, item.commit_ts)
                for refusal in refused:
                    _refuse(spec, batch, refusal, item.position)
                batch.end_transaction(item.position, item.commit_ts, now)
                flush(everyone=True)
                continue
            for row in item.changes:
                if isinstance(row, RowChange):
                    batch.add(row, item.position, item.commit_ts)
            for refusal in refused:
                _refuse(spec, batch, refusal, item.position)
            batch.end_transaction(item.position, item.commit_ts, now)
            moved = item.position
        elif isinstance(item, Heartbeat):
            if item.position > last_seen:
                moved = last_seen = item.position
            if not batch:
                stats.lag = max(0.0, time.time() - item.ts)
        if batch and (
            batch.rows >= MAX_ROWS
            or (batch.first_seen is not None and now - batch.first_seen >= _delay(batch))
            or item is None
            or isinstance(item, Heartbeat)
        ):
            flush()
        elif (
            not batch
            and large.open is None
            and moved is not None
            and min(checkpoints) < moved
            and now - last_flush >= IDLE_CHECKPOINT
        ):
            batch.last = last_seen
            flush(everyone=True)
        _state(stats, on_state)
        if now - last_line >= IDLE_CHECKPOINT:
            last_line = now
            _progress(stats, say)
    large.abandon()  # stopped in the middle of one: it is read again next time
    flush()
    _progress(stats, say)


def _delay(batch: Batch) -> float:
    """How long *batch*'s oldest transaction may wait: short once the task is live."""
    if batch.last_commit_ts is not None and time.time() - batch.last_commit_ts < LIVE_WINDOW:
        return LIVE_DELAY
    return MAX_DELAY


def _refuse(spec: TaskSpec, batch: Batch, refusal: Refusal, position: Position) -> None:
    """A change the pair's filter keeps off: it stops the task, or (skip) it is
    recorded in the conflict log with the checkpoint of its row's partition."""
    change = refusal.change
    if spec.options.on_data_error is OnDataError.STOP:
        values = zip(change.columns, change.after or (), strict=False)
        row = ", ".join(f"{c}={v!r}" for c, v in values)
        raise DataError(
            f"{refusal.reason}; the row: {row[:300]}",
            task=spec.name,
            endpoint=spec.source.display,
            table=f"{change.database}.{change.table}",
            position=str(position),
            hint="change the row on the target back into the filter (or delete it) and start"
            " the task again, or set reverse.on_data_error: skip to record such changes in"
            " the conflict log and leave them out",
        )
    batch.refuse(change, position, refusal.reason, OUTSIDE)


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
