"""Writing batches to a MySQL-family target: one transaction per partition, in
parallel, each carrying its partition's checkpoint (``sync.checkpoint``).

Statements are idempotent so that the replay after a restart, and the catch-up
after a full migration (which starts at the handover position and so re-reads rows
the copy already holds), converge on the source's state:
- a row's final state "present" is written with REPLACE (a later state of another
  row that holds the same unique value is removed, and restored when its own later
  change is applied: the source's order is the order we converge to);
- "absent" is a DELETE by key.

Sessions run with foreign_key_checks=0: rows of different tables are applied in
parallel partitions, so a child may briefly arrive before its parent; REPLACE (a
delete plus an insert) must not cascade to children either.

A row the target refuses (``DataError``: a value out of range, NULL in a NOT
NULL column ...) rolls its partition's transaction back; the partition is then
applied again row by row, each under a savepoint, to find the rows at fault.
With ``on_data_error: stop`` the first one stops the task, named by table, key
and position; with ``skip`` each is recorded in the conflict log (with its
images) in the same transaction that skips it, and the rest is applied.

Faults of the connection (lost, refused, server restarting) are raised as
``RetriableError``: the task runner retries the phase, which resumes from the
checkpoints, so a transaction whose COMMIT answer was lost is never applied
twice (its checkpoint moved with it).
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql
from pymysql.connections import Connection

from duosync.config import Endpoint, Flavor
from duosync.core.events import Op
from duosync.core.positions import Position
from duosync.endpoints.mysql.connection import last_statement, translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.sessions import text_connect
from duosync.errors import DataError, DuosyncError, RetriableError
from duosync.spec import ConflictPolicy, OnDataError
from duosync.sync import checkpoint, conflict_log, versions
from duosync.sync.batch import Batch, TableChanges
from duosync.sync.conflicts import key_condition, write_checked
from duosync.sync.convergence import RETENTION, Part, Role
from duosync.sync.converging import write_converging

#: conflict-log resolution of a row the target refused under on_data_error: skip
REFUSED = "skipped (refused by the target)"

_ATTEMPTS = 5
#: keys per DELETE statement
_DELETE_KEYS = 500


class Applier:
    """Applies batches on ``partitions`` connections. One caller thread."""

    def __init__(
        self,
        target: Endpoint,
        task: str,
        partitions: int,
        policy: ConflictPolicy = ConflictPolicy.OVERWRITE,
        on_data_error: OnDataError = OnDataError.STOP,
        tenure: checkpoint.Tenure | None = None,
        role: Role | None = None,
    ) -> None:
        self.target = target
        #: the decider of a converging pair writes with ``sync.converging``
        self.role = role if role is not None and role.part is Part.DECIDER else None
        self.task = task
        #: the cluster assignment this run holds (``sync.checkpoint``); None: one node
        self.tenure = tenure
        self.partitions = partitions
        self.policy = policy
        self.on_data_error = on_data_error
        self.conns: list[Connection[Any]] = []
        try:
            for _ in range(partitions):
                # A batch statement waits target.io_timeout (60 s by default: past
                # innodb_lock_wait_timeout's 50 s, so a lock wait reports itself first)
                # before the link is taken for dead; the phase is then retried.
                conn = text_connect(target, timeout=target.io_timeout)
                with conn.cursor() as cur:
                    cur.execute("SET SESSION foreign_key_checks = 0")
                    if tenure is not None:
                        _limit_idle_transactions(cur, target)
                self.conns.append(conn)
        except BaseException:
            self.close()
            raise
        self.pool = ThreadPoolExecutor(max_workers=partitions, thread_name_prefix="apply")

    def prepare(self, start: Position, incarnation: str) -> list[Position]:
        try:
            if self.role is not None:
                with self.conns[0].cursor() as cur:
                    versions.ensure_table(cur)
                    versions.purge(cur, self.role.pair, time.time() - RETENTION)
                self.conns[0].commit()
            return checkpoint.prepare(
                self.conns[0], self.task, incarnation, self.partitions, start, self.tenure
            )
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.target) from None

    def apply(self, batch: Batch, *, all_partitions: bool = False) -> tuple[list[int], int]:
        """Apply *batch* and move the checkpoints of the partitions it touched (all
        of them with *all_partitions*) to its last position; return those
        partitions and the number of conflicts recorded. Blocks until done.

        A ``checked`` batch is applied with conflict detection under the task's
        policy (``sync.conflicts``); otherwise with idempotent REPLACE/DELETE."""
        assert batch.last is not None
        position = batch.last
        work = [
            p for p in range(self.partitions) if all_partitions or batch.parts[p] or batch.notes[p]
        ]
        futures = [self.pool.submit(self._apply_partition, p, batch, position) for p in work]
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err
        return work, sum(f.result() for f in futures)

    def _apply_partition(self, p: int, batch: Batch, position: Position) -> int:
        conn = self.conns[p]
        for attempt in range(1, _ATTEMPTS + 1):
            table: str | None = None
            cur: Any = None
            try:
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    conflicts: list[conflict_log.Conflict] = []
                    for changes in batch.parts[p].values():
                        table = ".".join(changes.mapping.target)
                        conflicts += self.write(cur, changes, batch.checked)
                    self._finish(cur, p, batch, position, conflicts)
                return len(conflicts) + len(batch.notes[p])
            except pymysql.err.MySQLError as exc:
                _rollback(conn)
                error = self.error(exc, table, position, cur)
                if isinstance(error, DataError):
                    return self._apply_rows(p, batch, position)
                # Deadlocks between partitions (gap locks of neighbouring keys) roll
                # one transaction back whole: retry it here; other faults go to the
                # task runner, which retries the phase.
                if not isinstance(error, RetriableError) or attempt == _ATTEMPTS:
                    raise error from None
                time.sleep(0.05 * 2**attempt)
            except DuosyncError:
                _rollback(conn)
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def write(self, cur: Any, changes: TableChanges, checked: bool) -> list[conflict_log.Conflict]:
        """*changes* written in the transaction under way on *cur*: with conflict
        detection when *checked*, idempotently otherwise; the conflicts found."""
        if checked and changes.mapping.key:
            if self.role is not None:
                return write_converging(cur, changes, self.role)
            return write_checked(cur, changes, self.policy)
        _write_table(cur, changes)
        return []

    def _finish(
        self,
        cur: Any,
        p: int,
        batch: Batch,
        position: Position,
        conflicts: list[conflict_log.Conflict],
    ) -> None:
        conflicts = conflicts + batch.notes[p]
        conflict_log.record(cur, self.task, conflicts, position, batch.last_commit_ts)
        checkpoint.advance(cur, self.task, p, position, batch.last_commit_ts, self.tenure)
        checkpoint.confirm(self.tenure, self.task, position)
        cur.execute("COMMIT")

    def error(
        self, exc: BaseException, table: str | None, position: Position | None, cur: Any = None
    ) -> DuosyncError:
        """The driver error *exc*, translated and named by task and position."""
        statement = last_statement(cur) if cur is not None else None
        error = translate(exc, self.target, table=table, statement=statement)
        error.task = self.task
        if position is not None:
            error.position = str(position)
        return error

    def _apply_rows(self, p: int, batch: Batch, position: Position) -> int:
        """The partition again, one row at a time under savepoints, because the
        target refused a row of it (see the module docstring)."""
        conn = self.conns[p]
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                conflicts = self.write_rows(
                    cur, list(batch.parts[p].values()), batch.checked, position
                )
                self._finish(cur, p, batch, position, conflicts)
            return len(conflicts) + len(batch.notes[p])
        except pymysql.err.MySQLError as exc:
            _rollback(conn)
            raise self.error(exc, None, position) from None
        except DuosyncError:
            _rollback(conn)
            raise

    def write_rows(
        self, cur: Any, tables: list[TableChanges], checked: bool, position: Position | None
    ) -> list[conflict_log.Conflict]:
        """*tables* written one row at a time, each under a savepoint, inside the
        transaction under way: a row the target refuses is rolled back alone and
        recorded (skip) or stops the task (stop); the conflicts found."""
        conflicts: list[conflict_log.Conflict] = []
        for changes in tables:
            for single in _one_by_one(changes):
                cur.execute("SAVEPOINT duosync_row")
                try:
                    conflicts += self.write(cur, single, checked)
                except pymysql.err.MySQLError as exc:
                    error = self.error(exc, ".".join(single.mapping.target), position, cur)
                    if not isinstance(error, DataError):
                        raise error from None
                    cur.execute("ROLLBACK TO SAVEPOINT duosync_row")
                    conflicts.append(self._refused(single, error, position))
        return conflicts

    def _refused(
        self, single: TableChanges, error: DataError, position: Position | None
    ) -> conflict_log.Conflict:
        """A refused row: a conflict-log entry (skip), or the error that stops the
        task naming it (stop)."""
        m = single.mapping
        key, row, op, before = _only_change(single)
        if self.on_data_error is OnDataError.STOP:
            raise DataError(
                f"the target refuses the {op} of the row with key {key!r}: {error.message}",
                task=self.task,
                endpoint=self.target.display,
                table=".".join(m.target),
                position=None if position is None else str(position),
                hint="fix the row (or the target column) and start the task again, or set"
                " options.on_data_error: skip to record such rows in the conflict log",
            )
        return conflict_log.Conflict(
            table=".".join(m.target),
            op=op,
            key=key,
            columns=m.columns,
            before=before,
            after=row,
            current=None,
            reason=f"refused by the target: {error.message}",
            resolution=REFUSED,
        )

    def close(self) -> None:
        if hasattr(self, "pool"):
            self.pool.shutdown(wait=True)
        for conn in self.conns:
            # closing a broken connection: nothing left to do
            with contextlib.suppress(Exception):
                conn.close()
        self.conns = []


#: seconds a cluster run's transaction may sit idle on the target before the server
#: rolls it back. Ours send their statements back to back, so an idle one belongs to
#: a node that is paused or cut off; ended, it releases the row locks that would
#: hold up the node the task failed over to (``sync.checkpoint.fence``).
IDLE_TRANSACTION_TIMEOUT = 5


def _limit_idle_transactions(cur: Any, target: Endpoint) -> None:
    if target.flavor is Flavor.OCEANBASE:
        cur.execute("SET SESSION ob_trx_idle_timeout = %s", (IDLE_TRANSACTION_TIMEOUT * 10**6,))
    elif target.flavor is Flavor.MARIADB:
        cur.execute("SET SESSION idle_transaction_timeout = %s", (IDLE_TRANSACTION_TIMEOUT,))
    # MySQL has no such limit: there a paused node's transaction lasts until its
    # connection dies, and the new node waits for those rows' locks until then.


def _rollback(conn: Connection[Any]) -> None:
    # The connection may be the casualty (server gone): then the server has rolled
    # the transaction back already, and the original error is what matters.
    with contextlib.suppress(pymysql.err.MySQLError, OSError):
        conn.rollback()


def _one_by_one(changes: TableChanges) -> list[TableChanges]:
    """*changes* split into one change each (same mapping)."""
    m = changes.mapping
    if changes.ordered:
        return [TableChanges(m, ordered=[op]) for op in changes.ordered]
    out = []
    for key, row in changes.final.items():
        first = {key: changes.first[key]} if key in changes.first else {}
        stamps = {key: changes.stamps[key]} if key in changes.stamps else {}
        out.append(TableChanges(m, final={key: row}, first=first, stamps=stamps))
    return out


def _only_change(
    single: TableChanges,
) -> tuple[tuple[Any, ...], tuple[Any, ...] | None, str, tuple[Any, ...] | None]:
    """(key, new row, op, row before) of a one-change ``TableChanges``."""
    if single.ordered:
        kind, before, after = single.ordered[0]
        return (after or before or ()), after, kind.value, before
    key, row = next(iter(single.final.items()))
    before = single.first.get(key)
    op = "delete" if row is None else "insert" if before is None else "update"
    return key, row, op, before


def _write_table(cur: Any, changes: TableChanges) -> None:
    m = changes.mapping
    table = qualified(*m.target)
    cols = [quote_ident(c) for c in m.columns]
    if changes.ordered:
        _write_ordered(cur, table, cols, changes)
        return
    deletes = changes.deletes()
    if deletes:
        keys = [cols[i] for i in m.key]
        for start in range(0, len(deletes), _DELETE_KEYS):
            part = deletes[start : start + _DELETE_KEYS]
            cond, args = key_condition(keys, part)
            cur.execute(f"DELETE FROM {table} WHERE {cond}", args)
    upserts = changes.upserts()
    if upserts:
        marks = ", ".join(["%s"] * len(cols))
        cur.executemany(f"REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})", upserts)


def _write_ordered(cur: Any, table: str, cols: list[str], changes: TableChanges) -> None:
    """A table without a key: each change as it came, matched on the whole row.

    Not idempotent: a replay after a crash may apply such changes twice (the
    task warns about keyless tables when it starts)."""
    match = " AND ".join(f"{c} <=> %s" for c in cols)
    for op, before, after in changes.ordered:
        if op is Op.INSERT:
            marks = ", ".join(["%s"] * len(cols))
            cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", after)
        elif op is Op.DELETE:
            cur.execute(f"DELETE FROM {table} WHERE {match} LIMIT 1", before)
        else:
            sets = ", ".join(f"{c} = %s" for c in cols)
            cur.execute(
                f"UPDATE {table} SET {sets} WHERE {match} LIMIT 1",
                [*(after or ()), *(before or ())],
            )
