"""Every pre-check item a task runs before it starts (``task_prechecks``).

An item's ``name`` is a stable machine id: the service lets a user skip a failed item
by it and the web console shows it, so ids are never renamed. Its ``detail`` names
the endpoint (``Endpoint.display``, never a password) and the objects at fault, and
says what to do.

Items always come in the same order for a given spec and servers. When a side cannot
be reached (or the selection cannot be resolved), the items that need it are still
listed, as FAIL "not checked: ...": one missing item in a list is easy to overlook,
and the ids a user may skip stay the same from one run to the next.

Each item opens nothing of its own but reuses one connection per side, so a task
with thousands of tables is checked in a handful of round trips per item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

from duosync.config import Endpoint, Flavor
from duosync.core.catalog import Database, ServerInfo, Table, View
from duosync.endpoints import open_inspector, target_checks
from duosync.endpoints.mysql.connection import Connection, connect, driver_errors
from duosync.endpoints.mysql.dialect import qualified
from duosync.endpoints.mysql.filter_eval import FilterEvaluator, FilterTable
from duosync.endpoints.mysql.inspector import MySQLInspector
from duosync.errors import ConfigError, DuosyncError, FatalError
from duosync.schema import routines
from duosync.service.prechecks import privileges, server
from duosync.service.prechecks.checks import (
    CheckResult,
    Status,
    check_filters,
    keyless_tables,
    transaction_tables,
)
from duosync.spec import REVERSE_SUFFIX, MigrationType, NonEmptyTarget, TaskSpec, Topology

#: oldest releases duosync supports, by family
MIN_VERSIONS = {"mariadb": (10, 5), "mysql": (5, 7), "oceanbase": (4,)}


@dataclass
class _Side:
    """One endpoint of the task, as far as the checks got with it."""

    role: str  # "source" or "target"
    endpoint: Endpoint
    conn: Connection[Any] | None = None
    inspector: MySQLInspector | None = None
    info: ServerInfo | None = None
    #: why the items needing this side are not checked (None: they are)
    problem: str | None = None
    #: why the server could not be inspected (the version item reports it)
    inspect_error: str | None = None

    def ready(self) -> tuple[Connection[Any], ServerInfo]:
        if self.conn is None or self.info is None:
            raise FatalError(f"pre-check bug: the {self.role} was used without a connection")
        return self.conn, self.info

    def close(self) -> None:
        # Best effort: a connection an item saw drop refuses to close a second time,
        # and that must not replace the results with an exception.
        for thing in (self.inspector, self.conn):
            if thing is not None:
                with suppress(Exception):
                    thing.close()


@dataclass
class _Selection:
    tables: list[Table] = field(default_factory=list)
    views: list[View] = field(default_factory=list)
    #: source databases holding selected objects (their default character sets)
    databases: list[Database] = field(default_factory=list)
    problem: str | None = None


def task_prechecks(
    spec: TaskSpec, *, own_tables: frozenset[str] = frozenset()
) -> list[CheckResult]:
    """Every pre-check item of *spec*, in a stable order; never raises for a failing
    check (a failure is a CheckResult with Status.FAIL and an explanation that says
    what to do); DuosyncError only for bugs-free impossibilities. *own_tables* are
    source tables (``db.table``) whose copy the task itself has done or begun: rows
    their targets hold are the task's own (a task started again resumes there)."""
    if spec.target.flavor is Flavor.POSTGRESQL:
        return _to_postgres(spec, own_tables)
    source, target = _Side("source", spec.source), _Side("target", spec.target)
    try:
        results = [_connect(source), _connect(target), _version(source), _version(target)]
        sel = _select(spec, source)
        types = set(spec.types)
        items: list[tuple[str, Sequence[_Side | _Selection], Callable[[], CheckResult]]] = [
            ("source.privileges", [source, sel], lambda: _source_privileges(spec, source, sel)),
            ("target.privileges", [target, sel], lambda: _target_privileges(spec, target, sel)),
        ]
        if MigrationType.INCREMENTAL in types:
            items.append(
                ("source.binlog", [source], lambda: server.binlog(source.ready()[1], spec.source))
            )
        if {MigrationType.FULL, MigrationType.INCREMENTAL} <= types and _may_have_binlog(source):
            items.append(
                (
                    "source.binlog_retention",
                    [source, sel],
                    lambda: server.binlog_retention(spec, source.ready()[0], sel.tables),
                )
            )
        items.append(("source.keyless_tables", [sel], lambda: _keyless(spec, sel)))
        if not spec.name.endswith(REVERSE_SUFFIX):  # the forward task handles them
            items.append(("source.routines", [source, sel], lambda: _routines(spec, source, sel)))
        if MigrationType.FULL in types:
            items.append(
                (
                    "target.non_empty_tables",
                    [target, sel],
                    lambda: _non_empty(spec, target, sel, own_tables),
                )
            )
        items += [
            ("time_zone", [source, target], lambda: _time_zone(source, target)),
            ("charset", [source, target, sel], lambda: _charset(source, target, sel)),
            ("filters", [source, sel] if spec.filters else [], lambda: _filters(spec, sel)),
        ]
        if spec.topology is Topology.TWO_WAY:
            items += [
                ("source.oms", [source], lambda: _oms(spec.source, "source")),
                ("target.oms", [target], lambda: _oms(spec.target, "target")),
            ]
        results += [_run(name, needs, check) for name, needs, check in items]
        return results
    finally:
        source.close()
        target.close()


