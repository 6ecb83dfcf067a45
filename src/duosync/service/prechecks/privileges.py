"""Pre-check items ``source.privileges`` and ``target.privileges``: does the task's
user hold what each phase will ask of the server?

The user's effective privileges are read from ``SHOW GRANTS`` (for the current
user it needs no privilege, and it is the only view every MySQL-family server
gives of global, database, table and role grants alike). information_schema's
``*_PRIVILEGES`` tables were measured to leave out grants of active roles on
MariaDB, so they are not used. What cannot be resolved (roles on MySQL and
OceanBase, whose privileges ``SHOW GRANTS`` does not expand) makes the item a
warning, never a guessed failure.

``SHOW GRANTS`` lines may carry a password hash (MariaDB: ``IDENTIFIED BY
PASSWORD '*...'``): they are parsed and never quoted in a detail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from duosync.config import Endpoint
from duosync.core.catalog import OMS_DATABASE, ServerInfo, Table, View
from duosync.endpoints.mysql.connection import Connection, driver_errors
from duosync.endpoints.mysql.dialect import quote_ident, quote_literal
from duosync.errors import DuosyncError
from duosync.service.prechecks.checks import CheckResult, Status
from duosync.spec import MigrationType, TaskSpec

ALL = "ALL PRIVILEGES"
#: spellings a server may print for one privilege
_ALIASES = {"ALL": ALL, "REPLICATION REPLICA": "REPLICATION SLAVE"}
_NAME = r"`(?:[^`]|``)*`|'(?:[^']|'')*'|[^.\s`']+"
_GRANT = re.compile(
    rf"^(?P<verb>GRANT|REVOKE)\s+(?P<privs>.+?)\s+ON\s+(?P<routine>(?:PROCEDURE|FUNCTION|PACKAGE(?:\s+BODY)?)\s+)?"
    rf"(?P<db>{_NAME})\.(?P<table>{_NAME})\s+(?:TO|FROM)\s",
    re.IGNORECASE | re.DOTALL,
)
_LISTED = 10  # objects named in a detail before "and N more"
_ROLE_GRANT = re.compile(r"^GRANT\s+(?:`[^`]*`|'[^']*'|\w+)(?:@\S+)?(?:\s*,.*)?\s+TO\s", re.I)


def _unquote(name: str) -> str:
    if name[:1] == "`":
        return name[1:-1].replace("``", "`")
    if name[:1] == "'":
        return name[1:-1].replace("''", "'")
    return name


def _split_privileges(text: str) -> list[str]:
    """Privilege names of a GRANT's list; column grants (``SELECT (`c`)``) are left
    out: they do not let the task read or write whole rows."""
    out: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            item = text[start:i].strip()
            start = i + 1
            if item and "(" not in item:
                name = " ".join(item.upper().split())
                out.append(_ALIASES.get(name, name))
    return out


def _like(pattern: str) -> re.Pattern[str]:
    """A database-level grant names a LIKE pattern: ``_`` and ``%`` are wildcards
    unless escaped with a backslash."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@dataclass
