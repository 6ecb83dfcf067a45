"""Installing, refreshing and removing the capture triggers of a task (idempotent).

Every captured table has three AFTER triggers (insert, update, delete) of one
*version*: the table's columns when they were made. When the columns change (DDL,
for instance applied by the forward task of a two-way sync), ``install_table`` makes
triggers of a new version *before* dropping the old ones, so no write goes
unrecorded; a statement that runs while both exist is recorded twice, and the
reader drops the second copy (``capture.stream``).

Triggers fire in the writer's transaction: a trigger that fails fails the user's
write. So they do as little as possible (one INSERT of text) and are refreshed
quickly after DDL; a column dropped from a captured table makes its old triggers
fail until then (OceanBase does not invalidate them).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from duosync.core.catalog import Column, Table
from duosync.endpoints.mysql.dialect import qualified, quote_ident, quote_literal
from duosync.endpoints.oceanbase.capture import log
from duosync.endpoints.oceanbase.capture.values import UnsupportedColumn, value_expr
from duosync.errors import ConfigError

#: (trigger name suffix, event)
_OPS = (("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE"))
_PREFIX = "duosync_"

TableRef = tuple[str, str]


def trigger_name(database: str, table: str, ver: int, op: str) -> str:
    # Trigger names are per schema and at most 64 characters: a checksum of the
    # table name keeps them short and distinct.
    return f"{_PREFIX}{zlib.crc32(table.encode()):08x}_v{ver}_{op}"


def signatures(cur: Any, tables: Iterable[TableRef]) -> dict[TableRef, str]:
    """The column signature of each existing table (absent tables are left out):
    what the triggers' expressions depend on (names, types, charsets, order)."""
    wanted = sorted(set(tables))
    if not wanted:
        return {}
    cond = " OR ".join(["(TABLE_SCHEMA = %s AND TABLE_NAME = %s)"] * len(wanted))
    cur.execute(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME"
        f" FROM information_schema.COLUMNS WHERE {cond}"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        [v for ref in wanted for v in ref],
    )
    text: dict[TableRef, list[str]] = {}
    for db, tbl, name, ctype, charset in cur.fetchall():
        text.setdefault((str(db), str(tbl)), []).append(f"{name}\t{ctype}\t{charset}")
    return {ref: hashlib.sha1("\n".join(lines).encode()).hexdigest() for ref, lines in text.items()}


def install_table(cur: Any, table: Table, signature: str) -> int:
    """Make sure *table* has triggers of the version matching *signature* (its
    current columns) and no others; return that version."""
    db, name = table.database, table.name
    cur.execute(
        f"SELECT ver, signature FROM {log.VERSIONS} WHERE db = %s AND tbl = %s"
        " ORDER BY ver DESC LIMIT 1",
        (db, name),
    )
    latest = cur.fetchone()
    if latest is not None and str(latest[1]) == signature:
        ver = int(latest[0])
    else:
        ver = int(latest[0]) + 1 if latest is not None else 1
        columns = json.dumps([c.model_dump(mode="json") for c in table.columns])
        cur.execute(
            f"INSERT INTO {log.VERSIONS} (db, tbl, ver, signature, columns, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (db, name, ver, signature, columns, time.time()),
        )
    have = _our_triggers(cur, db, name)
    # OceanBase wants a current database for CREATE TRIGGER, even a qualified one.
    cur.execute(f"USE {quote_ident(db)}")
    for short, event in _OPS:
        trig = trigger_name(db, name, ver, short)
        if trig not in have:
            cur.execute(_create_sql(table, ver, trig, event))
    for trig in have:
        if not trig.startswith(trigger_name(db, name, ver, "")):
            cur.execute(f"DROP TRIGGER IF EXISTS {qualified(db, trig)}")
    return ver


def drop_triggers(cur: Any, tables: Iterable[TableRef]) -> None:
    for db, name in tables:
        for trig in _our_triggers(cur, db, name):
            cur.execute(f"DROP TRIGGER IF EXISTS {qualified(db, trig)}")


def version_columns(cur: Any, database: str, table: str, ver: int) -> tuple[Column, ...]:
    cur.execute(
        f"SELECT columns FROM {log.VERSIONS} WHERE db = %s AND tbl = %s AND ver = %s",
        (database, table, ver),
    )
    row = cur.fetchone()
    if row is None:
        raise KeyError((database, table, ver))
    return tuple(Column.model_validate(c) for c in json.loads(row[0]))


def check_supported(tables: Sequence[Table]) -> None:
    """Refuse, before anything is installed, a table with a column capture cannot
    record exactly."""
    for t in tables:
        for col in t.columns:
            try:
                value_expr(col, "NEW")
            except UnsupportedColumn as exc:
                raise ConfigError(
                    str(exc), table=t.qualified, hint="exclude this table from the task"
                ) from None


def _our_triggers(cur: Any, database: str, table: str) -> list[str]:
    cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s"
        " AND EVENT_OBJECT_TABLE = %s AND TRIGGER_NAME LIKE %s",
        (database, table, _PREFIX.replace("_", "\\_") + "%"),
    )
    return [str(r[0]) for r in cur.fetchall()]


def _image(table: Table, row: str) -> str:
    return "JSON_ARRAY(" + ", ".join(value_expr(c, row) for c in table.columns) + ")"


def _create_sql(table: Table, ver: int, trig: str, event: str) -> str:
    op = event[0]  # the log's op code: I, U, D
    before = _image(table, "OLD") if event != "INSERT" else "NULL"
    after = _image(table, "NEW") if event != "DELETE" else "NULL"
    # Identifiers and the table's name as a value are DDL text (no binding there).
    return (
        f"CREATE TRIGGER {qualified(table.database, trig)} AFTER {event}"
        f" ON {qualified(table.database, table.name)} FOR EACH ROW"
        f" INSERT INTO {log.CHANGELOG} (tx, db, tbl, ver, op, before_img, after_img)"
        f" VALUES (ob_transaction_id(), {quote_literal(table.database)},"
        f" {quote_literal(table.name)}, {ver}, '{op}', {before}, {after})"
    )
