"""The task lifecycle as data: its states and the transitions allowed between them.

A task is created ``not_started``. Starting it runs the pre-checks
(``prechecking``); then the phases of its types in order (``schema_migration``,
``full_migration``, ``incremental_running`` <-> ``incremental_monitoring``). A task
without incremental sync ends ``completed``; one with it runs until paused.

``paused`` is a task stopped on request at a checkpoint; resuming continues the
phase it was paused in. ``failed`` is a task stopped by an error (or failed
pre-checks); starting it again retries from its checkpoints. ``released`` is the
end: nothing may follow it.

Every state change goes through ``check`` (the store calls it), so a transition not
listed in ``TRANSITIONS`` raises instead of corrupting the lifecycle.
"""

from __future__ import annotations

from enum import StrEnum

from duosync.errors import ConfigError


class State(StrEnum):
    NOT_STARTED = "not_started"
    PRECHECKING = "prechecking"
    SCHEMA_MIGRATION = "schema_migration"
    FULL_MIGRATION = "full_migration"
    INCREMENTAL_RUNNING = "incremental_running"
    INCREMENTAL_MONITORING = "incremental_monitoring"
    COMPLETED = "completed"
    PAUSED = "paused"
    FAILED = "failed"
    RELEASED = "released"


S = State

#: the phases, in the order a task runs them
PHASES = (S.SCHEMA_MIGRATION, S.FULL_MIGRATION, S.INCREMENTAL_RUNNING)

#: states in which a runner owns the task (a task found in one of them without a
#: live runner was cut off, e.g. by kill -9, and is resumed)
ACTIVE = frozenset(
    {
        S.PRECHECKING,
        S.SCHEMA_MIGRATION,
        S.FULL_MIGRATION,
        S.INCREMENTAL_RUNNING,
        S.INCREMENTAL_MONITORING,
    }
)

#: the incremental sync states (the reverse task of a two-way sync needs its forward
#: task in one of them)
INCREMENTAL = frozenset({S.INCREMENTAL_RUNNING, S.INCREMENTAL_MONITORING})

_STOPS = frozenset({S.PAUSED, S.FAILED})

TRANSITIONS: dict[State, frozenset[State]] = {
    S.NOT_STARTED: frozenset({S.PRECHECKING, S.RELEASED}),
    S.PRECHECKING: frozenset({*PHASES, S.FAILED, S.PAUSED}),
    S.SCHEMA_MIGRATION: frozenset({S.FULL_MIGRATION, S.INCREMENTAL_RUNNING, S.COMPLETED, *_STOPS}),
    S.FULL_MIGRATION: frozenset({S.INCREMENTAL_RUNNING, S.COMPLETED, *_STOPS}),
    S.INCREMENTAL_RUNNING: frozenset({S.INCREMENTAL_MONITORING, *_STOPS}),
    S.INCREMENTAL_MONITORING: frozenset({S.INCREMENTAL_RUNNING, *_STOPS}),
    S.COMPLETED: frozenset({S.RELEASED}),
    # resume continues where the task paused; released gives it up
    S.PAUSED: frozenset({*PHASES, S.RELEASED, S.FAILED}),
    # start again: the pre-checks first (a fix or a skip may have happened since)
    S.FAILED: frozenset({S.PRECHECKING, S.RELEASED}),
    S.RELEASED: frozenset(),
}


class IllegalTransition(ConfigError):
    """A state change the lifecycle does not allow (the API answers 409)."""


def parse(value: str) -> State:
    try:
        return State(value)
    except ValueError:
        # a state written by another version: refuse rather than guess
        raise ConfigError(f"unknown task state {value!r} in the metadata store") from None


def allowed(current: State, new: State) -> bool:
    return new in TRANSITIONS[current]


def check(task: str, current: State, new: State, action: str = "") -> None:
    """Raise ``IllegalTransition`` unless *current* may become *new*."""
    if allowed(current, new):
        return
    what = f"cannot {action}" if action else f"cannot go to {new.value}"
    nexts = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (it is final)"
    raise IllegalTransition(
        f"task is {current.value}: {what}; from {current.value} it may go to {nexts}",
        task=task,
    )
