"""The task lifecycle: transitions as data, enforced by the store."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from duosync.errors import ConfigError
from duosync.service.runtime import states
from duosync.service.runtime.states import ACTIVE, TRANSITIONS, IllegalTransition, State
from duosync.service.store.metadata import MetadataStore


def test_every_state_has_a_row_and_released_is_final() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.RELEASED] == frozenset()
    for targets in TRANSITIONS.values():
        assert State.NOT_STARTED not in targets  # nothing goes back to the start


def test_a_task_s_whole_life_is_allowed() -> None:
    life = [
        State.NOT_STARTED,
        State.PRECHECKING,
        State.SCHEMA_MIGRATION,
        State.FULL_MIGRATION,
        State.INCREMENTAL_RUNNING,
        State.INCREMENTAL_MONITORING,
        State.INCREMENTAL_RUNNING,
        State.PAUSED,
        State.INCREMENTAL_RUNNING,
        State.FAILED,
        State.PRECHECKING,
        State.FULL_MIGRATION,
        State.COMPLETED,
        State.RELEASED,
    ]
    for a, b in itertools.pairwise(life):
        states.check("t", a, b)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (State.NOT_STARTED, State.FULL_MIGRATION),  # pre-checks first
        (State.NOT_STARTED, State.PAUSED),
        (State.FULL_MIGRATION, State.SCHEMA_MIGRATION),  # phases never go back
        (State.INCREMENTAL_RUNNING, State.COMPLETED),  # incremental sync never ends itself
        (State.COMPLETED, State.PRECHECKING),
        (State.RELEASED, State.PRECHECKING),
        (State.PAUSED, State.INCREMENTAL_MONITORING),
        (State.FAILED, State.INCREMENTAL_RUNNING),  # a failed task starts again via pre-checks
    ],
)
def test_impossible_transitions_raise(current: State, new: State) -> None:
    with pytest.raises(IllegalTransition) as info:
        states.check("t", current, new, "do it")
    message = str(info.value)
    assert f"task is {current.value}: cannot do it" in message
    assert info.value.task == "t"
    assert isinstance(info.value, ConfigError)


def test_the_message_lists_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition, match="it may go to nothing"):
        states.check("t", State.RELEASED, State.PRECHECKING)
    with pytest.raises(IllegalTransition, match=r"it may go to precheck.*released"):
        states.check("t", State.NOT_STARTED, State.COMPLETED)


def test_the_store_enforces_the_lifecycle(tmp_path: Path) -> None:
    with MetadataStore(tmp_path / "s.db") as store:
        store.create_task("t", {})
        with pytest.raises(IllegalTransition):
            store.set_state("t", State.NOT_STARTED, State.INCREMENTAL_RUNNING)
        with pytest.raises(IllegalTransition):
            store.enter_state("t", State.COMPLETED)
        assert store.get_task("t").state is State.NOT_STARTED
        assert [e.to_state for e in store.history("t")] == ["not_started"]
        store.enter_state("t", State.PRECHECKING)
        store.enter_state("t", State.FAILED, "pre-checks failed: x")
        assert store.get_task("t").error == "pre-checks failed: x"
        store.enter_state("t", State.PRECHECKING)
        assert store.get_task("t").error is None  # leaving failed clears the error


def test_active_states_are_the_running_ones() -> None:
    assert State.PAUSED not in ACTIVE and State.FAILED not in ACTIVE
    assert State.INCREMENTAL_MONITORING in ACTIVE and State.PRECHECKING in ACTIVE


def test_old_stopped_state_becomes_paused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with MetadataStore(path) as store:
        store.create_task("t", {})
    db = sqlite3.connect(path)
    # a store written before the lifecycle: version 2, a task left 'stopped'
    db.execute("UPDATE tasks SET state = 'stopped'")
    db.execute("PRAGMA user_version = 2")
    for sql in (
        "DROP TABLE prechecks",
        "DROP TABLE precheck_skips",
        "ALTER TABLE tasks DROP COLUMN owner",
        "ALTER TABLE tasks DROP COLUMN lease_until",
        "ALTER TABLE tasks DROP COLUMN request",
        "ALTER TABLE tasks DROP COLUMN error",
        # and before self-healing (version 4)
        "ALTER TABLE tasks DROP COLUMN retry_attempts",
        "ALTER TABLE tasks DROP COLUMN retry_since",
        "ALTER TABLE tasks DROP COLUMN retry_next",
        "ALTER TABLE tasks DROP COLUMN retry_error",
        "ALTER TABLE tasks DROP COLUMN retries_total",
        "ALTER TABLE tasks DROP COLUMN last_error_at",
        "ALTER TABLE task_events DROP COLUMN kind",
    ):
        db.execute(sql)
    db.commit()
    db.close()
    with MetadataStore(path) as store:
        assert store.get_task("t").state is State.PAUSED
