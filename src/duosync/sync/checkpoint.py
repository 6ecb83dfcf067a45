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

from duosync.core.positions import BinlogPosition
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.inspector import OMS_DATABASE
from duosync.errors import ConfigError

TABLE = qualified(OMS_DATABASE, "duosync_checkpoint")

_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " task VARCHAR(64) NOT NULL,"
    " part INT NOT NULL,"
    " incarnation VARCHAR(64) NOT NULL,"
    " file VARCHAR(255) NOT NULL,"
    " pos BIGINT NOT NULL,"
    " gtid TEXT NULL,"
    " commit_ts DOUBLE NULL,"
    " applied_at DOUBLE NOT NULL,"
    " PRIMARY KEY (task, part))",
)


def prepare(
    conn: Connection[Any], task: str, incarnation: str, partitions: int, start: BinlogPosition
) -> list[BinlogPosition]:
    """Create the table and this task's rows (at *start*) if missing; return every
    partition's checkpoint, in partition order.

    *incarnation* identifies this task's life in the metadata store: rows left on
    the target by an earlier task of the same name (deleted and created again, or
    run from another store) are not ours and are replaced, never resumed from."""
    with conn.cursor() as cur:
        for sql in _DDL:
            cur.execute(sql)
        cur.execute(
            f"SELECT part, file, pos, gtid, incarnation FROM {TABLE} WHERE task = %s", (task,)
        )
        rows = {int(r[0]): r for r in cur.fetchall()}
        if rows and any(str(r[4]) != incarnation for r in rows.values()):
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
            cur.executemany(
                f"INSERT INTO {TABLE}"
                " (task, part, incarnation, file, pos, gtid, commit_ts, applied_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, NULL, %s)",
                [
                    (task, p, incarnation, start.file, start.offset, start.gtid, time.time())
                    for p in range(partitions)
                ],
            )
            return [start] * partitions
    return [
        BinlogPosition(file=str(r[1]), offset=int(r[2]), gtid=str(r[3]) if r[3] else None)
        for _, r in sorted(rows.items())
    ]


def advance(
    cur: Any, task: str, partition: int, position: BinlogPosition, commit_ts: float | None
) -> None:
    """Record *position* for *partition*; call inside the transaction it covers."""
    cur.execute(
        f"UPDATE {TABLE} SET file = %s, pos = %s, gtid = %s, commit_ts = %s, applied_at = %s"
        " WHERE task = %s AND part = %s",
        (position.file, position.offset, position.gtid, commit_ts, time.time(), task, partition),
    )


def forget(conn: Connection[Any], task: str) -> None:
    """Remove the task's checkpoints (a task reset)."""
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE task = %s", (task,))
