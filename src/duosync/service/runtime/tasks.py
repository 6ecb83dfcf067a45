"""The task service: what the CLI and the REST API both call.

These functions change what the store says about a task (create it, start, pause,
resume, release, skip a pre-check, configure the reverse task) through the
lifecycle in ``states``; running it is the task runner's job (``runner.TaskRun``):
in the foreground for ``duosync migrate``/``reverse``, in ``duosync serve``'s
threads otherwise. An action that does not fit the task's state raises
``states.IllegalTransition`` naming both.

Passwords: the store keeps a task's spec with its passwords (the runner needs
them; the file is readable by its owner only). ``public_spec`` is what leaves the
service: every password replaced by a mark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from duosync.endpoints import open_inspector
from duosync.errors import ConfigError
from duosync.service.phases.migration import MigrationReport
from duosync.service.phases.twoway import check_forward, forward_of, reverse_spec
from duosync.service.prechecks.checks import CheckResult
from duosync.service.runtime import states
from duosync.service.runtime.live import Live
from duosync.service.runtime.runner import PAUSE, TaskRun, owner_dead, runnable
from duosync.service.runtime.states import ACTIVE, INCREMENTAL, IllegalTransition, State
from duosync.service.store.metadata import MetadataStore, TaskRecord
from duosync.service.store.specs import stored_spec
from duosync.spec import MigrationType, ReverseOptions, TaskSpec, Topology
from duosync.specfile import parse_spec

Say = Callable[[str], None]
#: the pre-checks of a spec; the second argument names the source tables
#: (``db.table``) whose copy this task itself has done or begun (``own_tables``)
Prechecks = Callable[[TaskSpec, frozenset[str]], list[CheckResult]]

#: phase states a paused task may resume into
_RESUMABLE = (State.SCHEMA_MIGRATION, State.FULL_MIGRATION, State.INCREMENTAL_RUNNING)


def default_prechecks(spec: TaskSpec, own: frozenset[str] = frozenset()) -> list[CheckResult]:
    from duosync.service.prechecks.items import task_prechecks

    return task_prechecks(spec, own_tables=own)


# -- creating ------------------------------------------------------------------------


def create_task(store: MetadataStore, spec: TaskSpec) -> TaskRecord:
    """Store a new task, not started. A reverse task's name is reserved for its
    forward task's ``configure_reverse``."""
    if spec.name.endswith(".reverse"):
        raise ConfigError(
            "task names ending in .reverse are the reverse tasks of two-way syncs",
            task=spec.name,
            hint="create the forward task (topology: two-way) and configure its reverse task",
        )
    return store.create_task(spec.name, stored_spec(spec))


def ensure_task(store: MetadataStore, spec: TaskSpec) -> TaskRecord:
    """The stored task of *spec* (created if new). Its spec may change until the
    task first enters a phase (a spec refused by its pre-checks can be fixed); after
    that, running it with another selection or options could mix two copies."""
    record = store.find_task(spec.name)
    if record is None:
        return create_task(store, spec)
    data = stored_spec(spec)
    if record.spec == data:
        return record
    if _without_reverse(record.spec) == _without_reverse(data) or not _ever_ran(store, spec.name):
        store.update_spec(spec.name, data)  # the reverse options are set later
        return store.get_task(spec.name)
    raise ConfigError(
        "a task with this name already ran with a different spec; resuming it with"
        " another selection or options could mix two copies",
        task=spec.name,
        hint="use a new task name, or restore the original spec",
    )


def _without_reverse(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "reverse"}


def _ever_ran(store: MetadataStore, name: str) -> bool:
    phases = {s.value for s in (*_RESUMABLE, State.INCREMENTAL_MONITORING)}
    return any(e.to_state in phases for e in store.history(name))


