"""The decider's write of one table's share of a batch (``sync.convergence``).

For each key of the batch's net changes: read the arbiter's row, decide with the
policy whether the change wins, write the winners, write the losers' arbiter rows
again as they are (so the echo carries them to the other side), keep the row
versions (``last_writer_wins``) and return the conflicts met, each with its
winner. Runs inside the partition's transaction (``sync.applier``).

Whether the arbiter holds what the source held before the change is asked of the
arbiter server (``c <=> value`` for every column, with the before image bound):
its own type and collation rules decide, as they decide what a key is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pymysql

from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import ConfigError
from duosync.spec import ConflictPolicy
from duosync.sync import versions
from duosync.sync.batch import TableChanges
from duosync.sync.conflict_log import SOURCE_WON, TARGET_WON, Conflict
from duosync.sync.conflicts import key_condition
from duosync.sync.convergence import Role, Verdict, Version, decide

Row = tuple[Any, ...]
Key = tuple[Any, ...]

_CHUNK = 200
_DUPLICATE = 1062


@dataclass(frozen=True)
class ArbiterRow:
    """The arbiter's row of one key, as read in the deciding transaction."""

    values: Row
    #: it equals the change's before image (by the server's comparison)
    same: bool
    digest: str
    #: its commit time from ORA_ROWSCN (OceanBase), else None
    rowscn: float | None


class _Table:
    """SQL of one target table for the decider."""

    def __init__(self, changes: TableChanges) -> None:
        m = changes.mapping
        self.name = qualified(*m.target)
        self.cols = [quote_ident(c) for c in m.columns]
        self.keycols = [self.cols[i] for i in m.key]
        self.match = " AND ".join(f"{k} = %s" for k in self.keycols)
        self.digest = f"MD5(CONCAT_WS(',', {', '.join(f'QUOTE({c})' for c in self.cols)}))"
        self.insert = (
            f"INSERT INTO {self.name} ({', '.join(self.cols)})"
            f" VALUES ({', '.join(['%s'] * len(self.cols))})"
        )


def write_converging(cur: Any, changes: TableChanges, role: Role) -> list[Conflict]:
    """Apply *changes* (a keyed table) as the decider of *role*; return conflicts."""
    m = changes.mapping
    name = ".".join(m.target)
    t = _Table(changes)
    lww = _lww_index(role, name, m.columns)
    keys = list(changes.final)
    rows = _arbiter_rows(cur, t, keys, changes, role.rowscn)
    dated = role.policy is ConflictPolicy.LAST_WRITER_WINS
    registry = versions.lookup(cur, role.pair, name, keys) if dated else {}
    now: list[float] = []

    def clock() -> float:
        if not now:
            cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
            now.append(float(cur.fetchone()[0]))
        return now[0]

    conflicts: list[Conflict] = []
    upserts: list[Row] = []
    deletes: list[Key] = []
    reassert: list[tuple[Key, ArbiterRow | None, Row | None]] = []
    stamped: dict[Key, float] = {}  # key -> time of the state this write leaves
    absent: set[Key] = set()  # keys this write leaves without a row
    for key in keys:
        final = changes.final[key]
        before = changes.first.get(key)
        row = rows.get(key)
        matches = (row is None) if before is None else (row is not None and row.same)
        if final is None and row is None:
            matches = True  # already absent: nothing to decide
        incoming = Version(_time(final, lww, changes.stamps.get(key, 0.0)))
        current = None
        if dated and not matches:
            current = _arbiter_version(row, lww, registry.get(versions.key_hash(key)), clock)
        verdict = decide(role.policy, matches=matches, incoming=incoming, current=current)
        if verdict.apply:
            if final is None:
                deletes.append(key)
                absent.add(key)
            else:
                upserts.append(final)
            stamped[key] = incoming.ts
        else:
            reassert.append((key, row, final))
            if row is None:
                absent.add(key)
            if current is not None:
                stamped[key] = current.ts
        if verdict.conflict:
            conflicts.append(_conflict(name, m.columns, key, before, final, row, verdict))
    for start in range(0, len(deletes), _CHUNK):
        cond, args = key_condition(t.keycols, deletes[start : start + _CHUNK])
        cur.execute(f"DELETE FROM {t.name} WHERE {cond}", args)
    if upserts:
        marks = ", ".join(["%s"] * len(t.cols))
        cur.executemany(f"REPLACE INTO {t.name} ({', '.join(t.cols)}) VALUES ({marks})", upserts)
    for key, row, final in reassert:
        _reassert(cur, t, key, row, final)
    if dated and lww is not None:
        # Rows date themselves by the column: only absences need an entry.
        stamped = {k: ts for k, ts in stamped.items() if k in absent}
    if dated and stamped:
        _record_versions(cur, t, role.pair, name, stamped)
    return conflicts


def _lww_index(role: Role, table: str, columns: tuple[str, ...]) -> int | None:
    column = role.lww_columns.get(table)
    if column is None:
        return None
    lowered = [c.lower() for c in columns]
    if column.lower() not in lowered:
        raise ConfigError(
            f"options.lww_column: table {table} has no column {column!r} (synced columns:"
            f" {', '.join(columns)})",
            table=table,
            hint="name a column of the table that holds the time of the row's last change",
        )
    return lowered.index(column.lower())


def _time(row: Row | None, lww: int | None, commit_ts: float) -> float:
    """When *row* (a change's result; None: a delete) was written."""
    if row is None or lww is None or row[lww] is None:
        return commit_ts
    return _seconds(row[lww])


