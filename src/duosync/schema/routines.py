"""The source's objects beyond tables and views: triggers, procedures, functions and
events. What a task does with each (``options.routines``):

- ``routines: false`` (default): every one is left behind; the pre-check
  ``source.routines`` and the task's report name each.
- procedures and functions: created on the target database (the renamed one) in
  the schema phase, from ``SHOW CREATE`` on the source. They do nothing until
  called, so creating them early is safe, and views that call a function find it.
- events: created DISABLED. An event running on both sides while the task runs
  would write twice: once on the target by itself, once through the rows that
  replication carries from the source's own run. Enabling it is the user's cutover
  step (``ALTER EVENT ... ENABLE``). OceanBase has no events at all.
- triggers: a trigger on the target fires again on rows that the source's trigger
  already produced and that replication carries, so it is created only where no
  replicated row reaches it: a task without incremental sync creates it after the
  full copy (the copy writes rows as they are, with no trigger in the way). A task
  with incremental sync creates it at cutover only (``duosync task cutover NAME``,
  ``service.phases.cutover``: the task paused, then released, so that nothing is
  replicated into the table once the trigger exists).

Definers are not kept: ``SHOW CREATE`` text is stripped of its ``DEFINER =`` clause
and triggers are rebuilt from their parts, so every object's definer on the target
is the task's target user (the source's accounts need not exist there). Bodies are
created as written: references in them to renamed databases, tables or columns are
not rewritten.

An object the target refuses (OceanBase refuses ``CREATE EVENT``; a body may use
what the target lacks) does not fail the task: the outcome carries the server's
error and the task records it as a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from duosync.config import Endpoint, Flavor
from duosync.core.catalog import Table, View
from duosync.endpoints.mysql.connection import connect, driver_errors
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import DuosyncError, RetriableError
from duosync.schema.translate import Note
from duosync.spec import MigrationType, TaskSpec

#: a source table's target ``(database, table)`` (``RenameRules.table``)
RenameTable = Callable[[str, str], tuple[str, str]]


class Kind(StrEnum):
    TRIGGER = "trigger"
    PROCEDURE = "procedure"
    FUNCTION = "function"
    EVENT = "event"


@dataclass(frozen=True)
class TriggerParts:
    """What information_schema.TRIGGERS says of a trigger (its body without the head)."""

    table: str
    timing: str  # BEFORE / AFTER
    event: str  # INSERT / UPDATE / DELETE
    body: str
    order: int
    sql_mode: str


@dataclass(frozen=True)
class SourceObject:
    """One trigger, procedure, function or event of a source database."""

    kind: Kind
    database: str
    name: str
    #: triggers only
    trigger: TriggerParts | None = None

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"

    def __str__(self) -> str:
        on = f" (on {self.database}.{self.trigger.table})" if self.trigger is not None else ""
        return f"{self.kind.value} {self.qualified}{on}"


class Fate(StrEnum):
    """What the task does with an object."""

    LEFT_BEHIND = "left behind"
    #: procedures and functions, in the schema phase
    CREATED = "created"
    #: events, in the schema phase
    CREATED_DISABLED = "created disabled"
    #: triggers of a task without incremental sync, after the full copy
    CREATED_AFTER_COPY = "created after the full copy"
    #: triggers of a task with incremental sync
    AT_CUTOVER = "left behind, to create at cutover"


class Stage(StrEnum):
    """When ``create_objects`` runs, and so which objects it creates."""

    SCHEMA = "schema"  # procedures, functions, events
    AFTER_COPY = "after_copy"  # triggers of tasks without incremental sync
    CUTOVER = "cutover"  # triggers of tasks with incremental sync


_STAGE_FATES = {
    Stage.SCHEMA: (Fate.CREATED, Fate.CREATED_DISABLED),
    Stage.AFTER_COPY: (Fate.CREATED_AFTER_COPY,),
    Stage.CUTOVER: (Fate.AT_CUTOVER,),
}


@dataclass(frozen=True)
class Planned:
    """An object, what the task does with it, and where."""

    obj: SourceObject
    fate: Fate
    #: the database it is (or would be) created in on the target
    target_database: str
    #: why it is left behind or handled so (shown with the fate)
    reason: str = ""
    #: what the target is known to refuse (the pre-check warns in advance)
    problem: str | None = None
    #: triggers: the target table it is on
    target_table: str | None = None

    @property
    def target(self) -> str:
        return f"{self.target_database}.{self.obj.name}"

    def __str__(self) -> str:
        moved = self.target_database != self.obj.database
        where = f" as {self.target}" if moved and self.fate is not Fate.LEFT_BEHIND else ""
        why = f" ({self.reason})" if self.reason else ""
        problem = f"; but {self.problem}" if self.problem else ""
        return f"{self.obj}: {self.fate.value}{where}{why}{problem}"


@dataclass(frozen=True)
class Outcome:
    """What creating one object on the target came to."""

    planned: Planned
    created: bool
    #: the server's error when the target refused it, or why it was not attempted
    error: str | None = None
    #: it was already on the target (kept as it is)
    existed: bool = False

    @property
    def message(self) -> str:
        p = self.planned
        if self.existed:
            return f"already on the target as {p.target}: kept as it is"
        if not self.created:
            return f"not created on the target ({p.target}): {self.error}"
        if p.fate is Fate.CREATED_DISABLED:
            return f"created as {p.target} DISABLED (enable it at cutover: ALTER EVENT ... ENABLE)"
        return f"created as {p.target}"

    def __str__(self) -> str:
        return f"{self.planned.obj}: {self.message}"


#: the note every report of objects carries once
DEFINERS_NOTE = "definers are not kept: objects are created with the task's target user as definer"

_OFF = "options.routines is false"


# -- inspection -------------------------------------------------------------------------


def inspect(cur: Any, databases: Sequence[str]) -> list[SourceObject]:
    """The triggers, procedures, functions and events of *databases* (through *cur*,
    a source cursor), in a stable order: by database, kind, then trigger order or
    name. duosync's own capture triggers (OceanBase, ``duosync_*``) are left out; a
    server without information_schema.EVENTS (OceanBase) has no events."""
    if not databases:
        return []
    marks = ", ".join(["%s"] * len(databases))
    found: list[SourceObject] = []
    cur.execute(
        "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING,"
        " EVENT_MANIPULATION, ACTION_STATEMENT, ACTION_ORDER, SQL_MODE"
        f" FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({marks})"
        " AND TRIGGER_NAME NOT LIKE 'duosync\\_%%'",
        list(databases),
    )
    for db, name, table, timing, event, statement, order, mode in cur.fetchall():
        parts = TriggerParts(
            str(table),
            str(timing),
            str(event),
            _trigger_body(str(statement)),
            int(order or 0),
            str(mode or ""),
        )
        found.append(SourceObject(Kind.TRIGGER, str(db), str(name), parts))
    cur.execute(
        "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES"
        f" WHERE ROUTINE_SCHEMA IN ({marks})",
        list(databases),
    )
    for db, name, rtype in cur.fetchall():
        kind = Kind.FUNCTION if str(rtype).upper() == "FUNCTION" else Kind.PROCEDURE
        found.append(SourceObject(kind, str(db), str(name)))
    if _has_events(cur):
        cur.execute(
            "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS"
            f" WHERE EVENT_SCHEMA IN ({marks})",
            list(databases),
        )
        found.extend(SourceObject(Kind.EVENT, str(db), str(name)) for db, name in cur.fetchall())
    kinds = list(Kind)
    return sorted(
        found,
        key=lambda o: (
            o.database,
            kinds.index(o.kind),
            o.trigger.table if o.trigger else "",
            o.trigger.order if o.trigger else 0,
            o.name,
        ),
    )


def _has_events(cur: Any) -> bool:
    # OceanBase (seekdb 4.3) has neither the table nor SHOW EVENTS nor CREATE EVENT.
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'EVENTS'"
    )
    row = cur.fetchone()
    return bool(row and row[0])


#: OceanBase's ACTION_STATEMENT is the whole trigger after CREATE:
#: "TRIGGER `db`.`name` AFTER INSERT ON `db`.`t` FOR EACH ROW <body>"
_OB_TRIGGER_HEAD = re.compile(r"^\s*TRIGGER\s.*?\sFOR\s+EACH\s+ROW\s+", re.IGNORECASE | re.DOTALL)


def _trigger_body(statement: str) -> str:
    return _OB_TRIGGER_HEAD.sub("", statement, count=1)


# -- what the task does with each --------------------------------------------------------


def plan(
    objects: Sequence[SourceObject],
    *,
    routines: bool,
    schema: bool,
    incremental: bool,
    target_flavor: Flavor,
    tables: Collection[tuple[str, str]],
    database_renames: Mapping[str, str],
    rename_table: RenameTable,
) -> list[Planned]:
    """What a task does with each of *objects*. *schema*: the task has a schema
    phase (nothing is created without one); *incremental*: it syncs incrementally;
    *tables*: the selected source tables ``(db, table)``; *database_renames* and
    *rename_table*: the task's renames (a trigger goes where its table goes)."""
    out: list[Planned] = []
    for obj in objects:
        target_db = database_renames.get(obj.database, obj.database)
        target_table = None
        if obj.trigger is not None:
            target_db, target_table = rename_table(obj.database, obj.trigger.table)
        fate, reason, problem = _fate(obj, routines, schema, incremental, target_flavor, tables)
        out.append(Planned(obj, fate, target_db, reason, problem, target_table))
    return out


