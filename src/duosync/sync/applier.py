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
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql
from pymysql.connections import Connection

from duosync.config import Endpoint
from duosync.core.events import Op
from duosync.core.positions import Position
from duosync.endpoints.mysql.connection import translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import DuosyncError, RetriableError
from duosync.migrate.copier import text_connect
from duosync.spec import ConflictPolicy
from duosync.sync import checkpoint, conflict_log
from duosync.sync.batch import Batch, TableChanges
from duosync.sync.conflicts import key_condition, write_checked

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
    ) -> None:
        self.target = target
        self.task = task
        self.partitions = partitions
        self.policy = policy
        self.conns: list[Connection[Any]] = []
        try:
            for _ in range(partitions):
                conn = text_connect(target)
                with conn.cursor() as cur:
                    cur.execute("SET SESSION foreign_key_checks = 0")
                self.conns.append(conn)
        except BaseException:
            self.close()
            raise
        self.pool = ThreadPoolExecutor(max_workers=partitions, thread_name_prefix="apply")

    def prepare(self, start: Position, incarnation: str) -> list[Position]:
        try:
            return checkpoint.prepare(self.conns[0], self.task, incarnation, self.partitions, start)
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
        work = [p for p in range(self.partitions) if all_partitions or batch.parts[p]]
        futures = [self.pool.submit(self._apply_partition, p, batch, position) for p in work]
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err
        return work, sum(f.result() for f in futures)

    def _apply_partition(self, p: int, batch: Batch, position: Position) -> int:
        conn = self.conns[p]
        for attempt in range(1, _ATTEMPTS + 1):
            table = None
            try:
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    conflicts: list[conflict_log.Conflict] = []
                    for changes in batch.parts[p].values():
                        table = changes.mapping.target
                        if batch.checked and changes.mapping.key:
                            conflicts += write_checked(cur, changes, self.policy)
                        else:
                            _write_table(cur, changes)
                    conflict_log.record(cur, self.task, conflicts, position, batch.last_commit_ts)
                    checkpoint.advance(cur, self.task, p, position, batch.last_commit_ts)
                    cur.execute("COMMIT")
                return len(conflicts)
            except pymysql.err.MySQLError as exc:
                conn.rollback()
                error = translate(
                    exc, self.target, table=f"{table[0]}.{table[1]}" if table else None
                )
                error.task = self.task
                error.position = str(position)
                # Deadlocks between partitions (gap locks of neighbouring keys) roll
                # one transaction back whole: retry it.
                if not isinstance(error, RetriableError) or attempt == _ATTEMPTS:
                    raise error from None
                time.sleep(0.05 * 2**attempt)
            except DuosyncError:
                conn.rollback()
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        if hasattr(self, "pool"):
            self.pool.shutdown(wait=True)
        for conn in self.conns:
            # closing a broken connection: nothing left to do
            with contextlib.suppress(Exception):
                conn.close()
        self.conns = []


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
