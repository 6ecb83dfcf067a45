"""DDL sync: CREATE, ALTER, DROP, RENAME, TRUNCATE TABLE and CREATE/DROP INDEX of
selected tables.

The runner applies DDL between batches (everything before it is applied first,
nothing after it is applied before it), then moves every partition's checkpoint
past it. A crash between the two replays the statement on restart, so a statement
the target already took is recognised by its error (table exists, duplicate
column, unknown table, ...) and counted as applied.

Translation:
- CREATE TABLE: the new table is read from the source catalog and created from the
  neutral model (types, charsets and OceanBase differences handled as in schema
  migration); when it is already gone from the source, the statement's own text is
  used with its names rewritten.
- ALTER, DROP, RENAME, TRUNCATE: the statement's text with every table name
  rewritten to its target name (database and table renames). Column renames of a
  task are not applied inside DDL text: such a statement is refused with an error.
- Other statements (users, grants, databases, views, routines) are not synced.

Selection: a statement is synced when a table it names is selected; with database
or rule selection a newly created matching table is selected, so its rows follow.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import pymysql

from duosync.core.events import SchemaChange
from duosync.endpoints import open_inspector
from duosync.endpoints.mysql.connection import translate
from duosync.endpoints.mysql.dialect import qualified
from duosync.errors import FatalError
from duosync.migrate.copier import text_connect
from duosync.schema.ddl import create_table_sql
from duosync.schema.translate import translate_table
from duosync.spec import TaskSpec
from duosync.sync.applier import Applier
from duosync.sync.mapping import Mapper

#: Errors that mean "the target already has this DDL's effect" (a replay).
_ALREADY = {
    1050,  # table already exists
    1051,  # unknown table (DROP)
    1060,  # duplicate column name
    1061,  # duplicate key name
    1091,  # can't drop field or key: doesn't exist
    1146,  # table doesn't exist (ALTER/TRUNCATE of a table dropped later)
    1054,  # unknown column (a CHANGE/RENAME COLUMN already applied)
}

_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_QNAME = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_COMMENTS = re.compile(r"/\*(?!!).*?\*/|--[^\n]*|#[^\n]*", re.S)
_LIST = rf"((?:{_QNAME}\s*,\s*)*{_QNAME})"
_PAIRS = rf"((?:{_QNAME}\s+TO\s+{_QNAME}\s*,\s*)*{_QNAME}\s+TO\s+{_QNAME})"
_KINDS = [
    (kind, re.compile(pattern, re.I))
    for kind, pattern in (
        ("create", rf"^\s*CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_QNAME})"),
        ("alter", rf"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?:IF\s+EXISTS\s+)?({_QNAME})"),
        ("drop", rf"^\s*DROP\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?{_LIST}"),
        ("rename", rf"^\s*RENAME\s+TABLES?\s+{_PAIRS}"),
        ("truncate", rf"^\s*TRUNCATE\s+(?:TABLE\s+)?({_QNAME})"),
        (
            "index",
            rf"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?"
            rf"|DROP\s+)INDEX\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?{_NAME}\s+ON\s+({_QNAME})",
        ),
    )
]
_NAME_RE = re.compile(_QNAME)
_SPLIT = re.compile(rf"^({_NAME})\s*\.\s*({_NAME})$")


@dataclass(frozen=True)
class Statement:
    kind: str
    #: (start, end, database, table) of every table name in the statement text
    names: tuple[tuple[int, int, str, str], ...]


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1].replace("``", "`") if part.startswith("`") else part


def parse(ddl: str, database: str) -> Statement | None:
    """The kind of a table DDL statement and the tables it names (None: not one)."""
    text = _COMMENTS.sub(lambda m: " " * len(m.group(0)), ddl)
    for kind, pattern in _KINDS:
        m = pattern.match(text)
        if not m:
            continue
        names = []
        base = m.start(1)
        for n in _NAME_RE.finditer(m.group(1)):
            token = n.group(0)
            if token.upper() == "TO":
                continue
            split = _SPLIT.match(token)
            if split:
                db, table = _unquote(split.group(1)), _unquote(split.group(2))
            else:
                db, table = database, _unquote(token)
            names.append((base + n.start(), base + n.end(), db, table))
        return Statement(kind, tuple(names))
    return None


class SchemaSync:
    def __init__(self, spec: TaskSpec, mapper: Mapper, say: Callable[[str], None]) -> None:
        self.spec = spec
        self.mapper = mapper
        self.say = say
        self.flavor = spec.target.flavor

    def apply(self, change: SchemaChange, applier: Applier) -> None:
        stmt = parse(change.ddl, change.database)
        if stmt is None or not any(self.mapper.selected(db, t) for _, _, db, t in stmt.names):
            return
        if any(self.spec.rename.columns.get(f"{db}.{t}") for _, _, db, t in stmt.names) and (
            stmt.kind == "alter"
        ):
            raise FatalError(
                f"DDL on a table with column renames cannot be translated: {change.ddl[:200]}",
                task=self.spec.name,
                table=f"{stmt.names[0][2]}.{stmt.names[0][3]}",
                hint="apply the change on the target by hand, then restart the task",
            )
        sql = self._translate(change, stmt)
        # Its own connection, without the appliers' read timeout: an ALTER of a
        # big table may rightly take longer than any batch. Like the appliers'
        # sessions, without foreign key checks (the rows around it were applied so).
        conn = text_connect(applier.target, timeout=None)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION foreign_key_checks = 0")
                cur.execute(sql)
            self.say(f"incremental: applied DDL: {sql[:200]}")
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if code in _ALREADY:
                self.say(f"incremental: DDL already on the target ({exc.args[1]}): {sql[:120]}")
            else:
                error = translate(exc, self.spec.target)
                error.task = self.spec.name
                error.message = f"DDL failed on the target: {error.message}; statement: {sql[:300]}"
                raise error from None
        finally:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                conn.close()
        for _, _, db, t in stmt.names:
            self.mapper.forget(db, t)

    def _translate(self, change: SchemaChange, stmt: Statement) -> str:
        if stmt.kind == "drop":
            # Only the selected tables of a multi-table DROP go.
            chosen = [
                qualified(*self.spec.rename.table(db, t))
                for _, _, db, t in stmt.names
                if self.mapper.selected(db, t)
            ]
            return f"DROP TABLE IF EXISTS {', '.join(chosen)}"
        if stmt.kind == "create":
            _, _, db, t = stmt.names[0]
            created = self._from_catalog(db, t)
            if created is not None:
                return created
        out = []
        last = 0
        for start, end, db, t in stmt.names:
            out.append(change.ddl[last:start])
            out.append(qualified(*self.spec.rename.table(db, t)))
            last = end
        out.append(change.ddl[last:])
        return "".join(out)

    def _from_catalog(self, database: str, table: str) -> str | None:
        with open_inspector(self.spec.source) as insp:
            if database not in insp.list_databases():
                return None
            db = insp.catalog([database]).database(database)
        found = [t for t in db.tables if t.name == table]
        if not found:
            return None
        target, notes = translate_table(found[0], target=self.flavor, renames=self.spec.rename)
        for note in notes:
            self.say(f"note: {note}")
        return create_table_sql(target, self.flavor).replace(
            "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1
        )
