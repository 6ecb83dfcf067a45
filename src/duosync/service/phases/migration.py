"""Running a task's schema and full-migration phases (``duosync migrate``).

Order, and why:
1. Inspect both sides, resolve the selection, validate renames and row filters
   against the real source catalog: nothing is written until all of it holds.
2. Schema: create missing databases and tables (secondary indexes deferred with
   post_indexing; foreign keys never yet). Existing identical tables are accepted;
   a different one stops the task before any data moves, naming its differences.
   Then the source's procedures, functions and (disabled) events with
   options.routines; every trigger, procedure, function and event is named in a
   note either way (``schema.routines``).
3. Full: on the first run, refuse non-empty targets (``stop``) and record the
   source's binlog position (the incremental handover; on OceanBase, install the
   capture triggers and take the log position) *before* planning chunks;
   then copy the pending chunks. A rerun resumes: chunks recorded done are skipped.
4. After the data: deferred indexes, foreign keys, then views in dependency order;
   then, with options.routines and no incremental sync, the triggers (with
   incremental sync they would fire again on replicated rows: left for cutover).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from duosync.config import Flavor
from duosync.core.catalog import Catalog, ServerInfo, Table, View
from duosync.core.copying import Chunk, ChunkResult, CopyJob, decode_key, encode_key
from duosync.core.positions import position_from
from duosync.endpoints import open_inspector, open_schema_sink, open_snapshot_reader
from duosync.endpoints.mysql.connection import connect, driver_errors
from duosync.endpoints.mysql.dialect import qualified
from duosync.errors import ConfigError, FatalError
from duosync.migrate.copier import run_copy
from duosync.migrate.indexes import build_deferred_indexes
from duosync.migrate.ratelimit import RateLimiter
from duosync.schema import routines
from duosync.schema.compare import table_differences
from duosync.schema.ddl import (
    Storage,
    add_foreign_key_sql,
    create_database_sql,
    create_table_sql,
    create_view_sql,
)
from duosync.schema.routines import Planned, Stage
from duosync.schema.translate import Note, translate_table, translate_view
from duosync.service.phases.positions import position_now, start_position
from duosync.service.prechecks import checks as prechecks
from duosync.service.runtime.live import Live
from duosync.service.runtime.progress import TablePlan, make_progress
from duosync.service.runtime.states import INCREMENTAL, State
from duosync.service.store.metadata import MetadataStore
from duosync.spec import MigrationType, NonEmptyTarget, TaskSpec, Topology
from duosync.sync.checkpoint import Tenure
from duosync.sync.convergence import role_of
from duosync.sync.runner import SyncStats, run_incremental

HANDOVER_STREAM = "handover"
#: incremental-only task: the position its first run started from
INCREMENTAL_START_STREAM = "incremental_start"
#: the source's position when the full copy ended: incremental sync applies
#: idempotently up to it (rows the copy may already hold), with conflict checks after
CHECKED_AFTER_STREAM = "checked_after"

Say = Callable[[str], None]

#: the pre-check item about non-empty target tables (service.prechecks.items)
NON_EMPTY_CHECK = "target.non_empty_tables"


@dataclass
class MigrationReport:
    created: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    rows: int = 0
    conflicts: int = 0
    handover: dict[str, Any] | None = None
    #: row changes applied by the incremental phase in this run
    synced_rows: int | None = None
    #: changes the incremental phase recorded in the conflict log in this run
    sync_conflicts: int = 0
    seconds: float = 0.0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_phases(
    spec: TaskSpec,
    store: MetadataStore,
    say: Say = _stderr,
    stop: threading.Event | None = None,
    *,
    stats: SyncStats | None = None,
    live: Live | None = None,
    tenure: Tenure | None = None,
) -> MigrationReport:
    """Run the task's phases in order, from the one its state in *store* names (the
    task runner, ``service.runtime.runner``, holds it there); with incremental, keep syncing
    until *stop* is set, then return at a checkpoint. *stats* and *live*
    (optional) are updated as it goes, for progress shown elsewhere.

    A task resumed in incremental sync skips the schema and full phases: they are
    done, and checking the target's tables against the source again would fail on
    a DDL change still on its way through the log. *tenure*: the cluster assignment
    the run holds, which fences incremental commits (``sync.checkpoint``)."""
    live = live if live is not None else Live()
    if spec.target.flavor is Flavor.POSTGRESQL:
        from duosync.service.phases.to_postgres import run_postgres_phases

        return run_postgres_phases(spec, store, say, stop, live)
    started = time.monotonic()
    report = MigrationReport()
    if stats is not None:
        live.sync = stats
    resumed_in_sync = store.get_task(spec.name).state in INCREMENTAL
    with open_inspector(spec.source) as src_insp, open_inspector(spec.target) as tgt_insp:
        if MigrationType.INCREMENTAL in spec.types:
            _check_capture(spec, src_insp.server_info())
        source = src_insp.catalog(spec.select.candidate_databases(src_insp.list_databases()))
        target_flavor = Flavor(tgt_insp.server_info().flavor)
        tables, views = selected_objects(spec, source)
        plans: list[tuple[Table, Table]] = []
        for t in tables:
            translated, notes = translate_table(t, target=target_flavor, renames=spec.rename)
            report.notes.extend(notes)
            plans.append((t, translated))
            if not t.row_identity:
                report.notes.append(
                    Note(
                        t.qualified,
                        "no primary key or NOT NULL unique key:"
                        " copied by a full scan; duplicates are possible",
                    )
                )
        target_dbs = sorted(
            {p[1].database for p in plans}
            | {spec.rename.table(v.database, v.name)[0] for v in views}
        )
        existing_dbs = set(tgt_insp.list_databases())
        # a task resumed in sync makes no schema: its target's catalog is not read
        # (seconds on a busy server, on the path of every failover)
        # (and an empty list would mean every database to ``catalog``)
        wanted = [] if resumed_in_sync else [d for d in target_dbs if d in existing_dbs]
        target_cat = (
            tgt_insp.catalog(wanted)
            if wanted
            else Catalog(endpoint=spec.target.display, server=tgt_insp.server_info())
        )
    for note in report.notes:
        say(f"note: {note}")
    existing = {(t.database, t.name): t for d in target_cat.databases for t in d.tables}
    existing_views = {(v.database, v.name) for d in target_cat.databases for v in d.views}
    post = spec.options.post_indexing
    objects: list[Planned] = []
    conn = connect(spec.target)
    try:
        if MigrationType.SCHEMA in spec.types and not resumed_in_sync:
            _enter(store, spec.name, State.SCHEMA_MIGRATION, live)
            _schema_phase(
                spec,
                conn,
                source.databases,
                plans,
                existing,
                existing_dbs,
                target_flavor,
                report,
                say,
            )
            objects = _objects(spec, store, tables, views, [], Stage.SCHEMA, report, say)
        if MigrationType.FULL in spec.types and not resumed_in_sync:
            _enter(store, spec.name, State.FULL_MIGRATION, live)
            _full_phase(spec, store, plans, report, say, live, stop)
            if stop is not None and stop.is_set():
                # paused or shut down mid-copy: the rest resumes from the chunks
                report.seconds = time.monotonic() - started
                return report
            if MigrationType.INCREMENTAL in spec.types and (
                store.load_checkpoint(spec.name, CHECKED_AFTER_STREAM) is None
            ):
                store.save_checkpoint(
                    spec.name, CHECKED_AFTER_STREAM, position_now(spec).model_dump()
                )
        if MigrationType.SCHEMA in spec.types and not resumed_in_sync:
            with driver_errors(spec.target):
                _after_data(spec, conn, plans, views, existing_views, set(existing), post, say)
            _objects(spec, store, tables, views, objects, Stage.AFTER_COPY, report, say)
    finally:
        conn.close()
    if MigrationType.INCREMENTAL in spec.types:
        for src, _want in plans:
            if not src.row_identity:
                say(
                    f"note: {src.qualified}: no primary key or NOT NULL unique key: its"
                    " changes are applied one by one and may be applied twice after a crash"
                )
        _incremental_phase(
            spec,
            store,
            [s for s, _ in plans],
            report,
            say,
            stop or threading.Event(),
            live,
            tenure,
        )
    report.seconds = time.monotonic() - started
    return report


def selected_objects(spec: TaskSpec, source: Catalog) -> tuple[list[Table], list[View]]:
    """The tables and views *spec* selects in the source's catalog; ``ConfigError``
    when it selects nothing, or a row filter does not fit the source."""
    spec.check_catalog(source)
    tables = spec.selected_tables(source)
    views = spec.selected_views(source)
    if not tables and not views:
        raise ConfigError(
            "the selection matches no table or view on the source",
            task=spec.name,
            endpoint=spec.source.display,
        )
    prechecks.check_filters(spec, tables)
    return tables, views


def _check_capture(spec: TaskSpec, info: ServerInfo) -> None:
    if spec.source.flavor is Flavor.OCEANBASE:
        if spec.options.incremental_start is not None:
            raise ConfigError(
                "options.incremental_start cannot be used with an OceanBase source: its"
                " changes are recorded by triggers from the task's first start, there is"
                " no older log to read",
                task=spec.name,
                endpoint=spec.source.display,
                hint="remove incremental_start, or add 'full' to types",
            )
        return  # trigger capture: problems surface when it is installed
    if info.capture_problems:
        raise ConfigError(
            "the source's binlog cannot feed incremental sync: " + "; ".join(info.capture_problems),
            task=spec.name,
            endpoint=spec.source.display,
            hint="fix these server settings, or remove 'incremental' from types",
        )


def _incremental_phase(
    spec: TaskSpec,
    store: MetadataStore,
    tables: list[Table],
    report: MigrationReport,
    say: Say,
    stop: threading.Event,
    live: Live,
    tenure: Tenure | None,
) -> None:
    skip_before: float | None = None
    two_way = spec.topology is Topology.TWO_WAY
    if MigrationType.FULL in spec.types:
        saved = store.load_checkpoint(spec.name, HANDOVER_STREAM)
        if saved is None:
            raise FatalError("the full migration recorded no handover position", task=spec.name)
    else:
        saved = store.load_checkpoint(spec.name, INCREMENTAL_START_STREAM)
        if saved is None:
            saved = start_position(spec, tables, markers=two_way).model_dump()
            store.save_checkpoint(spec.name, INCREMENTAL_START_STREAM, saved)
        if spec.options.incremental_start is not None:
            moment = spec.options.incremental_start
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            skip_before = moment.timestamp()
    start = position_from(saved)
    checked = store.load_checkpoint(spec.name, CHECKED_AFTER_STREAM)

    def on_state(state: str) -> None:
        say(f"incremental: {'caught up (monitoring)' if state == 'monitoring' else 'catching up'}")
        _enter(store, spec.name, State(f"incremental_{state}"), live)

    _enter(store, spec.name, State.INCREMENTAL_RUNNING, live)
    # The task's creation time in this store tells its checkpoints on the target
    # from those of an earlier task that had the same name.
    incarnation = f"{store.get_task(spec.name).created_at:.6f}"
    stats = run_incremental(
        spec,
        start,
        incarnation,
        stop,
        say,
        on_state=on_state,
        stats=live.sync,
        skip_before=skip_before,
        checked_after=position_from(checked) if checked is not None else None,
        opposite=spec.reverse_name if two_way else None,
        tenure=tenure,
        role=role_of(spec, reverse=False) if two_way else None,
    )
    report.synced_rows = stats.rows
    report.sync_conflicts = stats.conflicts


#: the order of the states a run goes through
_ORDER = (
    State.PRECHECKING,
    State.SCHEMA_MIGRATION,
    State.FULL_MIGRATION,
    State.INCREMENTAL_RUNNING,
    State.INCREMENTAL_MONITORING,
)


def _enter(store: MetadataStore, name: str, state: State, live: Live) -> None:
    """Enter a phase's state. A task resumed in a later phase reruns the earlier
    (idempotent) schema checks without going back: its state stays."""
    current = store.get_task(name).state
    live.phase = state.value
    if current in INCREMENTAL and state in INCREMENTAL:
        store.enter_state(name, state)
    elif current in _ORDER and _ORDER.index(current) > _ORDER.index(state):
        live.phase = current.value
    else:
        store.enter_state(name, state)


def _schema_phase(
    spec: TaskSpec,
    conn: Any,
    source_dbs: Any,
    plans: list[tuple[Table, Table]],
    existing: dict[tuple[str, str], Table],
    existing_dbs: set[str],
    flavor: Flavor,
    report: MigrationReport,
    say: Say,
) -> None:
    differing: list[str] = []
    for _src, want in plans:
        have = existing.get((want.database, want.name))
        if have is None:
            continue
        diffs = table_differences(want, have, check_indexes=not spec.options.post_indexing)
        if diffs:
            differing.append(f"{want.qualified}: {'; '.join(diffs)}")
        else:
            report.accepted.append(want.qualified)
    if differing:
        raise FatalError(
            "existing target tables differ from the source:\n  " + "\n  ".join(differing),
            task=spec.name,
            endpoint=spec.target.display,
            hint="drop or fix them, or rename the target tables",
        )
    charsets = {d.name: (d.charset, d.collation) for d in source_dbs}
    storage = Storage(spec.options.oceanbase_storage.value)
    with driver_errors(spec.target), conn.cursor() as cur:
        for src, want in plans:
            if want.database not in existing_dbs:
                cs, co = charsets.get(src.database, ("utf8mb4", "utf8mb4_general_ci"))
                if flavor is Flavor.OCEANBASE and cs not in ("utf8mb4", "binary"):
                    cs, co = "utf8mb4", "utf8mb4_general_ci"
                cur.execute(create_database_sql(want.database, cs, co))
                existing_dbs.add(want.database)
            if (want.database, want.name) in existing:
                continue
            sql = create_table_sql(
                want, flavor, post_indexing=spec.options.post_indexing, storage=storage
            )
            try:
                with driver_errors(spec.target, table=want.qualified):
                    cur.execute(sql)
            except FatalError as exc:
                if storage is Storage.DEFAULT or "COLUMN GROUP" not in exc.message:
                    raise
                raise ConfigError(
                    f"options.oceanbase_storage is {storage.value}, but the target refuses"
                    f" column-group storage (WITH COLUMN GROUP): {exc.message}",
                    task=spec.name,
                    endpoint=spec.target.display,
                    table=want.qualified,
                    hint="set options.oceanbase_storage: default, or use a target whose"
                    " OceanBase edition supports column store (4.3 or later)",
                ) from None
            report.created.append(want.qualified)
            say(f"created table {want.qualified}")


def _objects(
    spec: TaskSpec,
    store: MetadataStore,
    tables: list[Table],
    views: list[View],
    plans: list[Planned],
    stage: Stage,
    report: MigrationReport,
    say: Say,
) -> list[Planned]:
    """Triggers, procedures, functions and events (``schema.routines``): at the
    schema stage, inspect them and create what is created then; after the copy,
    the triggers. Notes name every one in the report and in the task's history."""
    if stage is Stage.SCHEMA:
        plans = routines.plan_task(spec, tables, views)
    outcomes = routines.create_objects(spec.source, spec.target, plans, stage)
    notes = routines.report_notes(plans, outcomes, stage)
    for note in notes:
        say(f"note: {note}")
    report.notes.extend(notes)
    if notes:
        store.note(spec.name, "objects beyond tables and views: " + "; ".join(map(str, notes)))
    return plans