def _seconds(value: Any) -> float:
    """An lww_column value as Unix time (naive times are UTC)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, bytes):
        value = value.decode()
    return _seconds(datetime.fromisoformat(str(value)))


def _arbiter_version(
    row: ArbiterRow | None,
    lww: int | None,
    entry: versions.Entry | None,
    clock: Any,
) -> Version:
    """When the arbiter's row state was written (``sync.convergence``)."""
    if row is not None and lww is not None and row.values[lww] is not None:
        return Version(_seconds(row.values[lww]), 1)
    if entry is not None and (
        (row is None and entry.deleted) or (row is not None and entry.digest == row.digest)
    ):
        return Version(entry.ts, 1)
    if row is not None and row.rowscn is not None:
        return Version(row.rowscn, 1)
    return Version(float(clock()), 1)


def _arbiter_rows(
    cur: Any, t: _Table, keys: list[Key], changes: TableChanges, rowscn: bool
) -> dict[Key, ArbiterRow]:
    """The arbiter's rows of *keys*, each with whether it equals the change's
    before image.

    Every statement has one of a few shapes (``padded``; inserts bind a false flag
    and their own row where updates bind their before image): OceanBase plans a
    statement text it has not seen in 0.2-1 s, ten to fifty times the cost of
    running it (measured: 200 keys, 15-50 ms once planned). Before images with NULL
    values still vary the text, and cost a plan each."""
    found: dict[Key, ArbiterRow] = {}
    scn = "ORA_ROWSCN" if rowscn else "NULL"
    same = "(%s AND " + " AND ".join(f"{c} <=> %s" for c in t.cols) + ")"
    branch = (
        f"SELECT %s, {same}, {t.digest}, {scn}, {', '.join(t.cols)} FROM {t.name} WHERE {t.match}"
    )
    blank = (None,) * len(t.cols)
    for start in range(0, len(keys), _CHUNK):
        part = padded(keys[start : start + _CHUNK])
        args: list[Any] = []
        for i, key in enumerate(part):
            before = changes.first.get(key)
            # An insert has no before image: it binds its row instead (the false
            # flag ignores it). NULLs would do too, but OceanBase plans a statement
            # again for every new pattern of NULL literals in it.
            image = before if before is not None else changes.final.get(key) or blank
            args += [i, before is not None, *image, *key]
        # Not locked: an application write landing between this read and our write
        # is overwritten by it, and the echo then carries ours after it: the sides
        # still agree (``sync.convergence``), that write just lost unseen.
        cur.execute(" UNION ALL ".join([branch] * len(part)), args)
        for got in cur.fetchall():
            found[part[int(got[0])]] = ArbiterRow(
                values=tuple(got[4:]),
                same=got[1] is not None and int(got[1]) == 1,
                digest=str(got[2]),
                rowscn=None if got[3] is None else int(got[3]) / 1e9,
            )
    return found


#: statement sizes (keys per statement) the decider uses; see ``_arbiter_rows``
SIZES = (1, 4, 16, 64, _CHUNK)


def padded(items: list[Any]) -> list[Any]:
    """*items* (at most ``_CHUNK``) repeated at the end up to the next of ``SIZES``."""
    size = next(n for n in SIZES if n >= len(items))
    return items + [items[-1]] * (size - len(items))


def _reassert(cur: Any, t: _Table, key: Key, row: ArbiterRow | None, final: Row | None) -> None:
    """Write the arbiter's state of *key* again as it is, so that its log (which
    the echo applies to the other side) carries it after the losing change."""
    cond, args = key_condition(t.keycols, [key])
    if row is not None:
        cur.execute(f"DELETE FROM {t.name} WHERE {cond}", args)
        cur.execute(t.insert, row.values)
        return
    assert final is not None  # absent on both: decided as no conflict
    cur.execute("SAVEPOINT duosync_reassert")
    try:
        cur.execute(t.insert, final)
    except pymysql.err.IntegrityError as exc:
        # Another row holds one of its unique values: the absence cannot be
        # written as an insert and a delete; the other side keeps the row.
        if exc.args[0] != _DUPLICATE:
            raise
        cur.execute("ROLLBACK TO SAVEPOINT duosync_reassert")
        return
    cur.execute(f"DELETE FROM {t.name} WHERE {cond}", args)


def _record_versions(cur: Any, t: _Table, pair: str, name: str, stamped: dict[Key, float]) -> None:
    """The registry entries of the rows this transaction leaves: digests as the
    arbiter computes them now (absent rows: tombstones)."""
    keys = list(stamped)
    digests: dict[Key, str] = {}
    for start in range(0, len(keys), _CHUNK):
        part = padded(keys[start : start + _CHUNK])
        sql = " UNION ALL ".join(
            f"SELECT {i}, {t.digest} FROM {t.name} WHERE {t.match}" for i in range(len(part))
        )
        cur.execute(sql, [v for k in part for v in k])
        digests.update({part[int(i)]: str(d) for i, d in cur.fetchall()})
    versions.store(
        cur, pair, name, [(versions.key_hash(k), ts, digests.get(k)) for k, ts in stamped.items()]
    )


def _conflict(
    table: str,
    columns: tuple[str, ...],
    key: Key,
    before: Row | None,
    final: Row | None,
    row: ArbiterRow | None,
    verdict: Verdict,
) -> Conflict:
    op = "delete" if final is None else "insert" if before is None else "update"
    return Conflict(
        table=table,
        op=op,
        key=key,
        columns=columns,
        before=before,
        after=final,
        current=None if row is None else row.values,
        reason=verdict.reason,
        resolution=SOURCE_WON if verdict.apply else TARGET_WON,
    )