def _to_postgres(spec: TaskSpec, own_tables: frozenset[str]) -> list[CheckResult]:
    """The items of a task with a PostgreSQL target: the source's as for any task,
    the target's from its endpoint package (connectivity, version, privileges,
    encoding, non-empty tables)."""
    source = _Side("source", spec.source)
    try:
        results = [_connect(source), _version(source)]
        sel = _select(spec, source)
        planned = [spec.rename.table(t.database, t.name) for t in sel.tables]
        own = frozenset(spec.rename.table(*key.split(".", 1)) for key in own_tables if "." in key)
        results += target_checks(spec.target, planned, own)
        items: list[tuple[str, Sequence[_Side | _Selection], Callable[[], CheckResult]]] = [
            ("source.privileges", [source, sel], lambda: _source_privileges(spec, source, sel)),
            ("source.keyless_tables", [sel], lambda: _keyless(spec, sel)),
            ("filters", [source, sel] if spec.filters else [], lambda: _filters(spec, sel)),
        ]
        if sel.problem is not None:
            results.append(CheckResult("target.tables", Status.FAIL, f"not checked: {sel.problem}"))
        return results + [_run(name, needs, check) for name, needs, check in items]
    finally:
        source.close()


def _run(
    name: str, needs: Sequence[_Side | _Selection], check: Callable[[], CheckResult]
) -> CheckResult:
    for dep in needs:
        if dep.problem is not None:
            return CheckResult(name, Status.FAIL, f"not checked: {dep.problem}")
    try:
        result = check()
    except DuosyncError as exc:
        # e.g. the connection dropped during the item: say so, go on with the others
        return CheckResult(name, Status.FAIL, f"could not be checked: {exc}")
    return replace(result, name=name)


def _may_have_binlog(side: _Side) -> bool:
    """A source not reached is assumed to have one, so that its retention item is
    listed (as not checked) and the list does not change when it comes back."""
    if side.info is None:
        return side.endpoint.flavor is not Flavor.OCEANBASE
    return side.info.flavor != "oceanbase" and side.info.log_bin


# -- the sides ---------------------------------------------------------------------------


def _connect(side: _Side) -> CheckResult:
    name, shown = f"{side.role}.connectivity", side.endpoint.display
    try:
        side.conn = connect(side.endpoint)
        with driver_errors(side.endpoint), side.conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            row = cur.fetchone()
    except DuosyncError as exc:
        side.problem = f"cannot connect to the {side.role} ({shown})"
        hint = f"; {exc.hint}" if exc.hint else ""
        return CheckResult(name, Status.FAIL, f"{shown}: {exc.message}{hint}")
    try:
        side.inspector = open_inspector(side.endpoint)
        side.info = side.inspector.server_info()
    except DuosyncError as exc:
        side.inspect_error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        side.problem = f"the {side.role} ({shown}) cannot be inspected: {side.inspect_error}"
    return CheckResult(name, Status.PASS, f"connected to {shown} as {row[0] if row else '?'}")


def _version(side: _Side) -> CheckResult:
    name, shown = f"{side.role}.version", side.endpoint.display
    if side.conn is None:
        return CheckResult(name, Status.FAIL, f"not checked: {side.problem}")
    if side.info is None:
        return CheckResult(name, Status.FAIL, f"{shown}: {side.inspect_error}")
    info = side.info
    have = tuple(int(p) for p in info.version.split(".") if p.isdigit())
    need = MIN_VERSIONS[info.flavor]
    label = {"mariadb": "MariaDB", "mysql": "MySQL", "oceanbase": "OceanBase"}[info.flavor]
    # OceanBase's version string ends with its build; the part before is enough
    what = f"{shown} runs {label} {info.version} ({info.version_string.split(' (')[0]})"
    if have < need:
        least = ".".join(map(str, need)) + (".x" if info.flavor == "oceanbase" else "")
        return CheckResult(
            name, Status.FAIL, f"{what}; duosync needs {label} {least} or later: upgrade it"
        )
    if info.flavor == "oceanbase" and have[:1] != need:
        return CheckResult(
            name, Status.WARN, f"{what}; duosync is tested with OceanBase 4.x MySQL mode only"
        )
    return CheckResult(name, Status.PASS, what)


