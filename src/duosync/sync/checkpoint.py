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
"""

from __future__ import annotations

import time
from typing import Any

from pymysql.connections import Connection

from duosync.core.positions import Position, position_from
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.inspector import OMS_DATABASE
from duosync.errors import ConfigError
from duosync.sync import conflict_log

TABLE = qualified(OMS_DATABASE, "duosync_checkpoint")

_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " task VARCHAR(64) NOT NULL,"
    " part INT NOT NULL,"
    " incarnation VARCHAR(64) NOT NULL,"
    " position TEXT NOT NULL,"
    " commit_ts DOUBLE NULL,"
    " applied_at DOUBLE NOT NULL,"
    " PRIMARY KEY (task, part))",
)

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


def prepare(
    conn: Connection[Any], task: str, incarnation: str, partitions: int, start: Position
) -> list[Position]:
    """Create the table and this task's rows (at *start*) if missing; return every
    partition's checkpoint, in partition order.

    *incarnation* identifies this task's life in the metadata store: rows left on
    the target by an earlier task of the same name (deleted and created again, or
    run from another store) are not ours and are replaced, never resumed from."""
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
            cur.executemany(
                f"INSERT INTO {TABLE}"
                " (task, part, incarnation, position, commit_ts, applied_at)"
                " VALUES (%s, %s, %s, %s, NULL, %s)",
                [
                    (task, p, incarnation, start.model_dump_json(), time.time())
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
    cur: Any, task: str, partition: int, position: Position, commit_ts: float | None
) -> None:
    """Record *position* for *partition*; call inside the transaction it covers."""
    cur.execute(
        f"UPDATE {TABLE} SET position = %s, commit_ts = %s, applied_at = %s"
        " WHERE task = %s AND part = %s",
        (position.model_dump_json(), commit_ts, time.time(), task, partition),
    )


def forget(conn: Connection[Any], task: str) -> None:
    """Remove the task's checkpoints (a task reset)."""
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE task = %s", (task,))
