"""Applying one table's share of a batch with conflict detection (the reference
page's "About data conflict").

Each row of the batch is a net change: what the source held before the batch's
first change to it (``TableChanges.first``) and after its last (``final``). The
target is expected to hold the "before" state; when it does not:

- insert (absent -> present) of a key the target has: a conflict; ``overwrite``
  writes the source's row, ``ignore`` keeps the target's. The same for an insert
  that clashes with another row on a unique key.
- update (present -> present): applied when the row exists (the source's values
  overwrite the target's); a missing row, or new values that clash with another
  row's unique key, fail: the change is skipped and recorded, whatever the policy.
- delete (present -> absent) of a missing row fails and is recorded.

Every conflict is recorded (``sync.conflict_log``), in the transaction that applies
the rest, and never stops the task. A unique-key clash is only a conflict if it
remains once every other row of the batch is written (a value may move between
rows of the batch). An update that changes the key is a delete of
the old key plus an insert of the new one, each handled as above.

Which keys exist is asked of the target itself (one point lookup per key, many per
statement): its own collation and type rules decide what "the same key" is, as they
will when the row is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pymysql

from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.spec import ConflictPolicy
from duosync.sync.batch import TableChanges
from duosync.sync.conflict_log import FAILED, KEPT_TARGET, OVERWRITTEN, Conflict

Row = tuple[Any, ...]
Key = tuple[Any, ...]

#: keys per existence query and rows per multi-row write
_CHUNK = 500
_DUPLICATE = 1062


def write_checked(cur: Any, changes: TableChanges, policy: ConflictPolicy) -> list[Conflict]:
    """Apply *changes* (a keyed table) under *policy*; return the conflicts met."""
    m = changes.mapping
    table = qualified(*m.target)
    name = ".".join(m.target)
    cols = [quote_ident(c) for c in m.columns]
    keycols = [cols[i] for i in m.key]
    keys = list(changes.final)
    present = _existing(cur, table, keycols, keys)
    conflicts: list[Conflict] = []

    def conflict(key: Key, op: str, reason: str, resolution: str, current: bool) -> None:
        conflicts.append(
            Conflict(
                table=name,
                op=op,
                key=key,
                columns=m.columns,
                before=changes.first.get(key),
                after=changes.final.get(key),
                current=_current(cur, table, cols, keycols, key) if current else None,
                reason=reason,
                resolution=resolution,
            )
        )

    inserts: list[Row] = []
    replaces: list[Row] = []
    updates: list[tuple[Key, Row]] = []
    deletes: list[Key] = []
    for key in keys:
        row = changes.final[key]
        expected = changes.first.get(key) is not None
        exists = key in present
        if not expected and row is not None:
            if not exists:
                inserts.append(row)
            elif policy is ConflictPolicy.OVERWRITE:
                conflict(key, "insert", "a row with this key exists", OVERWRITTEN, True)
                replaces.append(row)
            else:
                conflict(key, "insert", "a row with this key exists", KEPT_TARGET, True)
        elif expected and row is not None:
            if not exists:
                conflict(key, "update", "the row to update is missing", FAILED, False)
            elif m.other_unique:
                updates.append((key, row))
            else:
                # The identity is the only unique key: replacing the row is the update.
                replaces.append(row)
        elif expected:
            if exists:
                deletes.append(key)
            else:
                conflict(key, "delete", "the row to delete is missing", FAILED, False)
    for part in _chunks(deletes):
        cond, args = key_condition(keycols, part)
        cur.execute(f"DELETE FROM {table} WHERE {cond}", args)
    if replaces:
        _replace(cur, table, cols, replaces)
    sets = ", ".join(f"{c} = %s" for c in cols)
    marks = "(" + ", ".join(["%s"] * len(cols)) + ")"
    insert_sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES "

    def update(key: Key, row: Row) -> None:
        cond, args = key_condition(keycols, [key])
        cur.execute(f"UPDATE {table} SET {sets} WHERE {cond}", [*row, *args])

    def insert(key: Key, row: Row) -> None:
        cur.execute(insert_sql + marks, row)

    # A unique value may move between rows of the batch (row 1 frees it, row 2
    # takes it); merged per row, the taker can come first. So a clash is tried
    # again after the rest, until a pass changes nothing: what still clashes then
    # clashes with the target's own rows.
    pending: list[tuple[Callable[[Key, Row], None], str, Key, Row]] = [
        (update, "update", key, row) for key, row in updates
    ]
    for part_rows in _chunks(inserts):
        try:
            cur.execute(insert_sql + ", ".join([marks] * len(part_rows)), _flat(part_rows))
        except pymysql.err.IntegrityError as exc:
            # The statement was rolled back alone: its rows go one by one.
            if exc.args[0] != _DUPLICATE:
                raise
            pending += [(insert, "insert", tuple(r[i] for i in m.key), r) for r in part_rows]
    clashes: dict[Key, str] = {}
    while pending:
        left = []
        for attempt in pending:
            write, _op, key, row = attempt
            try:
                write(key, row)
            except pymysql.err.IntegrityError as exc:
                if exc.args[0] != _DUPLICATE:
                    raise
                clashes[key] = str(exc.args[1])
                left.append(attempt)
        if len(left) == len(pending):
            break
        pending = left
    for _write, op, key, row in pending:
        if op == "update":
            conflict(key, op, f"the new values clash: {clashes[key]}", FAILED, True)
        elif policy is ConflictPolicy.OVERWRITE:
            conflict(key, op, f"a unique key clashes: {clashes[key]}", OVERWRITTEN, True)
            _replace(cur, table, cols, [row])
        else:
            conflict(key, op, f"a unique key clashes: {clashes[key]}", KEPT_TARGET, True)
    return conflicts


def key_condition(keys: Sequence[str], values: Sequence[Key]) -> tuple[str, list[Any]]:
    if len(keys) == 1:
        return f"{keys[0]} IN ({', '.join(['%s'] * len(values))})", [v[0] for v in values]
    one = "(" + " AND ".join(f"{k} = %s" for k in keys) + ")"
    return " OR ".join([one] * len(values)), [x for v in values for x in v]


def _existing(cur: Any, table: str, keycols: list[str], keys: list[Key]) -> set[Key]:
    """The keys of *keys* the target holds, as the target compares them."""
    found: set[Key] = set()
    match = " AND ".join(f"{k} = %s" for k in keycols)
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        sql = " UNION ALL ".join(f"SELECT {i} FROM {table} WHERE {match}" for i in range(len(part)))
        cur.execute(sql, _flat(part))
        found.update(part[int(r[0])] for r in cur.fetchall())
    return found


def _current(cur: Any, table: str, cols: list[str], keycols: list[str], key: Key) -> Row | None:
    cond, args = key_condition(keycols, [key])
    cur.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {cond}", args)
    got = cur.fetchone()
    return None if got is None else tuple(got)


def _replace(cur: Any, table: str, cols: list[str], rows: list[Row]) -> None:
    marks = ", ".join(["%s"] * len(cols))
    cur.executemany(f"REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _flat(rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [v for row in rows for v in row]
