"""The row-version registry of a converging pair, on the arbiter in
``oms.duosync_row_version`` (``sync.convergence``).

Entries are the deciding task's (``pair`` is its name). One entry per key the
decider wrote (or kept): the time that dates the row state it left, a digest of that
row computed by the arbiter server (so a later application write to the row shows as
a different digest), or ``deleted`` for a tombstone. Written in the decider's
transaction, so it always describes what that transaction left. Keys are identified
by an MD5 of their JSON text (values as the decider's change stream gives them: the
same stream always gives the same text).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from duosync.core.catalog import OMS_DATABASE
from duosync.endpoints.mysql.dialect import qualified, quote_ident

TABLE = qualified(OMS_DATABASE, "duosync_row_version")

_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " pair VARCHAR(64) NOT NULL,"
    " tbl VARCHAR(200) NOT NULL,"
    " key_hash CHAR(32) NOT NULL,"
    " ts DOUBLE NOT NULL,"
    " digest CHAR(32) NULL,"
    " deleted TINYINT NOT NULL,"
    " stamped_at DOUBLE NOT NULL,"
    " PRIMARY KEY (pair, tbl, key_hash),"
    " KEY stamped (pair, stamped_at))",
)

_CHUNK = 500


@dataclass(frozen=True)
class Entry:
    """What the decider last left in one row."""

    ts: float
    digest: str | None  # None: a tombstone
    deleted: bool


def ensure_table(cur: Any) -> None:
    for sql in _DDL:
        cur.execute(sql)


def key_hash(key: Sequence[Any]) -> str:
    text = json.dumps([v.hex() if isinstance(v, bytes) else v for v in key], default=str)
    return hashlib.md5(text.encode()).hexdigest()


def lookup(cur: Any, pair: str, table: str, keys: Sequence[Sequence[Any]]) -> dict[str, Entry]:
    """The entries of *keys* (by ``key_hash``)."""
    found: dict[str, Entry] = {}
    hashes = [key_hash(k) for k in keys]
    for start in range(0, len(hashes), _CHUNK):
        # padded to a few list lengths: one plan each on OceanBase (sync.converging)
        part = hashes[start : start + _CHUNK]
        size = next(n for n in (1, 4, 16, 64, 200, _CHUNK) if n >= len(part))
        part += [part[-1]] * (size - len(part))
        cur.execute(
            f"SELECT key_hash, ts, digest, deleted FROM {TABLE}"
            f" WHERE pair = %s AND tbl = %s AND key_hash IN ({', '.join(['%s'] * len(part))})",
            [pair, table, *part],
        )
        for h, ts, digest, deleted in cur.fetchall():
            text = None if digest is None else str(digest)
            found[str(h)] = Entry(float(ts), text, int(deleted) == 1)
    return found


def store(cur: Any, pair: str, table: str, rows: Sequence[tuple[str, float, str | None]]) -> None:
    """Record (key hash, time, digest or None for a tombstone) for each row."""
    if not rows:
        return
    now = time.time()
    cur.executemany(
        f"REPLACE INTO {TABLE} (pair, tbl, key_hash, ts, digest, deleted, stamped_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(pair, table, h, ts, d, int(d is None), now) for h, ts, d in rows],
    )


def purge(cur: Any, pair: str, older_than: float) -> None:
    """Drop entries stamped before *older_than* (Unix time)."""
    cur.execute(f"DELETE FROM {TABLE} WHERE pair = %s AND stamped_at < %s", (pair, older_than))


def forget(cur: Any, task: str) -> None:
    """Drop a deciding task's entries (a new life of a task with this name)."""
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'duosync_row_version'",
        (OMS_DATABASE,),
    )
    if int(cur.fetchone()[0]):  # text connections answer "0"
        cur.execute(f"DELETE FROM {TABLE} WHERE pair = %s", (task,))