def _full_phase(
    spec: TaskSpec,
    store: MetadataStore,
    plans: list[tuple[Table, Table]],
    report: MigrationReport,
    say: Say,
    live: Live,
    stop: threading.Event | None = None,
) -> None:
    first_run = all(not store.chunk_plan(spec.name, s.qualified) for s, _ in plans)
    # A skipped non-empty-target pre-check copies as 'ignore' does: the target's
    # rows are kept (never emptied by a resumed chunk), clashes recorded.
    ignore = (
        spec.options.non_empty_target is NonEmptyTarget.IGNORE
        or NON_EMPTY_CHECK in store.precheck_skips(spec.name)
    )
    if first_run:
        if not ignore:
            _refuse_non_empty(spec, [w for _, w in plans])
        if spec.source.flavor is not Flavor.OCEANBASE or MigrationType.INCREMENTAL in spec.types:
            position = start_position(
                spec, [s for s, _ in plans], markers=spec.topology is Topology.TWO_WAY
            )
            store.save_checkpoint(spec.name, HANDOVER_STREAM, position.model_dump())
            say(f"incremental handover position: {position}")
    report.handover = store.load_checkpoint(spec.name, HANDOVER_STREAM)
    jobs: list[CopyJob] = []
    totals: dict[str, TablePlan] = {}
    reader = open_snapshot_reader(spec.source)
    try:
        for src, want in plans:
            saved = store.chunk_plan(spec.name, src.qualified)
            fresh = not saved
            if fresh:
                chunks = reader.plan(src, src.row_identity, spec.options.chunk_rows)
                store.save_chunk_plan(
                    spec.name,
                    src.qualified,
                    [(c.index, encode_key(c.lower), encode_key(c.upper)) for c in chunks],
                )
                # Read the plan back: a first run then uses keys exactly as a resume would.
                saved = store.chunk_plan(spec.name, src.qualified)
            pending = tuple(
                Chunk(i, decode_key(lo), decode_key(hi))
                for i, lo, hi, done, _rows in saved
                if not done
            )
            rows_before = sum(rows for *_x, done, rows in saved if done)
            report.rows += rows_before
            totals[src.qualified] = TablePlan(
                chunks=len(saved), done_before=len(saved) - len(pending), rows_before=rows_before
            )
            columns = tuple(
                (c.name, spec.rename.column(src.database, src.name, c.name))
                for c in src.columns
                if c.generated is None
            )
            jobs.append(
                CopyJob(
                    source=src,
                    target=want,
                    columns=columns,
                    key=src.row_identity,
                    target_key=tuple(
                        spec.rename.column(src.database, src.name, k) for k in src.row_identity
                    ),
                    where=spec.filter_for(src.database, src.name),
                    chunks=pending,
                    ignore_existing=ignore,
                    resumed=frozenset() if fresh else frozenset(c.index for c in pending),
                )
            )
    finally:
        reader.close()
    progress = make_progress(totals, say)
    live.copy = progress

    def on_done(result: ChunkResult) -> None:
        live.copied_rows += result.rows
        live.copied_chunks += 1
        live.copied_bytes += result.nbytes
        store.mark_chunk_done(spec.name, result.job.name, result.chunk.index, result.rows)
        for key, detail in result.conflicts:
            store.record_copy_conflict(spec.name, result.job.name, key, detail)
        report.rows += result.rows
        report.conflicts += len(result.conflicts)
        progress.chunk_done(result.job.name, result.rows)

    # The bars are live only during the copy, when nothing else is said; they stop
    # also when it raises.
    with progress:
        run_copy(
            jobs,
            spec.source,
            spec.target,
            read_concurrency=spec.options.read_concurrency,
            write_concurrency=spec.options.write_concurrency,
            limiter=RateLimiter(
                spec.options.rate_rows_per_second, spec.options.rate_bytes_per_second
            ),
            on_done=on_done,
            task=spec.name,
            cancel=stop,
        )
        if stop is None or not stop.is_set():
            progress.finish()


