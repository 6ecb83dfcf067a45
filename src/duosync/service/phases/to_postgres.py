"""Schema and full migration to a PostgreSQL target (``run_phases`` hands over here).

The same phases as to a MySQL-family target, through the family-neutral
interfaces: the source is inspected and its tables translated (renames; a database
becomes a schema), the ``SchemaSink`` creates the tables without their secondary
indexes, the full copy runs chunk by chunk with ``COPY`` (``migrate.copier`` and
``phases.migration._full_phase``: resumable, each chunk once), and the sink then
builds the indexes, moves identity sequences past the copied keys and adds the
foreign keys. A rerun after a crash resumes: tables whose copy the task began are
its own and kept, chunks recorded done are not copied again, and ``finish`` builds
only what is missing. Views, triggers and routines are not created yet (a note
says so).
"""

from __future__ import annotations

import threading
import time

from duosync.config import Flavor
from duosync.core.catalog import Table
from duosync.core.interfaces import SchemaSink
from duosync.endpoints import open_inspector, open_schema_sink
from duosync.errors import FatalError
from duosync.schema.translate import Note, translate_table
from duosync.service.phases.migration import (
    MigrationReport,
    Say,
    _enter,
    _full_phase,
    selected_objects,
)
from duosync.service.runtime.live import Live
from duosync.service.runtime.states import State
from duosync.service.store.metadata import MetadataStore
from duosync.spec import MigrationType, TaskSpec


def run_postgres_phases(
    spec: TaskSpec,
    store: MetadataStore,
    say: Say,
    stop: threading.Event | None,
    live: Live,
) -> MigrationReport:
    """Schema and full migration of *spec* to its PostgreSQL target (see module)."""
    started = time.monotonic()
    report = MigrationReport()
    with open_inspector(spec.source) as src_insp:
        source = src_insp.catalog(spec.select.candidate_databases(src_insp.list_databases()))
    tables, views = selected_objects(spec, source)
    plans: list[tuple[Table, Table]] = []
    for t in tables:
        translated, notes = translate_table(t, target=Flavor.POSTGRESQL, renames=spec.rename)
        report.notes.extend(notes)
        plans.append((t, translated))
        if not t.row_identity:
            report.notes.append(
                Note(t.qualified, "no primary key or NOT NULL unique key: copied by a full scan")
            )
    for view in views:
        report.notes.append(
            Note(view.qualified, "view not created: a PostgreSQL target gets tables only so far")
        )
    sink = open_schema_sink(spec.target)
    try:
        if MigrationType.SCHEMA in spec.types:
            _enter(store, spec.name, State.SCHEMA_MIGRATION, live)
            _create_tables(spec, store, plans, sink, report, say)
        for note in report.notes:
            say(f"note: {note}")
        if MigrationType.FULL in spec.types:
            _enter(store, spec.name, State.FULL_MIGRATION, live)
            _full_phase(spec, store, plans, report, say, live, stop)
            if stop is not None and stop.is_set():
                report.seconds = time.monotonic() - started
                return report
        if MigrationType.SCHEMA in spec.types:
            sink.finish([want for _, want in plans], say)
            say(f"built the indexes of {len(plans)} tables")
    finally:
        sink.close()
    report.seconds = time.monotonic() - started
    return report


def _create_tables(
    spec: TaskSpec,
    store: MetadataStore,
    plans: list[tuple[Table, Table]],
    sink: SchemaSink,
    report: MigrationReport,
    say: Say,
) -> None:
    for src, want in plans:
        if sink.exists(want):
            if store.chunk_plan(spec.name, src.qualified):
                report.accepted.append(want.qualified)  # ours: a copy under way
                continue
            raise FatalError(
                f"target table {want.qualified} already exists on {spec.target.display}",
                task=spec.name,
                endpoint=spec.target.display,
                table=want.qualified,
                hint="drop it, or rename the target (rename: databases/tables)",
            )
        for note in sink.create(want):
            subject, _, text = note.partition(": ")
            report.notes.append(Note(subject, text))
        report.created.append(want.qualified)
        say(f"created table {want.qualified}")
