"""The reverse task of a two-way sync (``duosync reverse -f task.yaml``).

Following the reference page: the reverse task reads the forward task's target and
writes its source, incremental DML only; it can be configured and started only
while the forward task is in incremental sync and monitoring; its objects are the
forward task's, matched automatically with the renames inverted, and cannot be
edited. Both tasks drop the transactions the other wrote (``sync.loopguard``).

The reverse spec is derived again at every start, from the forward task's
selection applied to the source catalog as it is then: tables the forward task
created later by DDL sync are picked up at the reverse task's next start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from duosync.core.catalog import Table
from duosync.core.positions import position_from
from duosync.endpoints import open_inspector
from duosync.errors import ConfigError
from duosync.service.phases.positions import start_position
from duosync.service.prechecks import checks as prechecks
from duosync.service.runtime.live import Live
from duosync.service.runtime.states import INCREMENTAL, State
from duosync.service.store.metadata import MetadataStore
from duosync.service.store.specs import stored_spec
from duosync.spec import (
    ConflictPolicy,
    MigrationType,
    Renames,
    ReverseOptions,
    Selection,
    TaskSpec,
    Topology,
)
from duosync.sync.checkpoint import Tenure
from duosync.sync.convergence import role_of
from duosync.sync.runner import SyncStats, run_incremental

Say = Callable[[str], None]

#: the reverse task's first position, kept in the metadata store
START_STREAM = "incremental_start"
#: forward states in which a reverse task that ran before may start again (the
#: forward task catching up after its own restart is fine; paused is not)
_RESTART_STATES = INCREMENTAL
_FIRST_START_STATE = State.INCREMENTAL_MONITORING
#: a reverse task is named after its forward task: NAME.reverse
REVERSE_SUFFIX = ".reverse"


def forward_of(store: MetadataStore, name: str) -> TaskSpec | None:
    """The forward task's spec when *name* is the reverse task of a two-way sync."""
    if not name.endswith(REVERSE_SUFFIX):
        return None
    record = store.find_task(name[: -len(REVERSE_SUFFIX)])
    if record is None or record.spec.get("topology") != Topology.TWO_WAY.value:
        return None
    return TaskSpec.model_validate(record.spec)


def reverse_spec(forward: TaskSpec, tables: Sequence[Table]) -> TaskSpec:
    """The reverse task of *forward*: from its target to its source, the target
    names of *tables* (the forward task's selected source tables), renames
    inverted, the forward spec's ``reverse`` options."""
    if forward.topology is not Topology.TWO_WAY:
        raise ConfigError(
            "this task is not a two-way sync: it has no reverse task",
            task=forward.name,
            hint="set topology: two-way in its spec (with 'incremental' in types)",
        )
    objects: list[str] = []
    table_renames: dict[str, str] = {}
    column_renames: dict[str, dict[str, str]] = {}
    for t in tables:
        there = forward.rename.table(t.database, t.name)
        name = ".".join(there)
        objects.append(name)
        if there != (t.database, t.name):
            table_renames[name] = t.qualified
        columns = {
            new: c.name
            for c in t.columns
            if (new := forward.rename.column(t.database, t.name, c.name)) != c.name
        }
        if columns:
            column_renames[name] = columns
    if not objects:
        raise ConfigError(
            "the forward task selects no table on its source: nothing to sync back",
            task=forward.name,
        )
    return TaskSpec(
        name=forward.reverse_name,
        source=forward.target,
        target=forward.source,
        types=(MigrationType.INCREMENTAL,),
        select=Selection(objects=tuple(objects)),
        rename=Renames(tables=table_renames, columns=column_renames),
        options=(forward.reverse or ReverseOptions()).as_options(forward.options.conflict),
    )


