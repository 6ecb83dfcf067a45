"""Incremental checkpoints kept on the target, in its ``oms`` database.

Exactly-once effect (DESIGN.md §3.2): each partition's checkpoint row is updated in
the same target transaction as the rows it covers, so after a kill -9 the target
says itself how far every partition got. A restarted task reads from the lowest
checkpoint and each partition drops what it already holds (``sync.batch``).

The checkpoint row is also the marker of our writes: every transaction the applier
commits touches ``oms.duosync_checkpoint`` with the task's name, which is how the
reverse task of a two-way sync recognises (and drops) them in the target's log.

Position meaning: a partition's row says "every source transaction up to and
including this position is applied in this partition".

Fencing (DESIGN.md §3.6): in a cluster every assignment of a task to a node has an
*epoch* from ZooKeeper, larger for every new assignment. ``prepare`` raises the
rows' epoch to the run's own (and fails with ``Fenced`` when a newer one is already
there), and ``advance`` updates a row only while it still carries that epoch: a
node that was paused (SIGSTOP, a long GC) or cut off while its task moved on
finds, at its next commit, that its checkpoint update matched nothing, and rolls
the whole transaction back. Its rows and its position never land. A run outside a
cluster has no epoch and leaves the column as it is.

The target only learns of a new epoch when the new owner fences it, seconds after
ZooKeeper moved the task. Until then the old owner is kept from committing by its
own side of the ``Tenure``: before every commit it checks that ZooKeeper confirmed
its membership recently (less than the session timeout ago), which a node that was
frozen or cut off cannot claim. The new owner fences the rows *before* it reads
their positions, so whatever the old one committed first is resumed from, never
applied twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymysql.connections import Connection

from duosync.core.catalog import OMS_DATABASE
from duosync.core.positions import Position, position_from
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import ConfigError, Fenced, RetriableError
from duosync.sync import conflict_log, versions

TABLE = qualified(OMS_DATABASE, "duosync_checkpoint")


def _always() -> bool:
    return True


class _Tally:
    """A count shared by the runs of this process (for /metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


#: transactions this process refused to commit for a cluster run that no longer
#: holds its task (the target's epoch fence, or an unconfirmed membership)
REFUSED = _Tally()


@dataclass(frozen=True)
class Tenure:
    """A cluster run's hold on its task (see the module docstring)."""

    #: the epoch of the assignment the run holds
    epoch: int
    #: whether the node's membership is confirmed right now; asked before commits
    confirmed: Callable[[], bool] = _always


_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " task VARCHAR(64) NOT NULL,"
    " part INT NOT NULL,"
    " incarnation VARCHAR(64) NOT NULL,"
    " position TEXT NOT NULL,"
    " commit_ts DOUBLE NULL,"
    " applied_at DOUBLE NOT NULL,"
    " epoch BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (task, part))",
)

# Tables made before fencing get the epoch column (0: no cluster run yet).
_ADD_EPOCH = f"ALTER TABLE {TABLE} ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0"

# The first version kept binlog positions in three columns; such a table is
# upgraded in place, its positions kept.
_UPGRADE = (
    f"ALTER TABLE {TABLE} ADD COLUMN position TEXT NULL",
    f"UPDATE {TABLE} SET position = JSON_OBJECT('kind', 'binlog', 'file', file,"
    " 'offset', pos, 'gtid', gtid)",
    f"ALTER TABLE {TABLE} DROP COLUMN file, DROP COLUMN pos, DROP COLUMN gtid",
)


def ensure_table(cur: Any) -> None:
    """Create (or upgrade) the checkpoint table, and ``oms`` and the conflict log
    with it (the transaction tables of a task's target)."""
    for sql in _DDL:
        cur.execute(sql)
    conflict_log.ensure_table(cur)
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'duosync_checkpoint'"
        " AND COLUMN_NAME = 'position'",
        (OMS_DATABASE,),
    )
    if not cur.fetchone()[0]:
        for sql in _UPGRADE:
            cur.execute(sql)
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'duosync_checkpoint'"
        " AND COLUMN_NAME = 'epoch'",
        (OMS_DATABASE,),
    )
    if not cur.fetchone()[0]:
        cur.execute(_ADD_EPOCH)


def prepare(
    conn: Connection[Any],
    task: str,
    incarnation: str,
    partitions: int,
    start: Position,
    tenure: Tenure | None = None,
) -> list[Position]:
    """Create the table and this task's rows (at *start*) if missing; return every
    partition's checkpoint, in partition order.

    *incarnation* identifies this task's life in the metadata store: rows left on
    the target by an earlier task of the same name (deleted and created again, or
    run from another store) are not ours and are replaced, never resumed from.

    With *tenure* (a cluster run), the rows are raised to its epoch before their
    positions are read, which fences every run of an older epoch; ``Fenced`` if a
    newer epoch holds them already."""
    if tenure is not None:
        confirm(tenure, task, start)  # a node that lost its task must not even fence
        with conn.cursor() as cur:
            ensure_table(cur)
            # an earlier life's rows are no one's to fence: replaced below
            cur.execute(
                f"DELETE FROM {TABLE} WHERE task = %s AND incarnation <> %s", (task, incarnation)
            )
        fence(conn, task, tenure.epoch)
    epoch = None if tenure is None else tenure.epoch
    return _prepare_rows(conn, task, incarnation, partitions, start, epoch)