class Grants:
    """The privileges ``SHOW GRANTS`` showed, by level."""

    fold_case: bool = False
    #: partial_revokes (MySQL 8): database grants are then literal names, no patterns
    literal_databases: bool = False
    global_: set[str] = field(default_factory=set)
    databases: list[tuple[re.Pattern[str], set[str]]] = field(default_factory=list)
    tables: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    revoked: dict[str, set[str]] = field(default_factory=dict)
    #: roles are granted whose own privileges were not listed
    unresolved_roles: bool = False

    def _norm(self, name: str) -> str:
        return name.lower() if self.fold_case else name

    def add(self, line: str) -> None:
        m = _GRANT.match(line.strip())
        if m is None:
            if _ROLE_GRANT.match(line.strip()) and " ON " not in line.upper():
                self.unresolved_roles = True
            return
        if m["routine"]:
            return  # a grant on a stored routine, not on a table of that name
        privs = set(_split_privileges(m["privs"])) - {"USAGE", "PROXY", "GRANT OPTION"}
        db, table = _unquote(m["db"]), _unquote(m["table"])
        if m["verb"].upper() == "REVOKE":
            if table == "*" and db != "*":
                self.revoked.setdefault(self._norm(db), set()).update(privs)
            return
        if db == "*" and table == "*":
            self.global_ |= privs
        elif table == "*":
            pattern = (
                re.compile(re.escape(self._norm(db)))
                if self.literal_databases
                else _like(self._norm(db))
            )
            self.databases.append((pattern, privs))
        else:
            self.tables.setdefault((self._norm(db), self._norm(table)), set()).update(privs)

    def has(self, privilege: str, database: str | None = None, table: str | None = None) -> bool:
        """Whether *privilege* holds on ``database.table`` (``database.*`` when table is
        None, globally when both are None)."""
        db = self._norm(database) if database is not None else None
        revoked = self.revoked.get(db, set()) if db is not None else set()
        if not ({privilege, ALL} & revoked) and {privilege, ALL} & self.global_:
            return True
        if db is None:
            return False
        if any(p.fullmatch(db) and {privilege, ALL} & privs for p, privs in self.databases):
            return True
        if table is None:
            return False
        return bool({privilege, ALL} & self.tables.get((db, self._norm(table)), set()))


def read_grants(conn: Connection[Any], endpoint: Endpoint, flavor: str) -> Grants:
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN"
            " ('lower_case_table_names', 'partial_revokes')"
        )
        variables = {str(r[0]).lower(): str(r[1]).upper() for r in cur.fetchall()}
        grants = Grants(
            fold_case=variables.get("lower_case_table_names", "0") != "0",
            literal_databases=variables.get("partial_revokes") in ("ON", "1"),
        )
        cur.execute("SHOW GRANTS")
        lines = [str(r[0]) for r in cur.fetchall()]
        resolved = False
        if flavor == "mariadb":
            # MariaDB lists the current role's grants after the user's, but not those
            # of roles granted to that role: ask for every enabled role's own.
            # (no enabled role reads as one NULL row)
            cur.execute("SELECT ROLE_NAME FROM information_schema.ENABLED_ROLES")
            for role in [r[0] for r in cur.fetchall() if r[0] is not None]:
                cur.execute("SHOW GRANTS FOR %s", (str(role),))
                lines.extend(str(r[0]) for r in cur.fetchall())
            resolved = True
    for line in lines:
        grants.add(line)
    if resolved:
        # Roles granted but not enabled give nothing to the task's sessions.
        grants.unresolved_roles = False
    return grants


@dataclass(frozen=True)
class Need:
    """A privilege the task needs: any of *any_of* on ``database.table``
    (``database.*`` when table is None, ``*.*`` when both are None)."""

    any_of: tuple[str, ...]
    database: str | None = None
    table: str | None = None
    why: str = ""

    @property
    def shown(self) -> str:
        if len(self.any_of) == 1:
            return self.any_of[0]
        return f"{self.any_of[0]} (or {' or '.join(self.any_of[1:])})"


def missing(grants: Grants, needs: Iterable[Need]) -> list[Need]:
    return [n for n in needs if not any(grants.has(p, n.database, n.table) for p in n.any_of)]


def source_needs(
    spec: TaskSpec, info: ServerInfo, tables: Sequence[Table], views: Sequence[View]
) -> list[Need]:
    objects: list[Table | View] = [*tables, *views]
    needs = [Need(("SELECT",), o.database, o.name, "read the rows") for o in objects]
    if MigrationType.INCREMENTAL not in spec.types:
        return needs
    if info.flavor == "oceanbase":
        needs += [Need(("TRIGGER",), t.database, t.name, "capture changes") for t in tables]
        needs += [
            Need((p,), OMS_DATABASE, None, "keep the change log")
            for p in ("CREATE", "SELECT", "INSERT", "UPDATE", "DELETE", "DROP")
        ]
        return needs
    # MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR (and prints the new name)
    position = (
        ("BINLOG MONITOR", "REPLICATION CLIENT", "SUPER")
        if info.flavor == "mariadb"
        else ("REPLICATION CLIENT", "SUPER")
    )
    needs += [
        Need(("REPLICATION SLAVE",), why="read the binlog"),
        Need(position, why="read the binlog position"),
    ]
    return needs