def _select(spec: TaskSpec, source: _Side) -> _Selection:
    """The selected source objects, as ``run_migration`` resolves them."""
    if source.problem is not None or source.inspector is None:
        return _Selection(problem=source.problem)
    insp = source.inspector
    try:
        catalog = insp.catalog(spec.select.candidate_databases(insp.list_databases()))
        spec.check_catalog(catalog)
    except DuosyncError as exc:
        return _Selection(
            problem=f"the selection cannot be resolved on {spec.source.display}: {exc.message}"
        )
    tables, views = spec.selected_tables(catalog), spec.selected_views(catalog)
    if not tables and not views:
        return _Selection(
            problem=f"the selection matches no table or view on {spec.source.display}"
            f" (that {spec.source.user} may see: it needs SELECT on them)"
        )
    used = {t.database for t in tables} | {v.database for v in views}
    return _Selection(tables, views, [d for d in catalog.databases if d.name in used])


# -- items -------------------------------------------------------------------------------


def _source_privileges(spec: TaskSpec, source: _Side, sel: _Selection) -> CheckResult:
    conn, info = source.ready()
    needs = privileges.source_needs(spec, info, sel.tables, sel.views)
    return privileges.privileges_item("", spec.source, conn, info.flavor, needs)


def _target_privileges(spec: TaskSpec, target: _Side, sel: _Selection) -> CheckResult:
    conn, info = target.ready()
    existing, databases = _target_objects(spec, conn, sel)
    present = {existing.key(d) for d in databases}
    needs = privileges.target_needs(
        spec, sel.tables, sel.views, existing.has, lambda db: existing.key(db) in present
    )
    return privileges.privileges_item("", spec.target, conn, info.flavor, needs)


@dataclass(frozen=True)
class _Existing:
    """Target tables that exist, matched as the target compares names."""

    fold: bool
    names: set[tuple[str, str]]

    def key(self, name: str) -> str:
        return name.lower() if self.fold else name

    def has(self, database: str, table: str) -> bool:
        return (self.key(database), self.key(table)) in self.names


def _target_objects(
    spec: TaskSpec, conn: Connection[Any], sel: _Selection
) -> tuple[_Existing, list[str]]:
    """Existing target tables (and views) among the selection's targets, and the
    target databases that exist."""
    objects: list[Table | View] = [*sel.tables, *sel.views]
    wanted = sorted({spec.rename.table(o.database, o.name)[0] for o in objects})
    marks = ", ".join(["%s"] * len(wanted))
    with driver_errors(spec.target), conn.cursor() as cur:
        cur.execute("SELECT @@lower_case_table_names")
        row = cur.fetchone()
        fold = bool(row and str(row[0]) != "0")
        cur.execute(
            f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({marks})",
            wanted,
        )
        databases = [str(r[0]) for r in cur.fetchall()]
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA IN ({marks})",
            wanted,
        )
        rows = cur.fetchall()
    existing = _Existing(fold, set())
    existing.names.update((existing.key(str(r[0])), existing.key(str(r[1]))) for r in rows)
    return existing, databases


def _oms(endpoint: Endpoint, side: str) -> CheckResult:
    # transaction_tables names the endpoint in its (free-text) name, not its detail
    result = transaction_tables(endpoint, side)
    return replace(result, detail=f"{result.name}: {result.detail}")


def _keyless(spec: TaskSpec, sel: _Selection) -> CheckResult:
    result = keyless_tables(sel.tables, "source")
    return replace(result, detail=f"on {spec.source.display}: {result.detail}")


def _routines(spec: TaskSpec, source: _Side, sel: _Selection) -> CheckResult:
    """Triggers, procedures, functions and events of the selected databases, and
    what the task does with each (``schema.routines``): a warning when any is left
    behind, created disabled, or known to be refused by the target."""
    conn, _info = source.ready()
    with driver_errors(spec.source), conn.cursor() as cur:
        plans = routines.plan_spec(cur, spec, sel.tables, sel.views)
    status = Status.WARN if routines.needs_attention(plans) else Status.PASS
    hint = (
        "; set options.routines: true to create procedures, functions and events"
        " (and triggers where they cannot fire twice)"
        if plans and not spec.options.routines
        else ""
    )
    return CheckResult("", status, f"on {spec.source.display}: {routines.summary(plans)}{hint}")