def run_reverse(
    forward: TaskSpec,
    store: MetadataStore,
    say: Say,
    stop: threading.Event,
    *,
    stats: SyncStats | None = None,
    live: Live | None = None,
    tenure: Tenure | None = None,
) -> SyncStats:
    """Run (start or resume) the reverse task of *forward*, stored and made active
    by the task service, and sync until *stop*; *tenure* fences its commits in a
    cluster (``sync.checkpoint``)."""
    check_forward(forward, store)
    with open_inspector(forward.source) as insp:
        catalog = insp.catalog(forward.select.candidate_databases(insp.list_databases()))
    tables = forward.selected_tables(catalog)
    spec = reverse_spec(forward, tables)
    with open_inspector(spec.source) as insp:
        there = insp.catalog(spec.select.candidate_databases(insp.list_databases()))
    reverse_tables = spec.selected_tables(there)
    missing = sorted(set(spec.select.objects) - {t.qualified for t in reverse_tables})
    if missing:
        raise ConfigError(
            f"tables of the forward task are missing on its target: {', '.join(missing)}",
            task=spec.name,
            endpoint=spec.source.display,
            hint="let the forward task create them (schema migration or DDL sync) first",
        )
    prechecks.run(
        [
            lambda: prechecks.transaction_tables(forward.source, "forward task's source"),
            lambda: prechecks.transaction_tables(forward.target, "forward task's target"),
        ],
        say,
        spec.name,
    )
    data = stored_spec(spec)
    record = store.get_task(spec.name)
    if record.spec != data:
        store.update_spec(spec.name, data)
        say(f"reverse: objects matched again from {forward.name}: {len(spec.select.objects)}")
    saved = store.load_checkpoint(spec.name, START_STREAM)
    if saved is None:  # the first start: _check_forward required monitoring
        saved = start_position(spec, reverse_tables, markers=True).model_dump()
        store.save_checkpoint(spec.name, START_STREAM, saved)
    start = position_from(saved)
    policy = spec.options.conflict or ConflictPolicy.OVERWRITE
    role = role_of(forward, reverse=True)
    part = f" ({role.part.value} of the pair)" if role is not None else ""
    say(
        f"reverse task {spec.name}: {spec.source.display} -> {spec.target.display},"
        f" {len(reverse_tables)} tables, conflicts: {policy.value}{part}"
    )

    live = live if live is not None else Live()
    if stats is not None:
        live.sync = stats

    def enter(state: State) -> None:
        live.phase = state.value
        store.enter_state(spec.name, state)

    def on_state(state: str) -> None:
        say(f"reverse: {'caught up (monitoring)' if state == 'monitoring' else 'catching up'}")
        enter(State(f"incremental_{state}"))

    enter(State.INCREMENTAL_RUNNING)
    return run_incremental(
        spec,
        start,
        f"{store.get_task(spec.name).created_at:.6f}",
        stop,
        say,
        on_state=on_state,
        stats=live.sync,
        opposite=forward.name,
        ddl=False,
        tenure=tenure,
        role=role,
        pair_filters=dict(forward.filters),
    )


def check_forward(forward: TaskSpec, store: MetadataStore) -> None:
    """Refuse to start the reverse task unless the forward task allows it now."""
    if forward.topology is not Topology.TWO_WAY:
        raise ConfigError(
            "this task is not a two-way sync: it has no reverse task",
            task=forward.name,
            hint="set topology: two-way in its spec (with 'incremental' in types)",
        )
    try:
        record = store.get_task(forward.name)
    except ConfigError:
        raise ConfigError(
            "the forward task has not run yet; its reverse task starts once it is in"
            " incremental sync and monitoring",
            task=forward.name,
            hint="start it first: duosync migrate -f <its spec>, then run reverse again",
        ) from None
    if without_reverse(record.spec) != without_reverse(stored_spec(forward)):
        raise ConfigError(
            "this spec differs from the one the forward task runs with; the reverse task's"
            " objects and options come from the forward task's spec",
            task=forward.name,
            hint="use the same spec file as the forward task",
        )
    first = store.load_checkpoint(forward.reverse_name, START_STREAM) is None
    allowed = {_FIRST_START_STATE} if first else _RESTART_STATES
    if record.state not in allowed:
        when = (
            "is in incremental sync and monitoring (caught up)"
            if first
            else "is in incremental sync"
        )
        raise ConfigError(
            f"the reverse task can be {'configured and ' if first else ''}started only while"
            f" the forward task {when}; its state is {record.state.value!r}",
            task=forward.reverse_name,
            hint="run the forward task (duosync migrate -f <spec>) and wait until it says"
            " 'caught up (monitoring)'",
        )


def without_reverse(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored spec minus its reverse options, which may be set after the forward
    task started (the reverse task is configured later)."""
    return {k: v for k, v in spec.items() if k != "reverse"}
