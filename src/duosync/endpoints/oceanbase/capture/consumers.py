"""A task's capture on an OceanBase source: install (idempotent), remove, status.

``install`` registers the task as a consumer of the change log, makes sure each of
its tables has current triggers, and returns the position the task starts from:
every transaction that commits after the call is in the log after that position,
and every one that committed before is visible to any snapshot read taken after it
(so a full migration started afterwards plus the log from there loses nothing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.core.positions import TriggerLogPosition
from duosync.endpoints.mysql.connection import connect, translate
from duosync.endpoints.oceanbase.capture import log, triggers
from duosync.errors import DuosyncError, RetriableError

TableRef = tuple[str, str]

_PRIVILEGE_HINT = (
    "capture needs the TRIGGER privilege on the captured tables and CREATE, INSERT,"
    " UPDATE, DELETE and DROP on the oms database"
)
_PRIVILEGE_CODES = {1044, 1045, 1142, 1143, 1227}
_LOCK = "duosync_capture"
_LOCK_WAIT = 60


@dataclass(frozen=True)
class ConsumerStatus:
    consumer: str
    tables: tuple[TableRef, ...]
    position: TriggerLogPosition
    updated_at: float


@dataclass(frozen=True)
class CaptureStatus:
    consumers: tuple[ConsumerStatus, ...]
    log_rows: int
    triggers: int


def install(endpoint: Endpoint, consumer: str, tables: Sequence[Table]) -> TriggerLogPosition:
    """Capture *tables* for *consumer*; return where a first run of it starts
    (the position it already confirmed, when it was installed before)."""
    triggers.check_supported(tables)
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur, locked(cur):
            log.create_tables(cur)
            refs = [(t.database, t.name) for t in tables]
            current = triggers.signatures(cur, refs)
            for t in tables:
                triggers.install_table(cur, t, current[(t.database, t.name)])
            cur.execute(
                f"SELECT scn, tx, tables FROM {log.CONSUMERS} WHERE consumer = %s", (consumer,)
            )
            row = cur.fetchone()
            if row is not None:
                known = {tuple(r) for r in json.loads(row[2])}
                set_tables(cur, consumer, sorted(known | set(refs)))
                return TriggerLogPosition(scn=int(row[0]), tx=int(row[1]))
            cur.execute(
                f"INSERT INTO {log.CONSUMERS} (consumer, tables, scn, tx, updated_at)"
                " VALUES (%s, %s, 0, 0, %s)",
                (consumer, json.dumps(sorted(refs)), time.time()),
            )
            # The commit version of that insert orders the start after every
            # transaction committed before it (all of which a later snapshot sees).
            cur.execute(f"SELECT ORA_ROWSCN FROM {log.CONSUMERS} WHERE consumer = %s", (consumer,))
            start = TriggerLogPosition(scn=int(cur.fetchone()[0]))
            confirm(cur, consumer, start)
            return start
    except pymysql.err.MySQLError as exc:
        raise _error(exc, endpoint) from None
    finally:
        conn.close()


def now(endpoint: Endpoint, consumer: str) -> TriggerLogPosition:
    """A position after every transaction committed before the call (the commit
    version of a write made for the purpose: *consumer*'s row is touched)."""
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"UPDATE {log.CONSUMERS} SET updated_at = %s WHERE consumer = %s",
                (time.time(), consumer),
            )
            cur.execute(f"SELECT ORA_ROWSCN FROM {log.CONSUMERS} WHERE consumer = %s", (consumer,))
            row = cur.fetchone()
            if row is None:
                raise DuosyncError(
                    f"no change capture is installed for task {consumer}",
                    endpoint=endpoint.display,
                )
            return TriggerLogPosition(scn=int(row[0]))
    except pymysql.err.MySQLError as exc:
        raise _error(exc, endpoint) from None
    finally:
        conn.close()


def remove(endpoint: Endpoint, consumer: str) -> list[TableRef]:
    """Stop capturing for *consumer*: drop the triggers no other consumer needs and,
    when no consumer is left, the log itself. Returns the tables whose triggers were
    dropped. Harmless when nothing is installed."""
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur, locked(cur):
            if not log.tables_exist(cur):
                return []
            mine: set[TableRef] = set()
            others: set[TableRef] = set()
            cur.execute(f"SELECT consumer, tables FROM {log.CONSUMERS}")
            for name, tables in cur.fetchall():
                refs = {(str(r[0]), str(r[1])) for r in json.loads(tables)}
                (mine if name == consumer else others).update(refs)
            dropped = sorted(mine - others)
            triggers.drop_triggers(cur, dropped)
            cur.execute(f"DELETE FROM {log.CONSUMERS} WHERE consumer = %s", (consumer,))
            if not others:
                log.drop_tables(cur)
            else:
                log.purge(cur)  # what only this consumer still needed
            return dropped
    except pymysql.err.MySQLError as exc:
        raise _error(exc, endpoint) from None
    finally:
        conn.close()


def status(endpoint: Endpoint) -> CaptureStatus | None:
    """What is installed on *endpoint* (None when capture never was)."""
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            if not log.tables_exist(cur):
                return None
            cur.execute(f"SELECT consumer, tables, scn, tx, updated_at FROM {log.CONSUMERS}")
            consumers = tuple(
                ConsumerStatus(
                    str(r[0]),
                    tuple((str(t[0]), str(t[1])) for t in json.loads(r[1])),
                    TriggerLogPosition(scn=int(r[2]), tx=int(r[3])),
                    float(r[4]),
                )
                for r in cur.fetchall()
            )
            cur.execute(f"SELECT COUNT(*) FROM {log.CHANGELOG}")
            rows = int(cur.fetchone()[0])
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_NAME LIKE %s",
                ("duosync\\_%",),
            )
            return CaptureStatus(consumers, rows, int(cur.fetchone()[0]))
    except pymysql.err.MySQLError as exc:
        raise _error(exc, endpoint) from None
    finally:
        conn.close()


@contextmanager
def locked(cur: Any) -> Iterator[None]:
    """Serialise installs and removals of every task on this server: a removal that
    finds no other consumer drops the log, which must not race with an install."""
    cur.execute("SELECT GET_LOCK(%s, %s)", (_LOCK, _LOCK_WAIT))
    if cur.fetchone()[0] != 1:
        raise RetriableError(
            f"another task has been changing change capture for {_LOCK_WAIT}s",
            hint="try again when it is done",
        )
    try:
        yield
    finally:
        cur.execute("SELECT RELEASE_LOCK(%s)", (_LOCK,))


def set_tables(cur: Any, consumer: str, tables: Sequence[TableRef]) -> None:
    cur.execute(
        f"UPDATE {log.CONSUMERS} SET tables = %s, updated_at = %s WHERE consumer = %s",
        (json.dumps([list(t) for t in tables]), time.time(), consumer),
    )


def confirm(cur: Any, consumer: str, position: TriggerLogPosition) -> None:
    """Record that *consumer* has durably applied everything up to *position*."""
    cur.execute(
        f"UPDATE {log.CONSUMERS} SET scn = %s, tx = %s, updated_at = %s WHERE consumer = %s",
        (position.scn, position.tx, time.time(), consumer),
    )


def _error(exc: pymysql.err.MySQLError, endpoint: Endpoint) -> DuosyncError:
    error = translate(exc, endpoint, action="install change capture")
    if exc.args and exc.args[0] in _PRIVILEGE_CODES:
        error.hint = _PRIVILEGE_HINT
    return error
