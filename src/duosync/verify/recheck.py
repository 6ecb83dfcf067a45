"""Rechecking differing rows while an incremental sync writes to the target.

A row changed on the source a moment ago is not on the target yet: it is in
flight, not a difference. The applier keeps one checkpoint row per partition in the
target's ``oms.duosync_checkpoint`` (``sync.checkpoint``): the position applied,
the source commit time (``commit_ts``, Unix seconds) of the last transaction it
applied there, and when it did (``applied_at``). The lag is ``now - min(commit_ts)``
over the task's rows; a NULL commit_ts is an idle checkpoint (the partition had
applied all it read) and counts from its ``applied_at`` instead, since rows
committed after that may be in flight.

When the task has checkpoint rows, the differing rows (only their keys: nothing
else is read again) are compared again after waiting the lag plus a margin (at
most ``max_wait``), a few rounds; a row that converges is not reported. A wait ends
as soon as what was committed before it began has landed: for a binlog source,
when a checkpoint reaches the source's binlog position read then; otherwise when
every partition has applied a transaction committed after it. The lag is only an
estimate: a rate-limited applier may sit on a whole batch for longer. So when a
binlog position shows changes still in flight and the task looks alive (a
checkpoint written within ``ALIVE`` seconds), the wait lasts up to ``max_wait``
instead. Another round
follows only while the sync is visibly at work (checkpoints moved, or rows
converged): a stopped or idle sync has nothing in flight.

Rows kept by the task's ``options.dml`` (``scan.TableState.set_aside``) are not
differences and are never rechecked; a rechecked row that now differs only in a
way the task leaves (e.g. deleted on the source meanwhile, without ``delete``)
joins them, and does not count as converged.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.connections import Connection

from duosync.config import Endpoint, Flavor
from duosync.core.catalog import OMS_DATABASE
from duosync.core.positions import Position, position_from
from duosync.endpoints.mysql.connection import driver_errors
from duosync.endpoints.mysql.position import current_position
from duosync.endpoints.mysql.sessions import text_connect
from duosync.errors import DuosyncError, RetriableError
from duosync.retrying import retry_call
from duosync.sync.checkpoint import TABLE as CHECKPOINTS
from duosync.sync.runner import IDLE_CHECKPOINT
from duosync.verify.compare import compare_keys
from duosync.verify.report import RecheckInfo
from duosync.verify.scan import TableState, counted

Say = Callable[[str], None]

#: polling interval of the checkpoints while waiting
_POLL = 0.25
#: seconds a recheck round is retried after transient faults (verify is run by a
#: person or a script waiting for it: a minute, not the task's retry_for)
RETRY_BUDGET = 60.0
#: a task whose newest checkpoint is younger than this is taken to be running: an
#: idle running task rewrites its checkpoints every IDLE_CHECKPOINT seconds
ALIVE = 2 * IDLE_CHECKPOINT + 1.0


@dataclass(frozen=True)
class Part:
    """One partition's checkpoint row."""

    commit_ts: float | None
    applied_at: float
    position: Position | None  #: None when it cannot be read


@dataclass(frozen=True)
class SyncState:
    parts: tuple[Part, ...]

    def lag(self, now: float) -> float:
        """Seconds the sync may be behind (see the module docstring)."""
        times = [p.commit_ts if p.commit_ts is not None else p.applied_at for p in self.parts]
        return max(0.0, now - min(times)) if times else 0.0

    def landed(self, since: float, upto: Position | None) -> bool:
        """Whether what the source committed before *since* (at binlog position
        *upto*, when known) has been applied."""
        if upto is not None:
            try:
                return any(p.position is not None and upto <= p.position for p in self.parts)
            except TypeError:  # another kind of position: use the times
                pass
        return bool(self.parts) and all(
            (p.commit_ts if p.commit_ts is not None else p.applied_at) >= since for p in self.parts
        )

    def alive(self, now: float) -> bool:
        """Whether a running task seems to own these checkpoints."""
        return bool(self.parts) and now - max(p.applied_at for p in self.parts) < ALIVE


def sync_state(conn: Connection[Any], task: str) -> SyncState:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'duosync_checkpoint'",
            (OMS_DATABASE,),
        )
        row = cur.fetchone()
        if not row or not int(row[0]):
            return SyncState(())
        cur.execute(
            f"SELECT commit_ts, applied_at, position FROM {CHECKPOINTS} WHERE task = %s", (task,)
        )
        rows = cur.fetchall()
    return SyncState(
        tuple(Part(float(c) if c is not None else None, float(a), _position(p)) for c, a, p in rows)
    )