def _fate(
    obj: SourceObject,
    routines: bool,
    schema: bool,
    incremental: bool,
    target_flavor: Flavor,
    tables: Collection[tuple[str, str]],
) -> tuple[Fate, str, str | None]:
    """(fate, reason, problem the target is known to have with it)."""
    if not routines:
        return Fate.LEFT_BEHIND, _OFF, None
    if not schema:
        return Fate.LEFT_BEHIND, "the task has no schema phase", None
    if obj.trigger is not None:
        if (obj.database, obj.trigger.table) not in tables:
            return (
                Fate.LEFT_BEHIND,
                f"its table {obj.database}.{obj.trigger.table} is not selected",
                None,
            )
        if incremental:
            return (
                Fate.AT_CUTOVER,
                "the task syncs incrementally: on the target it would fire again on rows"
                " the source's trigger produced, which replication carries; created at"
                " cutover (duosync task cutover NAME, once the task is paused)",
                None,
            )
        return Fate.CREATED_AFTER_COPY, "", None
    if obj.kind is Kind.EVENT:
        problem = (
            "OceanBase has no events (CREATE EVENT is refused): it will be left behind"
            if target_flavor is Flavor.OCEANBASE
            else None
        )
        return (
            Fate.CREATED_DISABLED,
            "enabled on both sides it would write twice; enable it at cutover",
            problem,
        )
    return Fate.CREATED, "", None


