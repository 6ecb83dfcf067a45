"""The conflict log: changes incremental sync could not apply as written, kept on the
target in ``oms.duosync_conflict``.

Recorded in the same target transaction as the changes around them (and the
checkpoint that covers them), so a replay after a crash records a conflict exactly
once, like it applies a row exactly once. ``duosync conflicts TASK`` lists them.

Images are JSON arrays in the order of ``columns``; binary values are written as
``{"hex": "..."}`` so that any byte string survives JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from duosync.config import Endpoint
from duosync.core.catalog import OMS_DATABASE
from duosync.core.positions import Position
from duosync.endpoints.mysql.connection import connect, driver_errors
from duosync.endpoints.mysql.dialect import qualified, quote_ident

TABLE = qualified(OMS_DATABASE, "duosync_conflict")

_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " task VARCHAR(64) NOT NULL,"
    " tbl VARCHAR(200) NOT NULL,"
    " op VARCHAR(16) NOT NULL,"
    " row_key LONGTEXT NOT NULL,"
    " columns_json LONGTEXT NOT NULL,"
    " before_img LONGTEXT NULL,"
    " after_img LONGTEXT NULL,"
    " current_img LONGTEXT NULL,"
    " reason VARCHAR(500) NOT NULL,"
    " resolution VARCHAR(32) NOT NULL,"
    " position TEXT NOT NULL,"
    " commit_ts DOUBLE NULL,"
    " recorded_at DOUBLE NOT NULL,"
    " KEY task_id (task, id))",
)

#: what happened to the change
OVERWRITTEN = "overwritten"  # the source's row replaced the target's
KEPT_TARGET = "kept target"  # ignored: the target's row stays
FAILED = "failed"  # cannot apply (missing row, or a unique key clash): skipped
#: converging policies (``sync.convergence``): the winner, on both sides
SOURCE_WON = "source won"
TARGET_WON = "target won"

#: which side's row a resolution keeps (as the recording task sees its sides)
WINNERS = {OVERWRITTEN: "source", SOURCE_WON: "source", KEPT_TARGET: "target", TARGET_WON: "target"}


@dataclass(frozen=True)
class Conflict:
    """One change that met the target in a state it did not expect."""

    table: str  # target "db.table"
    op: str  # insert, update or delete (the batch's net change of the row)
    key: tuple[Any, ...]
    columns: tuple[str, ...]
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None
    current: tuple[Any, ...] | None
    reason: str
    resolution: str


@dataclass(frozen=True)
class ConflictRecord:
    id: int
    task: str
    table: str
    op: str
    key: list[Any]
    columns: list[str]
    before: list[Any] | None
    after: list[Any] | None
    current: list[Any] | None
    reason: str
    resolution: str
    position: str
    commit_ts: float | None
    recorded_at: float
    #: "source" or "target": whose row the resolution kept; None: none (failed)
    winner: str | None = None


def ensure_table(cur: Any) -> None:
    for sql in _DDL:
        cur.execute(sql)


def forget(cur: Any, task: str) -> None:
    """Remove the task's records (a new life of a task with this name)."""
    cur.execute(f"DELETE FROM {TABLE} WHERE task = %s", (task,))


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": bytes(value).hex()}
    return value


def _image(values: tuple[Any, ...] | None) -> str | None:
    return None if values is None else json.dumps([_plain(v) for v in values])


def record(
    cur: Any,
    task: str,
    conflicts: list[Conflict],
    position: Position,
    commit_ts: float | None,
) -> None:
    """Write *conflicts*; call inside the target transaction that skipped or
    overwrote their changes."""
    if not conflicts:
        return
    now = time.time()
    where = position.model_dump_json()
    cur.executemany(
        f"INSERT INTO {TABLE} (task, tbl, op, row_key, columns_json, before_img, after_img,"
        " current_img, reason, resolution, position, commit_ts, recorded_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                task,
                c.table,
                c.op,
                _image(c.key),
                json.dumps(list(c.columns)),
                _image(c.before),
                _image(c.after),
                _image(c.current),
                c.reason[:500],
                c.resolution,
                where,
                commit_ts,
                now,
            )
            for c in conflicts
        ],
    )


def list_conflicts(
    endpoint: Endpoint, task: str, *, limit: int = 100, after_id: int = 0
) -> list[ConflictRecord]:
    """The task's recorded conflicts on *endpoint* (its target), oldest first."""
    conn = connect(endpoint)
    try:
        with driver_errors(endpoint), conn.cursor() as cur:
            if not _exists(cur):
                return []
            cur.execute(
                f"SELECT id, task, tbl, op, row_key, columns_json, before_img, after_img,"
                f" current_img, reason, resolution, position, commit_ts, recorded_at"
                f" FROM {TABLE} WHERE task = %s AND id > %s ORDER BY id LIMIT %s",
                (task, after_id, limit),
            )
            rows = cur.fetchall()
    finally:
        conn.close()

    def load(text: Any) -> Any:
        return None if text is None else json.loads(text)

    return [
        ConflictRecord(
            id=int(r[0]),
            task=str(r[1]),
            table=str(r[2]),
            op=str(r[3]),
            key=load(r[4]),
            columns=load(r[5]),
            before=load(r[6]),
            after=load(r[7]),
            current=load(r[8]),
            reason=str(r[9]),
            resolution=str(r[10]),
            position=str(r[11]),
            commit_ts=None if r[12] is None else float(r[12]),
            recorded_at=float(r[13]),
            winner=WINNERS.get(str(r[10])),
        )
        for r in rows
    ]


def count_conflicts(endpoint: Endpoint, task: str) -> int:
    conn = connect(endpoint)
    try:
        with driver_errors(endpoint), conn.cursor() as cur:
            if not _exists(cur):
                return 0
            cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE task = %s", (task,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _exists(cur: Any) -> bool:
    """Whether the log exists (listing a task that never synced creates nothing)."""
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'duosync_conflict'",
        (OMS_DATABASE,),
    )
    return bool(cur.fetchone()[0])