def configure_reverse(
    store: MetadataStore, forward_name: str, options: ReverseOptions | None = None
) -> TaskRecord:
    """Create (or update the options of) the reverse task of a two-way sync. Only
    while the forward task is in incremental sync and monitoring, as the reference
    says; its objects come from the forward task and cannot be given."""
    record = store.get_task(forward_name)
    forward = TaskSpec.model_validate(record.spec)
    if forward.topology is not Topology.TWO_WAY:
        raise ConfigError(
            "this task is not a two-way sync: it has no reverse task",
            task=forward_name,
            hint="create a task with topology: two-way (and incremental in its types)",
        )
    if options is not None:
        data = dict(record.spec)
        data["reverse"] = options.model_dump(mode="json", exclude_unset=True)
        forward = parse_spec(data, f"task {forward_name} with these reverse options")
    check_forward(forward, store)
    with open_inspector(forward.source) as insp:
        catalog = insp.catalog(forward.select.candidate_databases(insp.list_databases()))
    spec = reverse_spec(forward, forward.selected_tables(catalog))
    if options is not None:
        store.update_spec(forward_name, stored_spec(forward))
    existing = store.find_task(spec.name)
    if existing is None:
        return store.create_task(spec.name, stored_spec(spec))
    store.update_spec(spec.name, stored_spec(spec))
    return store.get_task(spec.name)


# -- actions -------------------------------------------------------------------------


def start(store: MetadataStore, name: str, skip: Sequence[str] = ()) -> TaskRecord:
    """Start a task not started (or start a failed one again): its pre-checks run
    first. *skip* names failed pre-check items to skip (recorded with the task)."""
    record = store.get_task(name)
    states.check(name, record.state, State.PRECHECKING, "start")
    for item in skip:
        skip_check(store, name, item, require_failed=False)
    forward = forward_of(store, name)
    if forward is not None:
        check_forward(forward, store)
    store.set_request(name, None)
    store.set_state(name, record.state, State.PRECHECKING, "start", "start")
    return store.get_task(name)


def pause(store: MetadataStore, name: str, wait: float = 0.0) -> TaskRecord:
    """Pause an active task at its next checkpoint. Its runner (in any process)
    sees the request within a second; a task nobody runs is paused at once.
    Waits up to *wait* seconds for the runner to stop."""
    record = store.get_task(name)
    if record.state not in ACTIVE:
        states.check(name, record.state, State.PAUSED, "pause")
    if runnable(record):
        store.set_state(name, record.state, State.PAUSED, "paused (no runner)", "pause")
        return store.get_task(name)
    store.set_request(name, PAUSE)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        record = store.get_task(name)
        if record.state is State.PAUSED or record.state not in ACTIVE:
            break
        time.sleep(0.2)
    return store.get_task(name)


def resume(store: MetadataStore, name: str) -> TaskRecord:
    """Continue a paused task in the phase it was paused in."""
    record = store.get_task(name)
    if record.state is not State.PAUSED:
        raise IllegalTransition(
            f"task is {record.state.value}: cannot resume; only a paused task resumes",
            task=name,
        )
    store.set_request(name, None)
    store.set_state(name, State.PAUSED, _paused_in(store, name), "resume", "resume")
    return store.get_task(name)


def _paused_in(store: MetadataStore, name: str) -> State:
    for event in reversed(store.history(name)):
        if event.to_state == State.PAUSED.value and event.from_state:
            was = State(event.from_state)
            if was in INCREMENTAL:
                return State.INCREMENTAL_RUNNING
            if was in _RESUMABLE:
                return was
            break
    # paused before any phase began (while pre-checking): its first phase
    spec = TaskSpec.model_validate(store.get_task(name).spec)
    if MigrationType.SCHEMA in spec.types:
        return State.SCHEMA_MIGRATION
    if MigrationType.FULL in spec.types:
        return State.FULL_MIGRATION
    return State.INCREMENTAL_RUNNING


def release(store: MetadataStore, name: str) -> TaskRecord:
    """End a task for good (not started, paused, failed or completed). A forward
    task whose reverse task is not released yet keeps running it: refused."""
    record = store.get_task(name)
    spec = TaskSpec.model_validate(record.spec)
    if spec.topology is Topology.TWO_WAY:
        reverse = store.find_task(spec.reverse_name)
        if reverse is not None and reverse.state is not State.RELEASED:
            raise IllegalTransition(
                f"its reverse task {spec.reverse_name} is {reverse.state.value}: release"
                " that first",
                task=name,
            )
    if record.state in ACTIVE:
        raise IllegalTransition(
            f"task is {record.state.value}: cannot release a running task; pause it first",
            task=name,
        )
    store.set_state(name, record.state, State.RELEASED, "release", "release")
    return store.get_task(name)