def plan_spec(
    cur: Any, spec: TaskSpec, tables: Sequence[Table], views: Sequence[View]
) -> list[Planned]:
    """What *spec* does with the objects of the source databases holding its
    selected *tables* and *views* (read through *cur*, a source cursor)."""
    databases = sorted({t.database for t in tables} | {v.database for v in views})
    return plan(
        inspect(cur, databases),
        routines=spec.options.routines,
        schema=MigrationType.SCHEMA in spec.types,
        incremental=MigrationType.INCREMENTAL in spec.types,
        target_flavor=spec.target.flavor,
        tables={(t.database, t.name) for t in tables},
        database_renames=spec.rename.databases,
        rename_table=spec.rename.table,
    )


def plan_task(spec: TaskSpec, tables: Sequence[Table], views: Sequence[View]) -> list[Planned]:
    """``plan_spec`` over a connection of its own to the task's source."""
    conn = connect(spec.source)
    try:
        with driver_errors(spec.source), conn.cursor() as cur:
            return plan_spec(cur, spec, tables, views)
    finally:
        conn.close()


# -- creation ----------------------------------------------------------------------------


def create_objects(
    source: Endpoint,
    target: Endpoint,
    plans: Sequence[Planned],
    stage: Stage,
) -> list[Outcome]:
    """Create on *target* the planned objects of *stage*; one outcome each. An object
    already on the target is kept (a rerun of the task creates nothing twice); one
    the target refuses is an outcome with the server's error, never an exception
    (transient faults, ``RetriableError``, are raised: the phase is retried)."""
    todo = [p for p in plans if p.fate in _STAGE_FATES[stage]]
    if not todo:
        return []
    outcomes: list[Outcome] = []
    src, tgt = connect(source), connect(target)
    try:
        with src.cursor() as scur, tgt.cursor() as tcur:
            with driver_errors(target):
                tcur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
                row = tcur.fetchone()
            mode, zone = (str(row[0]), str(row[1])) if row else ("", "+00:00")
            existing = _existing(tcur, target, sorted({p.target_database for p in todo}))
            for p in todo:
                if (p.obj.kind, p.target_database, p.obj.name.lower()) in existing:
                    outcomes.append(Outcome(p, created=False, existed=True))
                    continue
                outcomes.append(_create_one(scur, tcur, source, target, p))
                # each statement may have set the session's sql_mode and time_zone
                with driver_errors(target):
                    tcur.execute("SET SESSION sql_mode = %s, time_zone = %s", (mode, zone))
    finally:
        src.close()
        tgt.close()
    return outcomes


