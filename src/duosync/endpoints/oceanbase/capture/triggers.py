"""Installing, refreshing and removing the capture triggers of a task (idempotent).

Every captured table has three AFTER triggers (insert, update, delete) of one
*version*: the table's columns when they were made. When the columns change (DDL,
for instance applied by the forward task of a two-way sync), ``install_table`` makes
triggers of a new version *before* dropping the old ones, so no write goes
unrecorded; a statement that runs while both exist is recorded twice, and the
reader keeps one copy (``capture.stream``). Each refresh writes BEGIN and READY
markers into the log around the new triggers' creation; readers derive the DDL
and the rows to read back from them (``capture.schema_watch``).

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

import pymysql

from duosync.core.catalog import Column, Table
from duosync.endpoints.mysql.dialect import qualified, quote_ident, quote_literal
from duosync.endpoints.oceanbase.capture import log, schema_watch
from duosync.endpoints.oceanbase.capture.schema_watch import BEGIN, READY
from duosync.endpoints.oceanbase.capture.values import UnsupportedColumn, value_expr
from duosync.errors import ConfigError

#: (trigger name suffix, event)
_OPS = (("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE"))
_PREFIX = "duosync_"
#: "trigger already exists": OceanBase, MySQL
_TRIGGER_EXISTS = (5734, 1359)

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


def install_table(cur: Any, table: Table, signature: str, since: int = 0) -> int:
    """Make sure *table* has triggers of the version matching *signature* (its
    current columns) and no others; return that version. When triggers had to be
    made, the change log gets the BEGIN and READY markers of ``capture.schema_watch``
    around their creation (*since*: a commit version no later than the change)."""
    db, name = table.database, table.name
    latest = latest_version(cur, db, name)
    have = _our_triggers(cur, db, name)
    # Without any of our triggers the table is new to capture, or was dropped and
    # created again behind its back: a new version either way, from nothing.
    fresh = latest is None or latest[1] != signature or not have
    ver = latest[0] + 1 if latest is not None and fresh else latest[0] if latest else 1
    missing = [
        (short, event) for short, event in _OPS if trigger_name(db, name, ver, short) not in have
    ]
    if fresh or missing:
        # The version and its BEGIN commit together: a reader never meets a
        # version whose columns the target was not told about.
        prior = _installed_version(have, ver) or (ver - 1 if have else 0)
        cur.execute("BEGIN")
        if fresh:
            columns = json.dumps([c.model_dump(mode="json") for c in table.columns])
            cur.execute(
                f"INSERT INTO {log.VERSIONS} (db, tbl, ver, signature, columns, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (db, name, ver, signature, columns, time.time()),
            )
        schema_watch.write_marker(cur, db, name, schema_watch.Marker(BEGIN, ver, prior, since))
        cur.execute("COMMIT")
        # OceanBase wants a current database for CREATE TRIGGER, even a qualified one.
        cur.execute(f"USE {quote_ident(db)}")
        for short, event in missing:
            try:
                cur.execute(_create_sql(table, ver, trigger_name(db, name, ver, short), event))
            except pymysql.err.MySQLError as exc:
                # Made meanwhile by another task's watch refreshing the same table.
                if not exc.args or exc.args[0] not in _TRIGGER_EXISTS:
                    raise
        schema_watch.write_marker(cur, db, name, schema_watch.Marker(READY, ver, prior, since))
    for trig in have:
        if not trig.startswith(trigger_name(db, name, ver, "")):
            cur.execute(f"DROP TRIGGER IF EXISTS {qualified(db, trig)}")
    return ver


def record_dropped(cur: Any, database: str, table: str) -> None:
    """Note in the log that *table* is gone (a version without columns, and its
    BEGIN marker), unless that is already its latest version."""
    latest = latest_version(cur, database, table)
    if latest is None or latest[1] == "":
        return
    ver = latest[0] + 1
    cur.execute("BEGIN")
    cur.execute(
        f"INSERT INTO {log.VERSIONS} (db, tbl, ver, signature, columns, created_at)"
        " VALUES (%s, %s, %s, '', '[]', %s)",
        (database, table, ver, time.time()),
    )
    schema_watch.write_marker(cur, database, table, schema_watch.Marker(BEGIN, ver, latest[0], 0))
    cur.execute("COMMIT")


def trigger_counts(cur: Any, tables: Iterable[TableRef]) -> dict[TableRef, int]:
    """How many of our triggers each of *tables* has (absent: none)."""
    wanted = set(tables)
    cur.execute(
        "SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, COUNT(*) FROM"
        " information_schema.TRIGGERS WHERE TRIGGER_NAME LIKE %s"
        " GROUP BY EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE",
        (_PREFIX.replace("_", "\\_") + "%",),
    )
    return {
        (str(r[0]), str(r[1])): int(r[2])
        for r in cur.fetchall()
        if (str(r[0]), str(r[1])) in wanted
    }


def complete(cur: Any, database: str, table: str, ver: int) -> bool:
    """Whether *table* has every trigger of version *ver*."""
    have = _our_triggers(cur, database, table)
    return all(trigger_name(database, table, ver, short) in have for short, _ in _OPS)


def latest_version(cur: Any, database: str, table: str) -> tuple[int, str] | None:
    cur.execute(
        f"SELECT ver, signature FROM {log.VERSIONS} WHERE db = %s AND tbl = %s"
        " ORDER BY ver DESC LIMIT 1",
        (database, table),
    )
    row = cur.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def _installed_version(have: Sequence[str], ver: int) -> int:
    """The newest version other than *ver* among trigger names *have* (0: none)."""
    found = [int(t.rsplit("_v", 1)[1].split("_")[0]) for t in have if "_v" in t]
    older = [v for v in found if v != ver]
    return max(older) if older else 0


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
