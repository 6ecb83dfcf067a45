"""Unit tests for the metadata store on SQLite (a temporary file, no server).

The tests marked ``@behaviour`` take only a ``store`` and are the store's contract:
``tests/integration/test_store_backends.py`` runs each of them again on MariaDB and
PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from duosync.errors import ConfigError, FatalError, RetriableError
from duosync.service.runtime.states import State
from duosync.service.store import backends as store_backends
from duosync.service.store.backends import ServerAddress, format_placeholders, open_backend
from duosync.service.store.metadata import (
    DB_FILE,
    LATEST_VERSION,
    MIGRATIONS,
    MetadataStore,
    StoreUnavailable,
    TaskExists,
    TaskNotFound,
    parse_store,
)

Check = Callable[[MetadataStore], None]
#: the tests every backend must pass (see the module docstring)
BEHAVIOUR: list[Check] = []


def behaviour(test: Check) -> Check:
    BEHAVIOUR.append(test)
    return test


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
        assert path.stat().st_mode & 0o777 == 0o600  # specs hold passwords
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    raw.close()
    assert {"tasks", "task_events", "checkpoints"} <= tables


def test_sqlite_schema_uses_sqlite_types(tmp_path: Path) -> None:
    """The tokens render to the types SQLite files were always made with."""
    with MetadataStore(tmp_path / "meta.db"):
        pass
    raw = sqlite3.connect(tmp_path / "meta.db")
    try:
        columns = {
            (table, r[1]): r[2]
            for table in ("tasks", "task_events", "chunks", "copy_conflicts")
            for r in raw.execute(f"PRAGMA table_info({table})")
        }
        sql = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'task_events'").fetchone()
    finally:
        raw.close()
    assert columns[("tasks", "name")] == "TEXT"
    assert columns[("tasks", "created_at")] == "REAL"
    assert columns[("tasks", "retry_attempts")] == "INTEGER"
    assert columns[("chunks", "rows")] == "INTEGER"
    assert columns[("copy_conflicts", "key")] == "TEXT"
    assert "INTEGER PRIMARY KEY AUTOINCREMENT" in sql[0]


def test_in_home_uses_default_file_name(tmp_path: Path) -> None:
    with MetadataStore.in_home(tmp_path) as s:
        assert s.path == tmp_path / DB_FILE
        assert s.display == str(tmp_path / DB_FILE)
        assert s.location == tmp_path / DB_FILE
        assert s.version == LATEST_VERSION


def test_a_str_without_scheme_is_a_file(tmp_path: Path) -> None:
    with MetadataStore(str(tmp_path / "meta.db")) as s:
        assert s.path == tmp_path / "meta.db"
        s.create_task("t", {})
    with MetadataStore(tmp_path / "meta.db") as s:
        assert [t.name for t in s.list_tasks()] == ["t"]


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


def test_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    path.write_bytes(b"this is no SQLite file, but long enough to have a header" * 20)
    with pytest.raises(ConfigError, match="cannot open metadata store"):
        MetadataStore(path)


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            MetadataStore(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with MetadataStore(path) as s:
        assert s.version == LATEST_VERSION


# -- errors ----------------------------------------------------------------------------


def test_locked_file_is_unavailable_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "database is locked" is a passing condition: StoreUnavailable, and the store
    works again once the other writer is done."""
    path = tmp_path / "meta.db"
    with MetadataStore(path) as s:
        s.create_task("t", {})
    monkeypatch.setattr(store_backends, "BUSY_SECONDS", 0.2)
    with MetadataStore(path) as s:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(StoreUnavailable, match="locked") as info:
                s.set_request("t", "pause")
            assert isinstance(info.value, RetriableError)
            assert str(path) in str(info.value)
            assert s.get_task("t").request is None  # readers do not wait (WAL)
        finally:
            other.execute("ROLLBACK")
            other.close()
        s.set_request("t", "pause")
        assert s.get_task("t").request == "pause"


def test_server_backends_are_chosen_by_scheme() -> None:
    # nothing is opened yet: no server needed
    assert open_backend("mariadb://u:pw@127.0.0.1:1/db").display == "mariadb://u@127.0.0.1:1/db"
    assert open_backend("mysql://u@h/db").display == "mysql://u@h:3306/db"
    assert open_backend("postgresql://u:pw@h/db").display == "postgresql://u@h:5432/db"
    assert open_backend("some/file.db").display == "some/file.db"


# -- locations -------------------------------------------------------------------------