def _existing(cur: Any, target: Endpoint, databases: Sequence[str]) -> set[tuple[Kind, str, str]]:
    """(kind, database, lower-case name) of the target's objects in *databases*."""
    marks = ", ".join(["%s"] * len(databases))
    have: set[tuple[Kind, str, str]] = set()
    with driver_errors(target):
        cur.execute(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS"
            f" WHERE TRIGGER_SCHEMA IN ({marks})",
            list(databases),
        )
        have.update((Kind.TRIGGER, str(d), str(n).lower()) for d, n in cur.fetchall())
        cur.execute(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES"
            f" WHERE ROUTINE_SCHEMA IN ({marks})",
            list(databases),
        )
        for d, n, t in cur.fetchall():
            kind = Kind.FUNCTION if str(t).upper() == "FUNCTION" else Kind.PROCEDURE
            have.add((kind, str(d), str(n).lower()))
        if _has_events(cur):
            cur.execute(
                "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS"
                f" WHERE EVENT_SCHEMA IN ({marks})",
                list(databases),
            )
            have.update((Kind.EVENT, str(d), str(n).lower()) for d, n in cur.fetchall())
    return have


def _create_one(
    scur: Any,
    tcur: Any,
    source: Endpoint,
    target: Endpoint,
    p: Planned,
) -> Outcome:
    obj = p.obj
    try:
        with driver_errors(source, table=obj.qualified):
            sql, mode, zone = _definition(scur, obj, p)
    except RetriableError:
        raise
    except DuosyncError as exc:
        return Outcome(
            p, created=False, error=f"cannot read its definition on the source: {exc.message}"
        )
    except _Unreadable as exc:
        return Outcome(p, created=False, error=f"cannot read its definition on the source: {exc}")
    try:
        with driver_errors(target, table=p.target):
            # Bodies name tables unqualified: they resolve in the current database
            # (and OceanBase wants one for CREATE TRIGGER even when qualified).
            tcur.execute(f"USE {quote_ident(p.target_database)}")
        _set_session(tcur, target, mode, zone)
        with driver_errors(target, table=p.target):
            tcur.execute(sql)
    except RetriableError:
        raise
    except DuosyncError as exc:
        return Outcome(p, created=False, error=f"the target refused it: {exc.message}")
    return Outcome(p, created=True)


def _set_session(cur: Any, target: Endpoint, mode: str, zone: str | None) -> None:
    """The sql_mode (and an event's time_zone) the object was created under on the
    source, as far as the target knows them: a mode or zone the target lacks is
    skipped rather than failing the object (the session's own stays)."""
    settings = [("sql_mode", mode)]
    if zone and zone.upper() != "SYSTEM":
        settings.append(("time_zone", zone))
    for variable, value in settings:
        try:
            with driver_errors(target):
                cur.execute(f"SET SESSION {variable} = %s", (value,))
        except RetriableError:
            raise
        except DuosyncError:
            pass


#: "CREATE DEFINER=`u`@`h` " (MariaDB), "CREATE DEFINER = `u`@`%` " and
#: "CREATE DEFINER = root@% " (OceanBase)
_DEFINER = re.compile(
    r"^\s*CREATE\s+DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|[^@\s]*)"
    r"@(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|\S*)\s+",
    re.IGNORECASE,
)
#: the status clause of SHOW CREATE EVENT, which always follows ON COMPLETION
_EVENT_STATUS = re.compile(
    r"(ON\s+COMPLETION\s+(?:NOT\s+)?PRESERVE)\s+(?:ENABLE|DISABLE\s+ON\s+SLAVE|DISABLE)\b",
    re.IGNORECASE,
)