def _position(text: Any) -> Position | None:
    if text is None:
        return None
    try:
        return position_from(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError:  # a kind this version does not know: the times still work
        return None


def _binlog_position(conn: Connection[Any], flavor: Flavor) -> Position | None:
    if flavor is Flavor.OCEANBASE:
        return None  # trigger capture: no binlog to compare with
    try:
        return current_position(conn, flavor.value)
    except DuosyncError:  # binary logging off: the times still work
        return None


def _wait(
    tgt: Connection[Any],
    task: str,
    since: float,
    upto: Position | None,
    margin: float,
    limit: float,
) -> bool:
    """Wait the lag plus *margin* (at most *limit*), less once what was committed
    before *since* has landed; whether the checkpoints moved meanwhile."""
    first = now = sync_state(tgt, task)
    if first.landed(since, upto):
        return False
    now_ts = time.time()
    budget = min(first.lag(now_ts) + margin, limit)
    if upto is not None and first.alive(now_ts):
        budget = limit  # changes provably in flight to a running task: wait for them
    started = time.monotonic()
    while time.monotonic() - started < budget:
        time.sleep(_POLL)
        now = sync_state(tgt, task)
        if now.landed(since, upto):
            break
    return now != first


def recheck(
    states: list[TableState],
    source: Endpoint,
    target: Endpoint,
    task: str,
    *,
    say: Say,
    max_keys: int,
    rounds: int = 3,
    margin: float = 2.0,
    max_wait: float = 30.0,
) -> RecheckInfo | None:
    """Recheck the kept differing keys of *states* while the task's sync runs; None
    when no sync of this task writes to the target."""
    conns = _Conns(source, target)
    try:
        state = retry_call(
            lambda: conns.target_state(task), budget=RETRY_BUDGET, say=say, what="verify recheck"
        )
        if not state.parts:
            return None
        lag = state.lag(time.time())
        pending = [s for s in states if s.pair is not None and s.pair.keyed and len(s.diff)]
        before = {id(s): len(s.diff) for s in pending}
        kept_before = {id(s): _kept(s) for s in pending}
        info = RecheckInfo(lag=lag, rounds=0, keys=sum(before.values()), converged=0)
        if not pending:
            return info
        flavor = pending[0].pair.source.flavor if pending[0].pair else Flavor.MARIADB
        say(
            f"verify: sync of task {task} writes to the target (lag {lag:.1f}s): rechecking"
            f" {info.keys} differing rows"
        )
        for _ in range(rounds):

            def one_round(todo: list[TableState] = pending) -> tuple[bool, list[TableState]]:
                conns.ensure()
                since = time.time()
                with driver_errors(source):
                    upto = _binlog_position(conns.src, flavor)
                with driver_errors(target):
                    moved = _wait(conns.tgt, task, since, upto, margin, max_wait)
                for s in todo:
                    keys = [*s.diff.missing, *s.diff.extra, *s.diff.different]
                    with driver_errors(source, table=s.report.source):
                        s.diff = compare_keys(s.readers(conns.src, conns.tgt), keys)
                    s.set_aside()
                return moved, [s for s in todo if len(s.diff)]

            was = sum(len(s.diff) for s in pending)
            # A round only reads: after a lost connection it is redone whole.
            moved, pending = retry_call(
                one_round, budget=RETRY_BUDGET, say=say, what="verify recheck"
            )
            info.rounds += 1
            if not pending or not (moved or sum(len(s.diff) for s in pending) < was):
                break
        for s in states:
            if id(s) in before:
                converged = before[id(s)] - len(s.diff) - (_kept(s) - kept_before[id(s)])
                s.report.converged = converged
                info.converged += converged
                counted(s, max_keys)
        return info
    finally:
        conns.close()


def _kept(state: TableState) -> int:
    return len(state.kept) + sum(state.kept_overflow.values())


class _Conns:
    """The recheck's two connections, opened again after a transient fault."""

    def __init__(self, source: Endpoint, target: Endpoint) -> None:
        self.source = source
        self.target = target
        self._src: Connection[Any] | None = None
        self._tgt: Connection[Any] | None = None

    @property
    def src(self) -> Connection[Any]:
        assert self._src is not None
        return self._src

    @property
    def tgt(self) -> Connection[Any]:
        assert self._tgt is not None
        return self._tgt

    def ensure(self) -> None:
        """Both connections, fresh ones if either was lost."""
        for conn in (self._src, self._tgt):
            if conn is not None and not conn.open:
                self.close()
                break
        if self._tgt is None:
            self._tgt = text_connect(self.target)
        if self._src is None:
            self._src = text_connect(self.source)

    def target_state(self, task: str) -> SyncState:
        try:
            self.ensure()
            with driver_errors(self.target):
                return sync_state(self.tgt, task)
        except RetriableError:
            self.close()
            raise

    def close(self) -> None:
        for conn in (self._src, self._tgt):
            if conn is not None:
                with contextlib.suppress(pymysql.err.MySQLError, OSError):
                    conn.close()
        self._src = self._tgt = None