def fence(conn: Connection[Any], task: str, epoch: int) -> None:
    """Raise the task's rows to *epoch* (autocommitted: from now on only this
    epoch's transactions can move them); ``Fenced`` if a newer epoch holds them.

    A paused older run may hold a row's lock in an open transaction: this waits
    for it, and the applier's idle-transaction timeout (``sync.applier``) makes
    the server end that transaction within seconds."""
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE {TABLE} SET epoch = %s WHERE task = %s AND epoch <= %s",
            (epoch, task, epoch),
        )
        cur.execute(f"SELECT MAX(epoch) FROM {TABLE} WHERE task = %s", (task,))
        row = cur.fetchone()
    newest = int(row[0]) if row and row[0] is not None else 0
    if newest > epoch:
        raise Fenced(
            f"a newer assignment of the task (epoch {newest}) holds its checkpoints on the"
            f" target; this run's epoch is {epoch}",
            task=task,
            hint="nothing to do if the task runs on another node; if the cluster's ZooKeeper"
            " data was wiped (epochs start again), release the old epoch with"
            f" UPDATE oms.duosync_checkpoint SET epoch = 0 WHERE task = '{task}'",
        )


def _prepare_rows(
    conn: Connection[Any],
    task: str,
    incarnation: str,
    partitions: int,
    start: Position,
    epoch: int | None,
) -> list[Position]:
    with conn.cursor() as cur:
        ensure_table(cur)
        cur.execute(f"SELECT part, position, incarnation FROM {TABLE} WHERE task = %s", (task,))
        rows = {int(r[0]): r for r in cur.fetchall()}
        if rows and any(str(r[2]) != incarnation for r in rows.values()):
            cur.execute(f"DELETE FROM {TABLE} WHERE task = %s", (task,))
            rows = {}
        if rows and len(rows) != partitions:
            raise ConfigError(
                f"the target's checkpoints of this task have {len(rows)} partitions,"
                f" but write_concurrency is {partitions}",
                task=task,
                hint="run the task with its original write_concurrency",
            )
        if not rows:
            # A new life of the task: conflicts an earlier one recorded are not its.
            conflict_log.forget(cur, task)
            versions.forget(cur, task)
            cur.executemany(
                f"INSERT INTO {TABLE}"
                " (task, part, incarnation, position, commit_ts, applied_at, epoch)"
                " VALUES (%s, %s, %s, %s, NULL, %s, %s)",
                [
                    (task, p, incarnation, start.model_dump_json(), time.time(), epoch or 0)
                    for p in range(partitions)
                ],
            )
            return [start] * partitions
    positions = [position_from(str(r[1])) for _, r in sorted(rows.items())]
    if any(type(p) is not type(start) for p in positions):
        raise ConfigError(
            f"the target's checkpoints of this task are {positions[0].kind} positions,"
            f" but its source gives {start.kind} positions",
            task=task,
            hint="a task's source cannot change kind; create a new task",
        )
    return positions


def advance(
    cur: Any,
    task: str,
    partition: int,
    position: Position,
    commit_ts: float | None,
    tenure: Tenure | None = None,
) -> None:
    """Record *position* for *partition*; call inside the transaction it covers.

    With *tenure*, only while the node's membership is confirmed
    (``RetriableError`` if not) and the row still carries its epoch (``Fenced``
    if a newer assignment took it); either way the caller must roll the
    transaction back. (``applied_at`` changes on every call, so a matched row
    always counts as changed in ``rowcount``.)"""
    if tenure is None:
        cur.execute(
            f"UPDATE {TABLE} SET position = %s, commit_ts = %s, applied_at = %s"
            " WHERE task = %s AND part = %s",
            (position.model_dump_json(), commit_ts, time.time(), task, partition),
        )
        return
    epoch = tenure.epoch
    confirm(tenure, task, position)
    cur.execute(
        f"UPDATE {TABLE} SET position = %s, commit_ts = %s, applied_at = %s"
        " WHERE task = %s AND part = %s AND epoch = %s",
        (position.model_dump_json(), commit_ts, time.time(), task, partition, epoch),
    )
    if cur.rowcount != 1:
        REFUSED.add()
        raise Fenced(
            f"partition {partition}: a newer assignment of the task holds its checkpoint"
            f" (this run's epoch is {epoch}); the transaction commits nothing",
            task=task,
            position=str(position),
        )


def touch(cur: Any, task: str, tenure: Tenure | None = None) -> None:
    """Mark the transaction under way as ours at its start, its checkpoint left
    as it is: partition 0's row is updated first, so the opposite task recognises
    a large transaction on its first rows (``sync.streamed``). With *tenure*, the
    same fence as ``advance``."""
    if tenure is None:
        cur.execute(
            f"UPDATE {TABLE} SET applied_at = %s WHERE task = %s AND part = 0", (time.time(), task)
        )
        return
    cur.execute(
        f"UPDATE {TABLE} SET applied_at = %s WHERE task = %s AND part = 0 AND epoch = %s",
        (time.time(), task, tenure.epoch),
    )
    if cur.rowcount != 1:
        REFUSED.add()
        raise Fenced(
            f"a newer assignment of the task holds its checkpoint (this run's epoch is"
            f" {tenure.epoch}); the transaction commits nothing",
            task=task,
        )


def confirm(tenure: Tenure | None, task: str, position: Position) -> None:
    """Refuse (``RetriableError``) unless the run's membership is confirmed: asked
    before the checkpoint update and again just before COMMIT, because a node
    frozen between the two holds the row's lock while the task moves on, and on
    waking must not commit what it prepared before."""
    if tenure is None or tenure.confirmed():
        return
    REFUSED.add()
    raise RetriableError(
        "this node's cluster membership is not confirmed (ZooKeeper silent): the"
        " transaction commits nothing",
        task=task,
        position=str(position),
    )


def forget(conn: Connection[Any], task: str) -> None:
    """Remove the task's checkpoints (a task reset)."""
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE task = %s", (task,))
