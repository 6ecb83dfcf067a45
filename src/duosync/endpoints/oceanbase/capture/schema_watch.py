"""DDL from an OceanBase source: schema changes of captured tables, in log order.

Triggers see no DDL, so the capture finds it in the catalog (``TriggerLogStream``'s
watch, about every second) and writes it into the change log itself, as *markers*:
log rows with op ``S`` whose image says what happened to a table. The order of the
log (commit versions) is then the order of schema and rows alike, for every
consumer of the log, and survives restarts (markers are purged like rows, once
every consumer is past them).

A refresh of table T from version ``v`` (its current triggers) to ``v+1`` (the new
columns; ``triggers.install_table``) writes, in this order:

1. in one transaction, the new version's columns and a BEGIN marker (v+1, from v,
   *since*); *since* is a commit version no later than the DDL itself: the
   server's clock at the last watch that still saw the old columns, minus a margin
   (0 when unknown: a change found at start, a new or re-created table);
2. the triggers of v+1;
3. a READY marker (v+1, since);
4. the triggers of v are dropped.

The reader (``SchemaTracker``) keeps, per table, the version the target has:

- rows before BEGIN are yielded with the columns they were written with, onto the
  old target table (a row written between the DDL and BEGIN by the old triggers may
  lack a new column's value or, after MODIFY, carry it in the old type's encoding:
  a *stale* row; the READY re-read repairs it);
- at BEGIN the DDL derived from the two versions' columns (``schema.compare``) is
  yielded as a ``SchemaChange``: ALTER TABLE ... DROP/ADD/MODIFY COLUMN, CREATE
  TABLE (from nothing or from a dropped table), DROP TABLE (to nothing);
- between BEGIN and READY, changes of T are not yielded as rows: inserts are left
  out, updates and deletes become deletes of their old key (a key that moved or
  went must go); every row of T they touched was written after *since*;
- at READY the rows of T last written after *since* are read from the table as of
  READY's commit version (a flashback read, so exactly the state at that point;
  the current state if the server no longer has it) and yielded as inserts
  (REPLACE on the target): this repairs the stale rows and brings the rows a new
  table had before its triggers existed;
- after READY, a row written by the old triggers (a transaction that overlapped
  the refresh) is replaced by the row read by key as of its own commit version;
  when the same write was recorded by both versions, the new one is kept.

Rows yielded after BEGIN always carry the new version's columns, so no batch mixes
two column lists of one table. Everything is idempotent under replay (a restart
before the target took a point reads it again): the target recognises DDL it
already has, re-read rows are REPLACEd.

Not done: a column rename is seen as a drop plus an add (the values of existing
rows in it are re-read only when *since* is 0); DROP COLUMN makes the old
triggers fail the user's writes until the refresh (OceanBase does not invalidate
them, about a second); indexes and table options are not compared; a new table's
existing rows are read as one transaction (held in memory).

Reverse tasks of a two-way sync (``TriggerLogStream``'s *ddl* False) stay DML
only: they still get the ``SchemaChange`` at BEGIN, which their runner does not
apply but takes as the point to re-read table mappings (the target took the DDL
first: it came from there); rows are yielded as written, nothing is read back
(a row read back would not carry the loop marker of the transaction it echoes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from duosync.config import Flavor
from duosync.core.catalog import OMS_DATABASE, Column
from duosync.core.events import Op, RowChange, SchemaChange
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.oceanbase.capture import log
from duosync.endpoints.oceanbase.capture.values import Decoder, decoder, value_expr
from duosync.schema.compare import column_diff
from duosync.schema.ddl import column_sql

TableRef = tuple[str, str]
#: nanoseconds subtracted from the server clock for *since*: commit versions come
#: from the same clock, never behind it, so one second is ample
SINCE_MARGIN = 1_000_000_000

BEGIN = "begin"
READY = "ready"


@dataclass(frozen=True)
class Marker:
    kind: str
    ver: int
    from_ver: int
    since: int


def write_marker(cur: Any, database: str, table: str, marker: Marker) -> None:
    image = json.dumps({"kind": marker.kind, "from": marker.from_ver, "since": marker.since})
    cur.execute(
        f"INSERT INTO {log.CHANGELOG} (tx, db, tbl, ver, op, before_img, after_img)"
        " VALUES (ob_transaction_id(), %s, %s, %s, 'S', %s, NULL)",
        (database, table, marker.ver, image),
    )


def read_marker(ver: int, image: str) -> Marker:
    got = json.loads(image)
    return Marker(str(got["kind"]), ver, int(got["from"]), int(got["since"]))


# -- DDL derivation (pure) -----------------------------------------------------


def ddl_for(database: str, table: str, old: Sequence[Column], new: Sequence[Column]) -> str | None:
    """MySQL-dialect DDL turning table *database.table* with columns *old* into one
    with *new* (no columns: the table does not exist); None when nothing changed."""
    name = qualified(database, table)
    if not old and not new:
        return None
    if not new:
        return f"DROP TABLE IF EXISTS {name}"
    if not old:
        body = ",\n  ".join(column_sql(c, Flavor.OCEANBASE) for c in new)
        return f"CREATE TABLE IF NOT EXISTS {name} (\n  {body}\n)"
    diff = column_diff(old, new)
    if not diff:
        return None
    clauses = [f"DROP COLUMN {quote_ident(c)}" for c in diff.dropped]
    for verb, changes in (("ADD", diff.added), ("MODIFY", diff.modified)):
        for col, after in changes:
            where = f" AFTER {quote_ident(after)}" if after is not None else " FIRST"
            clauses.append(f"{verb} COLUMN {column_sql(col, Flavor.OCEANBASE)}{where}")
    return f"ALTER TABLE {name} " + ", ".join(clauses)


# -- reading rows back from the table -------------------------------------------


def _select(database: str, table: str, columns: Sequence[Column], snapshot: int | None) -> str:
    image = "JSON_ARRAY(" + ", ".join(value_expr(c, "r") for c in columns) + ")"
    as_of = f" AS OF SNAPSHOT {int(snapshot)}" if snapshot is not None else ""
    return f"SELECT {image} FROM {qualified(database, table)}{as_of} r"


def read_rows(
    cur: Any,
    ref: TableRef,
    columns: Sequence[Column],
    where: str,
    args: Sequence[Any],
    snapshot: int,
) -> list[tuple[Any, ...]]:
    """Rows of *ref* matching *where* (on alias ``r``), encoded as the triggers do
    and decoded: as of commit version *snapshot* when the server still has it
    (flashback), else as of now (a later state, which the log after it converges
    from). A table gone meanwhile has no rows (its drop follows in the log); a
    column of *columns* dropped meanwhile reads as NULL (its drop follows too)."""
    present = list(columns)
    for as_of in (snapshot, None):
        try:
            cur.execute(_select(*ref, present, as_of) + f" WHERE {where}", list(args))
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            if code == 1146:  # the table is gone since
                return []
            if code == 1054 and len(present) == len(columns):
                present = _present(cur, ref, columns)
                if len(present) < len(columns):
                    return read_rows_of(cur, ref, columns, present, where, args)
            if as_of is not None:
                continue  # snapshot too old, or not readable: read the current state
            raise
        return _decoded(cur.fetchall(), columns, present)
    return []


def read_rows_of(
    cur: Any,
    ref: TableRef,
    columns: Sequence[Column],
    present: Sequence[Column],
    where: str,
    args: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """The current rows, reading only the *present* ones of *columns*."""
    if not present:
        return []
    cur.execute(_select(*ref, present, None) + f" WHERE {where}", list(args))
    return _decoded(cur.fetchall(), columns, present)


def _present(cur: Any, ref: TableRef, columns: Sequence[Column]) -> list[Column]:
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        ref,
    )
    names = {str(r[0]) for r in cur.fetchall()}
    return [c for c in columns if c.name in names]


def _decoded(
    rows: Sequence[Any], columns: Sequence[Column], present: Sequence[Column]
) -> list[tuple[Any, ...]]:
    decoders: list[Decoder] = [decoder(c) for c in present]
    out = []
    for r in rows:
        got = {c.name: d(v) for c, d, v in zip(present, decoders, json.loads(r[0]), strict=True)}
        out.append(tuple(got.get(c.name) for c in columns))
    return out


@dataclass(frozen=True)
class TableVersion:
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


Columns = Callable[[TableRef, int], TableVersion]
Keys = Callable[[TableRef], tuple[str, ...]]


class SchemaTracker:
    """Per table: the version the target has at the reader's position, and whether
    it is between a BEGIN and a READY marker (see the module docstring)."""

    def __init__(self, columns: Columns, keys: Keys, *, ddl: bool) -> None:
        self._columns = columns
        self._keys = keys
        self.ddl = ddl
        self._at: dict[TableRef, int] = {}
        self._pending: dict[TableRef, int] = {}

    def load(self, cur: Any, scn: int, tx: int, captured: Collection[TableRef]) -> None:
        """Initialise from the log after position (*scn*, *tx*): a table's first
        marker there says what the target has; without one, the latest version
        for the *captured* tables, nothing for others."""
        cur.execute(f"SELECT db, tbl, MAX(ver) FROM {log.VERSIONS} GROUP BY db, tbl")
        self._at = {
            (str(r[0]), str(r[1])): int(r[2])
            for r in cur.fetchall()
            if (str(r[0]), str(r[1])) in captured
        }
        cur.execute(
            f"SELECT db, tbl, ver, before_img FROM {log.CHANGELOG} WHERE op = 'S' AND"
            " (ORA_ROWSCN > %s OR (ORA_ROWSCN = %s AND tx > %s)) ORDER BY ORA_ROWSCN, tx, seq",
            (scn, scn, tx),
        )
        seen: set[TableRef] = set()
        for db, tbl, ver, image in cur.fetchall():
            ref = (str(db), str(tbl))
            if ref in seen:
                continue
            seen.add(ref)
            marker = read_marker(int(ver), str(image))
            if marker.kind == BEGIN:
                self._at[ref] = marker.from_ver
                self._pending.pop(ref, None)
            else:
                self._at[ref] = marker.ver
                self._pending[ref] = marker.since

    def at(self, ref: TableRef) -> int:
        return self._at.get(ref, 0)

    def marker(self, cur: Any, ref: TableRef, marker: Marker, scn: int) -> list[Any]:
        """What a marker read at commit version *scn* yields: the DDL (BEGIN) or the
        re-read rows (READY)."""
        if marker.kind == BEGIN:
            old = self.at(ref)
            if marker.ver <= old:
                self._pending[ref] = min(marker.since, self._pending.get(ref, marker.since))
                return []
            self._at[ref] = marker.ver
            if self._columns(ref, marker.ver).columns:
                self._pending[ref] = marker.since
            else:
                self._pending.pop(ref, None)  # dropped: no READY follows
            return self._ddl(ref, old, marker.ver)
        since = self._pending.pop(ref, marker.since)
        if not self.ddl or ref[0] == OMS_DATABASE or marker.ver != self.at(ref):
            return []
        version = self._columns(ref, marker.ver)
        if not version.columns:
            return []
        rows = read_rows(cur, ref, version.columns, "r.ORA_ROWSCN > %s", [since], scn)
        return [RowChange(Op.INSERT, *ref, version.names, None, r) for r in rows]

    def catch_up(self, ref: TableRef, ver: int) -> list[Any]:
        """A row of a version newer than the target's without its BEGIN (a log
        changed by hand, or a marker purged): the DDL goes first."""
        old = self.at(ref)
        self._at[ref] = ver
        return self._ddl(ref, old, ver)

    def _ddl(self, ref: TableRef, old: int, new: int) -> list[Any]:
        if ref[0] == OMS_DATABASE:
            return []
        before = self._columns(ref, old).columns if old else ()
        sql = ddl_for(*ref, before, self._columns(ref, new).columns)
        return [SchemaChange(ref[0], sql)] if sql is not None else []

    def row(self, cur: Any, change: RowChange, ver: int, scn: int) -> list[RowChange]:
        """The changes a decoded log row of the target's version or an older one
        yields (see the module docstring)."""
        ref = (change.database, change.table)
        at = self.at(ref)
        if not self.ddl or ref[0] == OMS_DATABASE or (ver == at and ref not in self._pending):
            return [change]
        current = self._columns(ref, at)
        if not current.columns:
            return []  # the table is gone at this point
        before = _project(change, change.before, current.names)
        pending = ref in self._pending
        if pending or change.op is Op.DELETE:
            if change.op is Op.INSERT or before is None:
                return []  # the READY re-read brings it
            return [RowChange(Op.DELETE, *ref, current.names, before, None)]
        return self._reread(cur, ref, current, change, before, scn)

    def _reread(
        self,
        cur: Any,
        ref: TableRef,
        current: TableVersion,
        change: RowChange,
        before: tuple[Any, ...] | None,
        scn: int,
    ) -> list[RowChange]:
        keys = self._keys(ref)
        assert change.after is not None
        after = dict(zip(change.columns, change.after, strict=True))
        if not keys or any(k not in after for k in keys):
            return [change]  # no key to read it by: its own image is all there is
        where = " AND ".join(f"r.{quote_ident(k)} <=> %s" for k in keys)
        rows = read_rows(cur, ref, current.columns, where, [after[k] for k in keys], scn)
        out: list[RowChange] = []
        if before is not None:
            old = dict(zip(current.names, before, strict=True))
            if any(old[k] != after[k] for k in keys):
                out.append(RowChange(Op.DELETE, *ref, current.names, before, None))
        if rows:
            out.append(RowChange(Op.INSERT, *ref, current.names, None, rows[0]))
        else:
            image = tuple(after.get(n) for n in current.names)
            out.append(RowChange(Op.DELETE, *ref, current.names, image, None))
        return out


def _project(
    change: RowChange, image: tuple[Any, ...] | None, names: tuple[str, ...]
) -> tuple[Any, ...] | None:
    """*image* (in *change*'s columns) on the columns *names* (missing ones: NULL)."""
    if image is None:
        return None
    values = dict(zip(change.columns, image, strict=True))
    return tuple(values.get(n) for n in names)