def test_parse_store_file_and_urls(tmp_path: Path) -> None:
    assert parse_store(str(tmp_path / "x.db")) == tmp_path / "x.db"
    assert parse_store("~/x.db") == Path("~/x.db").expanduser()
    for url in (
        "mariadb://root@127.0.0.1:3306/duosync",
        "mysql://u:p%40ss@db.example.com/duosync",
        "postgresql://postgres@127.0.0.1:5432/postgres",
    ):
        assert parse_store(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite://u:s3cret@h/db", "unknown scheme"),
        ("mariadb://u:s3cret@h:99999/db", "port"),
        ("mariadb://u:s3cret@h:3306", "name one database"),
        ("mariadb://u:s3cret@h:3306/a/b", "name one database"),
        ("postgresql://:s3cret@h/db", "no user"),
        ("mariadb://u:s3cret@h/db?sslmode=x", "'?'"),
    ],
)
def test_parse_store_refuses_bad_urls_without_password(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        parse_store(url)
    assert "s3cret" not in str(info.value)


def test_server_address_display_never_has_the_password() -> None:
    address = ServerAddress.parse("mariadb://root:pa%3Ass@127.0.0.1:3306/duosync")
    assert address.password == "pa:ss"
    assert address.display == "mariadb://root@127.0.0.1:3306/duosync"
    assert "pa" not in repr(address).replace("password", "")
    assert ServerAddress.parse("postgres://u@h/d").display == "postgres://u@h:5432/d"


def test_placeholders_are_rendered_outside_literals() -> None:
    assert format_placeholders("SELECT a FROM t WHERE b = ? AND c = '?'") == (
        "SELECT a FROM t WHERE b = %s AND c = '?'"
    )
    assert format_placeholders("SELECT '50%', ? LIKE 'a%'") == "SELECT '50%%', %s LIKE 'a%%'"
    assert format_placeholders("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


# -- tasks -----------------------------------------------------------------------------


@behaviour
def test_create_get_list(store: MetadataStore) -> None:
    spec = {"source": "mysql://u@a", "tables": ["db.t"], "nested": {"x": [1, 2]}, "é": "ü"}
    rec = store.create_task("beta", spec, State.NOT_STARTED)
    assert rec.name == "beta"
    assert rec.spec == spec
    assert rec.state == State.NOT_STARTED
    assert rec.created_at == rec.updated_at
    store.create_task("alpha", {}, State.NOT_STARTED)

    got = store.get_task("beta")
    assert got == rec
    assert [t.name for t in store.list_tasks()] == ["alpha", "beta"]


@behaviour
def test_names_are_case_sensitive(store: MetadataStore) -> None:
    store.create_task("Task", {"v": 1})
    store.create_task("task", {"v": 2})
    assert store.get_task("Task").spec == {"v": 1}
    assert store.find_task("TASK") is None
    assert [t.name for t in store.list_tasks()] == ["Task", "task"]


@behaviour
def test_list_empty(store: MetadataStore) -> None:
    assert store.list_tasks() == []


@behaviour
def test_duplicate_name_refused(store: MetadataStore) -> None:
    store.create_task("t", {"v": 1}, State.NOT_STARTED)
    with pytest.raises(TaskExists, match="already exists") as info:
        store.create_task("t", {"v": 2}, State.PRECHECKING)
    assert info.value.task == "t"
    # the first definition is untouched and no extra history was written
    assert store.get_task("t").spec == {"v": 1}
    assert store.get_task("t").state == State.NOT_STARTED
    assert len(store.history("t")) == 1


@behaviour
def test_get_unknown(store: MetadataStore) -> None:
    with pytest.raises(TaskNotFound, match="no task named 'ghost'") as info:
        store.get_task("ghost")
    assert info.value.task == "ghost"
    assert store.find_task("ghost") is None


@behaviour
def test_update_spec(store: MetadataStore) -> None:
    before = store.create_task("t", {"v": 1})
    store.update_spec("t", {"v": 2, "more": [1]})
    after = store.get_task("t")
    assert after.spec == {"v": 2, "more": [1]}
    assert after.updated_at >= before.updated_at


@behaviour
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


@behaviour
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


@behaviour
def test_set_state_unknown_task(store: MetadataStore) -> None:
    with pytest.raises(ConfigError, match="ghost"):
        store.set_state("ghost", State.NOT_STARTED, State.PRECHECKING)
    assert store.history("ghost") == []


@behaviour
def test_failed_keeps_the_error_until_left(store: MetadataStore) -> None:
    store.create_task("t", {})
    store.enter_state("t", State.PRECHECKING)
    store.enter_state("t", State.PRECHECKING)  # already there: nothing
    store.enter_state("t", State.FAILED, "boom")
    failed = store.get_task("t")
    assert (failed.state, failed.error) == (State.FAILED, "boom")
    assert failed.last_error_at == failed.updated_at
    assert not failed.healthy
    store.enter_state("t", State.PRECHECKING)
    again = store.get_task("t")
    assert again.error is None
    assert again.last_error_at == failed.last_error_at  # kept: when it last failed
    assert [e.to_state for e in store.history("t")] == [
        "not_started",
        "prechecking",
        "failed",
        "prechecking",
    ]


@behaviour
def test_history_unknown_is_empty(store: MetadataStore) -> None:
    assert store.history("nobody") == []
    assert store.history("nobody", limit=3) == []


@behaviour
def test_history_limit_keeps_the_last(store: MetadataStore) -> None:
    store.create_task("t", {})
    for i in range(5):
        store.note("t", f"note {i}")
    assert [e.detail for e in store.history("t", limit=2)] == ["note 3", "note 4"]
    assert len(store.history("t")) == 6
    assert len(store.history("t", limit=100)) == 6
    last = store.history("t", limit=1)[0]
    assert (last.from_state, last.to_state, last.kind) == ("not_started", "not_started", "note")


# -- self-healing ----------------------------------------------------------------------


@behaviour
def test_retry_streak_and_recovery(store: MetadataStore) -> None:
    store.create_task("t", {})
    store.record_retry("t", 1, 100.0, 101.0, "lost connection")
    store.record_retry("t", 2, 100.0, 103.0, "lost connection")
    rec = store.get_task("t")
    assert (rec.retry_attempts, rec.retry_since, rec.retry_next) == (2, 100.0, 103.0)
    assert (rec.retry_error, rec.retries_total) == ("lost connection", 2)
    assert rec.last_error_at is not None
    assert not rec.healthy
    store.record_recovered("t", "copying again")
    rec = store.get_task("t")
    assert (rec.retry_attempts, rec.retry_since, rec.retry_error) == (0, None, None)
    assert rec.retries_total == 2 and rec.healthy
    assert [e.kind for e in store.history("t")] == ["state", "retry", "retry", "recovered"]
    store.record_retry("t", 1, 200.0, 201.0, "again")
    store.clear_retry("t")
    assert store.get_task("t").retry_attempts == 0
    assert store.get_task("t").retries_total == 3


# -- runner leases and requests --------------------------------------------------------


@behaviour
def test_claim_renew_release(store: MetadataStore) -> None:
    store.create_task("t", {})
    assert store.claim("t", "a", 60)
    assert store.claim("t", "a", 60)  # renewing is claiming it again
    assert not store.claim("t", "b", 60)
    assert store.get_task("t").owner == "a"
    assert store.claim("t", "b", 60, stale="a")  # a is known dead
    assert store.get_task("t").owner == "b"
    store.unclaim("t", "a")  # not a's any more: nothing
    assert store.get_task("t").owner == "b"
    store.unclaim("t", "b")
    assert store.get_task("t").owner is None
    assert store.claim("t", "c", -1)  # an expired lease is anyone's
    assert store.claim("t", "d", 60)
    assert not store.claim("ghost", "a", 60)


@behaviour
def test_requests(store: MetadataStore) -> None:
    store.create_task("t", {})
    store.set_request("t", "pause")
    assert store.get_task("t").request == "pause"
    store.set_request("t", None)
    assert store.get_task("t").request is None


# -- pre-checks ------------------------------------------------------------------------


@behaviour
def test_prechecks_and_skips(store: MetadataStore) -> None:
    store.create_task("t", {})
    store.save_prechecks("t", [("binlog", "fail", "off"), ("keys", "pass", "")])
    store.skip_precheck("t", "binlog", "off")
    store.skip_precheck("t", "binlog", "still off")  # again: replaces
    checks = store.prechecks("t")
    assert [(c.name, c.status, c.detail, c.skipped) for c in checks] == [
        ("binlog", "fail", "off", True),
        ("keys", "pass", "", False),
    ]
    assert store.precheck_skips("t") == {"binlog": "still off"}
    store.save_prechecks("t", [("keys", "warn", "w")])
    assert [(c.name, c.status) for c in store.prechecks("t")] == [("keys", "warn")]
    store.save_prechecks("t", [])
    assert store.prechecks("t") == []


# -- checkpoints -----------------------------------------------------------------------


@behaviour
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


@behaviour
def test_checkpoint_of_unknown_task_refused(store: MetadataStore) -> None:
    with pytest.raises(ConfigError, match="no task named 'ghost'") as info:
        store.save_checkpoint("ghost", "binlog", {"pos": 1})
    assert info.value.task == "ghost"
    assert store.load_checkpoint("ghost", "binlog") is None


@behaviour
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


# -- full-migration chunks -------------------------------------------------------------


@behaviour
def test_chunk_plan_and_progress(store: MetadataStore) -> None:
    store.create_task("t", {})
    assert store.chunk_plan("t", "db.a") == []
    store.save_chunk_plan(
        "t", "db.a", [(0, None, [10]), (1, [10], [20, "x"]), (2, [20, "x"], None)]
    )
    store.save_chunk_plan("t", "db.b", [(0, None, None)])
    store.mark_chunk_done("t", "db.a", 1, 1234)
    assert store.chunk_plan("t", "db.a") == [
        (0, None, [10], False, 0),
        (1, [10], [20, "x"], True, 1234),
        (2, [20, "x"], None, False, 0),
    ]
    assert store.copied_tables("t") == frozenset({"db.a", "db.b"})
    store.save_chunk_plan("t", "db.a", [(0, None, None)])  # planned again: replaced
    assert store.chunk_plan("t", "db.a") == [(0, None, None, False, 0)]
    assert store.copied_tables("other") == frozenset()


@behaviour
def test_copy_conflicts(store: MetadataStore) -> None:
    store.create_task("t", {})
    store.record_copy_conflict("t", "db.a", [1, "k"], "duplicate key")
    store.record_copy_conflict("t", "db.a", {"id": 2}, "refused")
    assert store.copy_conflicts("t") == [
        ("db.a", [1, "k"], "duplicate key"),
        ("db.a", {"id": 2}, "refused"),
    ]
    assert store.copy_conflicts("other") == []


@behaviour
def test_delete_task_cascades(store: MetadataStore) -> None:
    store.create_task("gone", {}, State.NOT_STARTED)
    store.set_state("gone", State.NOT_STARTED, State.PRECHECKING)
    store.save_checkpoint("gone", "binlog", {"pos": 1})
    store.save_checkpoint("gone", "snapshot:db.t", {"chunk": 1})
    store.save_chunk_plan("gone", "db.t", [(0, None, None)])
    store.record_copy_conflict("gone", "db.t", [1], "dup")
    store.save_prechecks("gone", [("x", "fail", "d")])
    store.skip_precheck("gone", "x", "d")
    store.create_task("kept", {}, State.NOT_STARTED)
    store.save_checkpoint("kept", "binlog", {"pos": 9})

    store.delete_task("gone")

    with pytest.raises(ConfigError):
        store.get_task("gone")
    assert store.history("gone") == []
    assert store.load_checkpoint("gone", "binlog") is None
    assert store.load_checkpoint("gone", "snapshot:db.t") is None
    assert store.chunk_plan("gone", "db.t") == []
    assert store.copy_conflicts("gone") == []
    assert store.prechecks("gone") == []
    assert store.precheck_skips("gone") == {}
    # rows of other tasks stay
    assert [t.name for t in store.list_tasks()] == ["kept"]
    assert store.load_checkpoint("kept", "binlog") == {"pos": 9}
    assert len(store.history("kept")) == 1
    # a task of the same name starts afresh
    store.create_task("gone", {})
    assert len(store.history("gone")) == 1


def test_delete_leaves_nothing_in_the_file(store: MetadataStore) -> None:
    store.create_task("gone", {})
    store.save_checkpoint("gone", "binlog", {"pos": 1})
    store.delete_task("gone")
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("SELECT count(*) FROM task_events WHERE task='gone'").fetchone()[0] == 0
        assert raw.execute("SELECT count(*) FROM checkpoints WHERE task='gone'").fetchone()[0] == 0
    raw.close()


@behaviour
def test_delete_unknown_task_is_noop(store: MetadataStore) -> None:
    store.create_task("t", {}, State.NOT_STARTED)
    store.delete_task("ghost")
    assert [t.name for t in store.list_tasks()] == ["t"]


# -- threads ---------------------------------------------------------------------------


@behaviour
def test_threads_have_connections_of_their_own(store: MetadataStore) -> None:
    store.create_task("t", {})
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                store.note("t", f"thread {i} note {j}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.history("t")) == 1 + 4 * 5
    store.close()  # closes every thread's connection; a later use opens a new one
    assert len(store.list_tasks()) == 1