def _non_empty(
    spec: TaskSpec, target: _Side, sel: _Selection, own_tables: frozenset[str]
) -> CheckResult:
    conn, _info = target.ready()
    existing, _dbs = _target_objects(spec, conn, sel)
    busy: list[str] = []
    own: list[str] = []
    found = 0
    with driver_errors(spec.target), conn.cursor() as cur:
        for t in sel.tables:
            db, name = spec.rename.table(t.database, t.name)
            if not existing.has(db, name):
                continue
            found += 1
            cur.execute(f"SELECT 1 FROM {qualified(db, name)} LIMIT 1")
            if cur.fetchone():
                (own if t.qualified in own_tables else busy).append(f"{db}.{name}")
    shown = spec.target.display
    mine = (
        f"; {', '.join(own)} hold{'s' if len(own) == 1 else ''} rows this task copied itself"
        " (its copy is done or under way): it resumes there"
        if own
        else ""
    )
    if not busy:
        return CheckResult(
            "",
            Status.PASS,
            (
                f"no other target table on {shown} holds rows"
                if own
                else f"no target table on {shown} holds rows"
            )
            + (f": {found} of {len(sel.tables)} exist" if found else "")
            + (", all empty" if found and not own else "")
            + mine,
        )
    listed = ", ".join(busy)
    if spec.options.non_empty_target is NonEmptyTarget.STOP:
        return CheckResult(
            "",
            Status.FAIL,
            f"target tables on {shown} already hold rows: {listed}; the full migration will"
            " not copy into them (options.non_empty_target: stop): empty them, rename the"
            " targets, or set options.non_empty_target: ignore to keep their rows" + mine,
        )
    return CheckResult(
        "",
        Status.WARN,
        f"target tables on {shown} already hold rows: {listed}; options.non_empty_target is"
        " ignore: their rows are kept, and source rows whose key they hold are logged as"
        " conflicts instead of copied",
    )


def _time_zone(source: _Side, target: _Side) -> CheckResult:
    src = server.time_zone(source.ready()[0], source.endpoint)
    tgt = server.time_zone(target.ready()[0], target.endpoint)
    sides = (
        f"source {source.endpoint.display}: time_zone {src.setting} (UTC{src.offset});"
        f" target {target.endpoint.display}: time_zone {tgt.setting} (UTC{tgt.offset})"
    )
    if src.seconds == tgt.seconds:
        return CheckResult("", Status.PASS, f"both servers are at UTC{src.offset} ({sides})")
    return CheckResult(
        "",
        Status.WARN,
        f"the servers' time zones differ ({sides}). duosync moves TIMESTAMP values in UTC,"
        " so they keep their instant; but DATETIME values written from NOW() and the local"
        " times applications read will differ between the sides. If applications use both"
        " sides, set the same time_zone on both servers: SET GLOBAL time_zone = '+00:00'"
        " (on MySQL and MariaDB also default_time_zone in the server's configuration, or a"
        " restart undoes it); OceanBase defaults to +08:00",
    )


def _charset(source: _Side, target: _Side, sel: _Selection) -> CheckResult:
    src_conn, _ = source.ready()
    tgt_conn, tgt_info = target.ready()
    return server.charset(
        src_conn,
        source.endpoint,
        tgt_conn,
        target.endpoint,
        Flavor(tgt_info.flavor),
        sel.databases,
        sel.tables,
    )


def _filters(spec: TaskSpec, sel: _Selection) -> CheckResult:
    if not spec.filters:
        return CheckResult("", Status.PASS, "no row filters")
    try:
        check_filters(spec, sel.tables)
    except ConfigError as exc:
        table = f"{exc.table}: " if exc.table else ""
        return CheckResult(
            "",
            Status.FAIL,
            f"{table}{exc.message} ({spec.source.display}); fix the condition in filters",
        )
    if MigrationType.INCREMENTAL in spec.types:
        problem = _event_filters(spec, sel)
        if problem is not None:
            return CheckResult("", Status.FAIL, problem)
    return CheckResult(
        "",
        Status.PASS,
        f"row filters of {', '.join(sorted(spec.filters))} are valid on {spec.source.display}"
        + (
            ", on change events too (scratch table created)"
            if MigrationType.INCREMENTAL in spec.types
            else ""
        ),
    )


def _event_filters(spec: TaskSpec, sel: _Selection) -> str | None:
    """Incremental sync evaluates filters on the source in a scratch table
    (``endpoints.mysql.filter_eval``): it must be creatable there."""
    evaluator = FilterEvaluator(spec.source, spec.name)
    try:
        for t in sel.tables:
            condition = spec.filter_for(t.database, t.name)
            if condition is not None:
                where = FilterTable(t.database, t.name, condition, t.qualified)
                evaluator.prepare(where, tuple(c.name for c in t.columns))
    except DuosyncError as exc:
        hint = (
            "grant CREATE on the oms database"
            if spec.source.flavor is Flavor.OCEANBASE
            else "grant CREATE TEMPORARY TABLES on the filtered tables' databases"
        )
        return f"{exc.message}: incremental sync evaluates row filters there ({hint})"
    finally:
        with suppress(DuosyncError):
            evaluator.close()
    return None
