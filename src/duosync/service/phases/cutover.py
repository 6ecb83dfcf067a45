"""Cutover of a one-way task with incremental sync: writes move to the target.

While a task syncs, the source's triggers stay off the target: a trigger there would
fire again on rows the source's trigger already produced, which replication carries
(``schema.routines``). At cutover nothing is replicated any more, so that is when
they can be created. ``cutover`` therefore:

1. refuses a task a runner still owns (pause it first: its last batch is then
   applied and its checkpoint written), a two-way task (both sides keep writing:
   there is no moment without replicated rows), and a task without
   ``options.routines``;
2. creates the selected tables' triggers on the target (``Stage.CUTOVER``), in
   firing order, as the schema phase would have; one the target refuses is named
   with the server's error, never a failure;
3. releases the task: resumed, it would replicate rows into tables whose triggers
   now fire on them.
"""

from __future__ import annotations

from collections.abc import Callable

from duosync.endpoints import open_inspector
from duosync.errors import ConfigError
from duosync.schema import routines
from duosync.schema.routines import Outcome, Stage
from duosync.service.runtime import tasks
from duosync.service.runtime.states import ACTIVE, IllegalTransition, State
from duosync.service.store.metadata import MetadataStore
from duosync.spec import MigrationType, TaskSpec, Topology


def cutover(store: MetadataStore, name: str, say: Callable[[str], None]) -> list[Outcome]:
    """Create the triggers the task left for cutover, then release it (see the
    module docstring); returns what happened to each trigger."""
    record = store.get_task(name)
    spec = TaskSpec.model_validate(record.spec)
    if record.state in ACTIVE:
        raise IllegalTransition(
            f"task is {record.state.value}: pause it first (duosync task pause {name}),"
            " so that nothing is replicated once its triggers exist",
            task=name,
        )
    if record.state is State.RELEASED:
        raise IllegalTransition("task is released: its cutover is over", task=name)
    if spec.topology is Topology.TWO_WAY:
        raise ConfigError(
            "a two-way task has no cutover: both sides keep writing, so a trigger on"
            " either side would fire again on the rows the other side's trigger made",
            task=name,
        )
    if MigrationType.INCREMENTAL not in spec.types or not spec.options.routines:
        raise ConfigError(
            "nothing to do at cutover: only a task with incremental sync and"
            " options.routines: true leaves triggers for it",
            task=name,
        )
    with open_inspector(spec.source) as inspector:
        catalog = inspector.catalog(spec.select.candidate_databases(inspector.list_databases()))
    tables, views = spec.selected_tables(catalog), spec.selected_views(catalog)
    plans = routines.plan_task(spec, tables, views)
    outcomes = routines.create_objects(spec.source, spec.target, plans, Stage.CUTOVER)
    notes = routines.report_notes(plans, outcomes, Stage.CUTOVER)
    for note in notes:
        say(f"note: {note}")
    if notes:
        store.note(name, "cutover: " + "; ".join(map(str, notes)))
    tasks.release(store, name)
    return outcomes
