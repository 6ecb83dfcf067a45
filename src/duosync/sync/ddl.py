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

``options.ddl`` chooses the kinds carried (``classify``): CREATE TABLE/INDEX is
``create``, ALTER TABLE ``alter`` (its RENAME [TO|AS] clause ``rename``), DROP
TABLE/INDEX ``drop``, RENAME TABLE ``rename``, TRUNCATE ``truncate``. A statement
is applied only when every kind it has is chosen (``ALTER TABLE t ADD c INT, RENAME
TO u`` needs both alter and rename); otherwise it is skipped whole and noted. Rows
keep flowing onto the target's tables as they are: the mapper forgets the tables
the statement names, so a skipped ADD COLUMN leaves the new column out of the rows
written, a skipped DROP COLUMN leaves the target's column to its default (NULL when
nullable) in every row inserted, and in every row updated without a conflict policy
(``REPLACE`` writes whole rows; a policy's UPDATE keeps the value), a NOT NULL
column without a default making the target refuse them; a skipped CREATE or RENAME
leaves no target table for the new name, whose rows are therefore not applied.
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
from duosync.endpoints.mysql.sessions import text_connect
from duosync.errors import FatalError
from duosync.schema.ddl import create_table_sql
from duosync.schema.translate import translate_table
from duosync.spec import DdlKind, TaskSpec
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
#: an ALTER TABLE clause renaming the table (not RENAME COLUMN / INDEX / KEY)
_RENAME_CLAUSE = re.compile(
    rf"\s*RENAME\s+(?:(?:TO|AS)\s+)?(?!(?:COLUMN|INDEX|KEY)\b)({_QNAME})\s*;?\s*$", re.I
)
#: ALTER TABLE clauses that say how, not what (no kind of their own)
_HOW_CLAUSE = re.compile(r"\s*(?:ALGORITHM|LOCK)\s*=?\s*\w+\s*;?\s*$", re.I)
#: views are classified (``options.ddl`` names them) but not synced
_VIEW = re.compile(
    r"^\s*(?:(CREATE)\s+(?:OR\s+REPLACE\s+)?|(ALTER)\s+|(DROP)\s+)"
    r"(?:ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?"
    r"VIEW\b",
    re.I,
)


@dataclass(frozen=True)
class Statement:
    kind: str
    #: (start, end, database, table) of every table name in the statement text
    names: tuple[tuple[int, int, str, str], ...]
    #: what the statement does, as ``options.ddl`` names it
    kinds: frozenset[DdlKind] = frozenset()


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1].replace("``", "`") if part.startswith("`") else part


def _clauses(text: str, start: int) -> list[tuple[int, int]]:
    """(start, end) of the comma-separated clauses of *text* from *start*, commas
    inside parentheses and quotes ignored."""
    out: list[tuple[int, int]] = []
    depth = 0
    quote = ""
    begin = i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append((begin, i))
            begin = i + 1
        i += 1
    out.append((begin, len(text)))
    return [(a, b) for a, b in out if text[a:b].strip(" \t\r\n;")]


def _name(token: str, database: str) -> tuple[str, str]:
    split = _SPLIT.match(token)
    if split:
        return _unquote(split.group(1)), _unquote(split.group(2))
    return database, _unquote(token)


def parse(ddl: str, database: str) -> Statement | None:
    """The kind of a table DDL statement and the tables it names (None: not one).
    An ALTER TABLE's RENAME [TO|AS] clause names the new table too."""
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
            names.append((base + n.start(), base + n.end(), *_name(token, database)))
        if kind == "index":
            kinds = {DdlKind.CREATE if text.lstrip()[:6].upper() == "CREATE" else DdlKind.DROP}
        elif kind != "alter":
            kinds = {DdlKind(kind)}
        else:
            kinds = set()
            for a, b in _clauses(text, m.end()):
                if _HOW_CLAUSE.match(text, a, b):
                    continue
                r = _RENAME_CLAUSE.match(text, a, b)
                if r is None:
                    kinds.add(DdlKind.ALTER)
                    continue
                kinds.add(DdlKind.RENAME)
                names.append((r.start(1), r.end(1), *_name(r.group(1), database)))
            kinds = kinds or {DdlKind.ALTER}
        return Statement(kind, tuple(names), frozenset(kinds))
    return None


def classify(ddl: str) -> frozenset[DdlKind]:
    """The ``options.ddl`` kinds of a statement: empty for one that is not table,
    index or view DDL (users, grants, databases, routines)."""
    stmt = parse(ddl, "")
    if stmt is not None:
        return stmt.kinds
    view = _VIEW.match(_COMMENTS.sub(lambda m: " " * len(m.group(0)), ddl))
    if view is None:
        return frozenset()
    if view.group(1):
        return frozenset({DdlKind.CREATE})
    return frozenset({DdlKind.ALTER if view.group(2) else DdlKind.DROP})


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
        if not stmt.kinds <= set(self.spec.options.ddl):
            self._skip(change, stmt)
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

    def _skip(self, change: SchemaChange, stmt: Statement) -> None:
        """Leave the target as it is; rows keep mapping onto its tables as they are
        now (the module docstring says what that means for each kind)."""
        tables = ", ".join(dict.fromkeys(f"{db}.{t}" for _, _, db, t in stmt.names))
        chosen = ", ".join(k.value for k in DdlKind if k in self.spec.options.ddl) or "none"
        what = " + ".join(k.value for k in DdlKind if k in stmt.kinds)
        self.say(
            f"incremental: DDL not applied ({what} of {tables}; options.ddl carries {chosen}):"
            f" {' '.join(change.ddl.split())[:200]}"
        )
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