def skip_check(
    store: MetadataStore, name: str, item: str, *, require_failed: bool = True
) -> TaskRecord:
    """Skip a failed pre-check item of the task; recorded with the task (its
    history says who skipped what failure), and honoured by its next start."""
    record = store.get_task(name)
    if record.state in ACTIVE or record.state in (State.COMPLETED, State.RELEASED):
        raise IllegalTransition(
            f"task is {record.state.value}: pre-check items can be skipped only before it"
            " starts or after its pre-checks failed",
            task=name,
        )
    results = {c.name: c for c in store.prechecks(name)}
    found = results.get(item)
    if found is None and require_failed:
        known = ", ".join(sorted(results)) or "none yet: start the task to run them"
        raise ConfigError(f"no pre-check item {item!r}; its items: {known}", task=name)
    if found is not None and found.status != "fail":
        raise ConfigError(
            f"pre-check item {item!r} did not fail ({found.status}): nothing to skip", task=name
        )
    detail = found.detail if found is not None else "skipped before the pre-checks ran"
    store.skip_precheck(name, item, detail)
    store.note(name, f"pre-check {item} skipped: {detail}")
    return store.get_task(name)


# -- running in the foreground -------------------------------------------------------


@dataclass
class ForegroundResult:
    state: State
    report: MigrationReport
    live: Live


def run_foreground(
    store: MetadataStore,
    name: str,
    say: Say,
    stop: threading.Event | None = None,
    *,
    live: Live | None = None,
    prechecks: Prechecks = default_prechecks,
    skip: Sequence[str] = (),
) -> ForegroundResult:
    """Run the stored task here until it ends or *stop* is set: start it if not
    started or failed, resume it if paused or cut off (kill -9). A completed task
    has nothing left to do."""
    record = store.get_task(name)
    if record.state in (State.NOT_STARTED, State.FAILED):
        start(store, name, skip)
    elif skip:
        for item in skip:
            skip_check(store, name, item, require_failed=False)
    if record.state is State.PAUSED:
        resume(store, name)
    elif record.state is State.COMPLETED:
        say(f"task {name} is completed: nothing to do (release it, or use a new name)")
        return ForegroundResult(State.COMPLETED, MigrationReport(), live or Live())
    elif record.state is State.RELEASED:
        raise ConfigError("task was released", task=name, hint="use a new task name")
    elif record.state in ACTIVE and not runnable(record):
        raise ConfigError(
            f"task is {record.state.value} and run by {record.owner}",
            task=name,
            hint="pause it there (duosync task pause), or wait for that process to end",
        )
    elif record.state in ACTIVE and owner_dead(record.owner):
        say(f"task {name}: its runner {record.owner} is gone; resuming")
    run = TaskRun(store.location, name, say, prechecks, pause_on_stop=True)
    if live is not None:
        run.live = live
    if stop is not None:
        run.stop = stop
    state = run.run()
    return ForegroundResult(state, run.report, run.live)


def run_spec(
    spec: TaskSpec,
    store: MetadataStore,
    say: Say,
    stop: threading.Event | None = None,
    *,
    live: Live | None = None,
    prechecks: Prechecks = default_prechecks,
    skip: Sequence[str] = (),
) -> ForegroundResult:
    """``duosync migrate -f``: store the task (or find it) and run it here."""
    ensure_task(store, spec)
    return run_foreground(store, spec.name, say, stop, live=live, prechecks=prechecks, skip=skip)


def run_reverse_foreground(
    store: MetadataStore,
    forward: TaskSpec,
    say: Say,
    stop: threading.Event | None = None,
    *,
    live: Live | None = None,
    prechecks: Prechecks = default_prechecks,
) -> ForegroundResult:
    """``duosync reverse -f``: configure the reverse task if needed, and run it here."""
    check_forward(forward, store)  # before anything is stored: a clear refusal
    ensure_task(store, forward)  # the reverse options may have been added
    if store.find_task(forward.reverse_name) is None:
        configure_reverse(store, forward.name)
    return run_foreground(store, forward.reverse_name, say, stop, live=live, prechecks=prechecks)