def _refuse_non_empty(spec: TaskSpec, tables: list[Table]) -> None:
    if spec.target.flavor is Flavor.POSTGRESQL:
        sink = open_schema_sink(spec.target)
        try:
            busy = [t.qualified for t in tables if sink.holds_rows(t)]
        finally:
            sink.close()
        _refuse_busy(spec, busy)
        return
    conn = connect(spec.target)
    busy = []
    try:
        with driver_errors(spec.target), conn.cursor() as cur:
            for t in tables:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (t.database, t.name),
                )
                row = cur.fetchone()
                if not row or not row[0]:
                    continue
                cur.execute(f"SELECT 1 FROM {qualified(t.database, t.name)} LIMIT 1")
                if cur.fetchone():
                    busy.append(t.qualified)
    finally:
        conn.close()
    _refuse_busy(spec, busy)


def _refuse_busy(spec: TaskSpec, busy: list[str]) -> None:
    if busy:
        raise FatalError(
            f"target tables are not empty: {', '.join(busy)}; nothing was copied",
            task=spec.name,
            endpoint=spec.target.display,
            hint="empty them, or set options.non_empty_target: ignore",
        )


def _after_data(
    spec: TaskSpec,
    conn: Any,
    plans: list[tuple[Table, Table]],
    views: list[View],
    existing_views: set[tuple[str, str]],
    existing_tables: set[tuple[str, str]],
    post: bool,
    say: Say,
) -> None:
    # A foreign key may only point at a table the target has: one we created or
    # accepted, or one that was already there.
    known = existing_tables | {(w.database, w.name) for _, w in plans}
    if post:
        build_deferred_indexes(
            spec.target, [w for _, w in plans], spec.options.write_concurrency, say
        )
    with conn.cursor() as cur:
        for _src, want in plans:
            fks = _foreign_key_names(cur, want)
            for fk in want.foreign_keys:
                if fk.name in fks:
                    continue
                if (fk.ref_database, fk.ref_table) not in known:
                    say(
                        f"note: {want.qualified}: foreign key {fk.name} not created: it"
                        f" references {fk.ref_database}.{fk.ref_table}, which is not selected"
                        " and not on the target"
                    )
                    continue
                cur.execute(add_foreign_key_sql(want, fk))
        for view in _dependency_order(views):
            new = translate_view(view, renames=spec.rename)
            if (new.database, new.name) not in existing_views:
                cur.execute(create_view_sql(new))
                say(f"created view {new.qualified}")


def _foreign_key_names(cur: Any, t: Table) -> set[str]:
    cur.execute(
        "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
        (t.database, t.name),
    )
    return {str(r[0]) for r in cur.fetchall()}


def _dependency_order(views: list[View]) -> list[View]:
    """Views after the views they read (a view reading an unselected view is last)."""
    by_name = {v.qualified: v for v in views}
    done: list[View] = []
    seen: set[str] = set()

    def visit(v: View, path: tuple[str, ...]) -> None:
        if v.qualified in seen:
            return
        if v.qualified in path:
            raise ConfigError(f"views depend on each other in a cycle: {' -> '.join(path)}")
        for dep in v.depends_on:
            if dep in by_name:
                visit(by_name[dep], (*path, v.qualified))
        seen.add(v.qualified)
        done.append(v)

    for v in views:
        visit(v, ())
    return done