def strip_definer(sql: str) -> str:
    """``CREATE DEFINER=... PROCEDURE ...`` without its definer."""
    return _DEFINER.sub("CREATE ", sql, count=1)


def disabled_event(sql: str) -> str | None:
    """SHOW CREATE EVENT text with its status set to DISABLE (None: no status found)."""
    new, n = _EVENT_STATUS.subn(r"\1 DISABLE", sql, count=1)
    return new if n else None


class _Unreadable(Exception):
    """The source does not give a definition the target can take (the message says why)."""


#: what a user needs to see a routine's or event's body (MariaDB 10.11; MySQL 8)
_SHOW_CREATE_PRIVILEGE = (
    "the source shows its body only to its definer or to a user with SHOW CREATE ROUTINE"
    " (MariaDB 10.11), SELECT on mysql.proc, or the EVENT privilege for events"
)


def _definition(cur: Any, obj: SourceObject, p: Planned) -> tuple[str, str, str | None]:
    """(CREATE statement for the target, its sql_mode, its time_zone); raises
    ``_Unreadable``."""
    name = qualified(obj.database, obj.name)
    if obj.kind is Kind.TRIGGER:
        t = obj.trigger
        assert t is not None
        # rebuilt from its parts: no definer, and the table's target name
        sql = (
            f"CREATE TRIGGER {qualified(p.target_database, obj.name)} {t.timing} {t.event}"
            f" ON {qualified(p.target_database, p.target_table or t.table)}"
            f" FOR EACH ROW {t.body}"
        )
        return sql, t.sql_mode, None
    if obj.kind is Kind.EVENT:
        cur.execute(f"SHOW CREATE EVENT {name}")
        row = cur.fetchone()
        # (Event, sql_mode, time_zone, Create Event, ...)
        if row is None or row[3] is None:
            raise _Unreadable(_SHOW_CREATE_PRIVILEGE)
        disabled = disabled_event(strip_definer(str(row[3])))
        if disabled is None:
            raise _Unreadable("its definition has no ENABLE/DISABLE clause to set to DISABLE")
        return disabled, str(row[1]), str(row[2])
    cur.execute(f"SHOW CREATE {obj.kind.value.upper()} {name}")
    row = cur.fetchone()
    # (Procedure|Function, sql_mode, Create Procedure|Function, ...); the body is
    # NULL for a user who may not see it
    if row is None or row[2] is None:
        raise _Unreadable(_SHOW_CREATE_PRIVILEGE)
    return strip_definer(str(row[2])), str(row[1]), None


# -- what a report says ------------------------------------------------------------------


def summary(plans: Sequence[Planned]) -> str:
    """One line naming every object and its fate (the pre-check item's detail)."""
    if not plans:
        return "no trigger, procedure, function or event in the selected databases"
    created = any(p.fate not in (Fate.LEFT_BEHIND, Fate.AT_CUTOVER) for p in plans)
    return "; ".join(map(str, plans)) + (f"; {DEFINERS_NOTE}" if created else "")


def needs_attention(plans: Sequence[Planned]) -> bool:
    """Something the user must see: an object left behind, an event disabled, or a
    refusal the target is known for."""
    return any(p.fate not in (Fate.CREATED, Fate.CREATED_AFTER_COPY) or p.problem for p in plans)


def report_notes(plans: Sequence[Planned], outcomes: Sequence[Outcome], stage: Stage) -> list[Note]:
    """The task report's notes for *stage*: what was created or refused, and (at the
    schema stage) every object left behind, with its reason."""
    notes: list[Note] = []
    if stage is Stage.SCHEMA:
        for p in plans:
            if p.fate in (Fate.LEFT_BEHIND, Fate.AT_CUTOVER):
                notes.append(Note(str(p.obj), f"{p.fate.value} ({p.reason})", unsupported=True))
    for o in outcomes:
        notes.append(Note(str(o.planned.obj), o.message, unsupported=not o.created))
    if any(o.created for o in outcomes):
        notes.append(Note("definers", "not kept: objects are created with the task's target user"))
    return notes