def target_needs(
    spec: TaskSpec,
    tables: Sequence[Table],
    views: Sequence[View],
    table_exists: Callable[[str, str], bool],
    database_exists: Callable[[str], bool],
) -> list[Need]:
    # SELECT too: the non-empty check, conflict detection and verification read the
    # target's rows.
    needs: list[Need] = []
    schema = MigrationType.SCHEMA in spec.types
    for t in tables:
        db, name = spec.rename.table(t.database, t.name)
        needs += [
            Need((p,), db, name, "write rows") for p in ("SELECT", "INSERT", "UPDATE", "DELETE")
        ]
        if schema and not table_exists(db, name):
            # a missing database needs CREATE on it as a whole
            scope = name if database_exists(db) else None
            needs.append(Need(("CREATE",), db, scope, "create tables"))
    if schema:
        for v in views:
            db, name = spec.rename.table(v.database, v.name)
            if not table_exists(db, name):
                needs.append(Need(("CREATE VIEW",), db, name, "create views"))
    if MigrationType.INCREMENTAL in spec.types:
        needs += [
            Need((p,), OMS_DATABASE, None, "keep the checkpoints")
            for p in ("CREATE", "SELECT", "INSERT", "UPDATE", "DELETE")
        ]
    return needs


def _account(conn: Connection[Any]) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        row = cur.fetchone()
    user, _, host = str(row[0] if row else "").rpartition("@")
    return f"{quote_literal(user)}@{quote_literal(host or '%')}"


def _fix(lacking: list[Need], account: str) -> tuple[str, str]:
    """(what is missing, by object; the GRANT statements that give it, one per
    database: a database-wide grant also covers tables the task creates later)."""
    by_database: dict[str | None, list[str]] = {}
    by_object: dict[tuple[str | None, str | None], list[str]] = {}
    for n in lacking:
        privs = by_database.setdefault(n.database, [])
        if n.any_of[0] not in privs:
            privs.append(n.any_of[0])
        shown = by_object.setdefault((n.database, n.table), [])
        if n.shown not in shown:
            shown.append(n.shown)
    lines = [
        f"{', '.join(p)} on {db or '*'}.{table or '*'}" for (db, table), p in by_object.items()
    ]
    more = f"; and {len(lines) - _LISTED} more" if len(lines) > _LISTED else ""
    grants = [
        f"GRANT {', '.join(privs)} ON {quote_ident(db) if db else '*'}.* TO {account}"
        for db, privs in by_database.items()
    ]
    return "; ".join(lines[:_LISTED]) + more, "; ".join(grants)


def privileges_item(
    name: str, endpoint: Endpoint, conn: Connection[Any], flavor: str, needs: list[Need]
) -> CheckResult:
    """Check *needs* against the user's grants: PASS, FAIL naming what lacks and the
    GRANTs to run, or WARN when the grants cannot be read or resolved."""
    wanted = sorted({n.shown for n in needs})
    try:
        account = _account(conn)
        grants = read_grants(conn, endpoint, flavor)
    except DuosyncError as exc:
        return CheckResult(
            name,
            Status.WARN,
            f"cannot read the privileges of the user on {endpoint.display} ({exc.message});"
            f" make sure it has {', '.join(wanted)} on the task's objects",
        )
    if not needs:
        return CheckResult(name, Status.PASS, f"{endpoint.display}: nothing to check")
    lacking = missing(grants, needs)
    if not lacking:
        return CheckResult(
            name, Status.PASS, f"{account} on {endpoint.display} has {', '.join(wanted)}"
        )
    what, fix = _fix(lacking, account)
    whys = sorted({n.why for n in lacking if n.why})
    if grants.unresolved_roles:
        return CheckResult(
            name,
            Status.WARN,
            f"{account} on {endpoint.display} is not granted {what} directly; it has roles"
            f" whose privileges cannot be listed here, so they may give it. If not, run: {fix}",
        )
    return CheckResult(
        name,
        Status.FAIL,
        f"{account} on {endpoint.display} lacks {what} (needed to {', '.join(whys)}). Run: {fix}",
    )
