"""Unit tests for the SQLite metadata store (a temporary file, no server)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from duosync.errors import ConfigError, FatalError
from duosync.service.states import State
from duosync.service.store import DB_FILE, LATEST_VERSION, MIGRATIONS, MetadataStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    with MetadataStore(tmp_path / "meta.db") as s:
        yield s


# -- schema versions -------------------------------------------------------------------


def test_migrations_are_numbered_in_order() -> None:
    versions = [v for v, _what, _stmts in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert versions[-1] == LATEST_VERSION


def test_new_file_migrates_to_latest(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "meta.db"
    with MetadataStore(path) as s:
        assert path.exists()
        assert s.version == LATEST_VERSION
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    raw.close()
    assert {"tasks", "task_events", "checkpoints"} <= tables


def test_in_home_uses_default_file_name(tmp_path: Path) -> None:
    with MetadataStore.in_home(tmp_path) as s:
        assert s.path == tmp_path / DB_FILE
        assert s.version == LATEST_VERSION


def test_reopen_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    with MetadataStore(path) as s:
        s.create_task("keep", {"k": 1}, State.NOT_STARTED)
        assert s.migrate() == []
    with MetadataStore(path) as s:
        assert s.version == LATEST_VERSION
        assert s.migrate() == []
        assert s.get_task("keep").spec == {"k": 1}


def test_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(ConfigError) as info:
        MetadataStore(path)
    text = str(info.value)
    assert str(path) in text
    assert str(LATEST_VERSION + 1) in text
    assert info.value.hint is not None
    # the file is left as it was
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION + 1
        assert raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        raw.close()


# -- tasks -----------------------------------------------------------------------------


def test_create_get_list(store: MetadataStore) -> None:
    spec = {"source": "mysql://u@a", "tables": ["db.t"], "nested": {"x": [1, 2]}}
    rec = store.create_task("beta", spec, State.NOT_STARTED)
    assert rec.name == "beta"
    assert rec.spec == spec
    assert rec.state == State.NOT_STARTED
    assert rec.created_at == rec.updated_at
    store.create_task("alpha", {}, State.NOT_STARTED)

    got = store.get_task("beta")
    assert got == rec
    assert [t.name for t in store.list_tasks()] == ["alpha", "beta"]


def test_list_empty(store: MetadataStore) -> None:
    assert store.list_tasks() == []


def test_duplicate_name_refused(store: MetadataStore) -> None:
    store.create_task("t", {"v": 1}, State.NOT_STARTED)
    with pytest.raises(ConfigError, match="already exists") as info:
        store.create_task("t", {"v": 2}, State.PRECHECKING)
    assert info.value.task == "t"
    # the first definition is untouched and no extra history was written
    assert store.get_task("t").spec == {"v": 1}
    assert store.get_task("t").state == State.NOT_STARTED
    assert len(store.history("t")) == 1


def test_get_unknown(store: MetadataStore) -> None:
    with pytest.raises(ConfigError, match="no task named 'ghost'") as info:
        store.get_task("ghost")
    assert info.value.task == "ghost"


def test_set_state_records_history(store: MetadataStore) -> None:
    store.create_task("t", {}, State.NOT_STARTED)
    store.set_state("t", State.NOT_STARTED, State.PRECHECKING, "started by test")
    assert store.get_task("t").state == State.PRECHECKING

    events = store.history("t")
    assert [(e.from_state, e.to_state, e.detail) for e in events] == [
        (None, "not_started", ""),
        ("not_started", "prechecking", "started by test"),
    ]
    assert events[0].at <= events[1].at
    assert store.get_task("t").updated_at == events[1].at


def test_set_state_wrong_expected(store: MetadataStore) -> None:
    rec = store.create_task("t", {}, State.NOT_STARTED)
    with pytest.raises(FatalError) as info:
        store.set_state("t", State.PRECHECKING, State.PAUSED, "should not happen")
    assert info.value.task == "t"
    assert "'not_started'" in str(info.value)
    assert "'prechecking'" in str(info.value)
    # nothing changed
    assert store.get_task("t") == rec
    assert [(e.from_state, e.to_state) for e in store.history("t")] == [(None, "not_started")]


def test_set_state_unknown_task(store: MetadataStore) -> None:
    with pytest.raises(ConfigError, match="ghost"):
        store.set_state("ghost", State.NOT_STARTED, State.PRECHECKING)
    assert store.history("ghost") == []


def test_history_unknown_is_empty(store: MetadataStore) -> None:
    assert store.history("nobody") == []


# -- checkpoints -----------------------------------------------------------------------


def test_checkpoint_save_overwrite_load(store: MetadataStore) -> None:
    store.create_task("t", {}, State.NOT_STARTED)
    assert store.load_checkpoint("t", "binlog") is None

    store.save_checkpoint("t", "binlog", {"file": "mysql-bin.000001", "pos": 4})
    assert store.load_checkpoint("t", "binlog") == {"file": "mysql-bin.000001", "pos": 4}

    store.save_checkpoint("t", "binlog", {"file": "mysql-bin.000002", "pos": 154})
    assert store.load_checkpoint("t", "binlog") == {"file": "mysql-bin.000002", "pos": 154}

    store.save_checkpoint("t", "snapshot:db.t", {"chunk": 3})
    assert store.load_checkpoint("t", "snapshot:db.t") == {"chunk": 3}
    assert store.load_checkpoint("t", "binlog") == {"file": "mysql-bin.000002", "pos": 154}
    assert store.load_checkpoint("other", "binlog") is None


def test_checkpoints_are_per_task(store: MetadataStore) -> None:
    store.create_task("a", {}, State.NOT_STARTED)
    store.create_task("b", {}, State.NOT_STARTED)
    store.save_checkpoint("a", "binlog", {"pos": 1})
    store.save_checkpoint("b", "binlog", {"pos": 2})
    assert store.load_checkpoint("a", "binlog") == {"pos": 1}
    assert store.load_checkpoint("b", "binlog") == {"pos": 2}


def test_checkpoint_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    with MetadataStore(path) as s:
        s.create_task("t", {}, State.NOT_STARTED)
        s.save_checkpoint("t", "binlog", {"gtid": "0-1-42"})
    with MetadataStore(path) as s:
        assert s.load_checkpoint("t", "binlog") == {"gtid": "0-1-42"}


def test_delete_task_cascades(store: MetadataStore) -> None:
    store.create_task("gone", {}, State.NOT_STARTED)
    store.set_state("gone", State.NOT_STARTED, State.PRECHECKING)
    store.save_checkpoint("gone", "binlog", {"pos": 1})
    store.save_checkpoint("gone", "snapshot:db.t", {"chunk": 1})
    store.create_task("kept", {}, State.NOT_STARTED)
    store.save_checkpoint("kept", "binlog", {"pos": 9})

    store.delete_task("gone")

    with pytest.raises(ConfigError):
        store.get_task("gone")
    assert store.history("gone") == []
    assert store.load_checkpoint("gone", "binlog") is None
    assert store.load_checkpoint("gone", "snapshot:db.t") is None
    # rows of other tasks stay
    assert [t.name for t in store.list_tasks()] == ["kept"]
    assert store.load_checkpoint("kept", "binlog") == {"pos": 9}
    assert len(store.history("kept")) == 1
    # and nothing orphaned is left in the file
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("SELECT count(*) FROM task_events WHERE task='gone'").fetchone()[0] == 0
        assert raw.execute("SELECT count(*) FROM checkpoints WHERE task='gone'").fetchone()[0] == 0
    raw.close()


def test_delete_unknown_task_is_noop(store: MetadataStore) -> None:
    store.create_task("t", {}, State.NOT_STARTED)
    store.delete_task("ghost")
    assert [t.name for t in store.list_tasks()] == ["t"]
