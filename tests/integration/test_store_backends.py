"""The metadata store on server databases (MariaDB, PostgreSQL), as a cluster uses it.

Every behaviour test of ``tests/unit/test_store.py`` runs again here on each server;
then what only a shared server store has: several processes (two ``MetadataStore``
objects on one database) racing for the same row, migrating at once, a killed
connection or a restarted server, and passwords that never show.

Making and migrating a database costs a second or so per test on a busy machine, so
the tests share one migrated store database per server (``database``), emptied
before each test: its rows deleted, in foreign-key order, after ending any session
an earlier test left on it. The tests about migrating (first opens, a newer or a
half-applied schema, a user of its own migrating) get an empty database of their
own, made and dropped here (``new_database``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest
from fastapi.testclient import TestClient

from duosync.api.app import create_app
from duosync.config import Endpoint
from duosync.errors import ConfigError, FatalError, RetriableError
from duosync.sandbox import POSTGRES, Sandbox
from duosync.service.runtime.states import State
from duosync.service.store import backends as store_backends
from duosync.service.store import errors as store_errors
from duosync.service.store.backends import VERSION_TABLE
from duosync.service.store.metadata import (
    LATEST_VERSION,
    MetadataStore,
    StoreUnavailable,
    TaskExists,
)
from tests.faults import kill9, restart
from tests.unit.test_store import BEHAVIOUR, Check

pytestmark = pytest.mark.integration

SECRET = "St0re-Secret-pw"


class StoreServer:
    """A server holding the tests' stores: databases made, dropped and disturbed
    by the test, through plain admin connections (never the code under test)."""

    scheme: str

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        raise NotImplementedError

    def create(self, database: str) -> None:
        raise NotImplementedError

    def drop(self, database: str) -> None:
        raise NotImplementedError

    def sql(self, database: str, statements: list[str]) -> None:
        raise NotImplementedError

    def rows(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def kill_connections(self, database: str) -> int:
        """End every session on *database* (as a DBA, or a failover, would); return
        once they are gone, with how many there were."""
        raise NotImplementedError

    def tables(self, database: str) -> list[str]:
        """The store's tables in *database*, each after every table that refers to
        it (the order to empty them in), without the version table."""
        raise NotImplementedError

    def empty(self, database: str, tables: list[str]) -> int:
        """End the sessions left on *database* (a store not closed, a row lock
        held), delete every row of *tables* in one transaction; the schema
        version found there."""
        raise NotImplementedError


def _referrers_first(tables: Iterable[str], references: Iterable[tuple[str, str]]) -> list[str]:
    """*tables* ordered so that no table comes after one it refers to
    (*references*: (table, the table it refers to))."""
    left = set(tables) - {VERSION_TABLE}
    edges = [(child, parent) for child, parent in references if child != parent]
    order: list[str] = []
    while left:
        free = sorted(t for t in left if not any(p == t and c in left for c, p in edges))
        assert free, f"circular foreign keys among {sorted(left)}"
        order += free
        left -= set(free)
    assert "tasks" in order and order[-1] == "tasks", order
    return order


@dataclass
class MariaDBServer(StoreServer):
    endpoint: Endpoint
    scheme = "mariadb"

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        auth = user or "root"
        if password is not None:
            auth += f":{password}"
        return f"mariadb://{auth}@{self.endpoint.host}:{self.endpoint.port}/{database}"

    def connect(self, database: str | None = None) -> pymysql.Connection[Any]:
        """An admin session (autocommit). Without TLS: PyMySQL would otherwise make
        a TLS context, loading the system's CA certificates, for every session
        (tens of ms of CPU each), which a test makes many of."""
        return pymysql.connect(
            host=self.endpoint.host,
            port=self.endpoint.port,
            user=self.endpoint.user,
            password=self.endpoint.resolved_password(),
            database=database,
            autocommit=True,
            charset="utf8mb4",
            ssl_disabled=True,
        )

    def run(self, statements: list[str], database: str | None = None) -> None:
        with self.connect(database) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def create(self, database: str) -> None:
        self.run([f"DROP DATABASE IF EXISTS `{database}`", f"CREATE DATABASE `{database}`"])

    def drop(self, database: str) -> None:
        self.run([f"DROP DATABASE IF EXISTS `{database}`"])

    def sql(self, database: str, statements: list[str]) -> None:
        self.run(statements, database)

    def rows(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    # sessions with no default database (as these admin ones) are on none
    _SESSIONS = "SELECT id FROM information_schema.processlist WHERE db = %s"

    def kill_connections(self, database: str) -> int:
        with self.connect() as conn, conn.cursor() as cur:
            return self._kill(cur, database)

    def _kill(self, cur: Any, database: str) -> int:
        cur.execute(self._SESSIONS, (database,))
        ids = [int(r[0]) for r in cur.fetchall()]
        for i in ids:
            with contextlib.suppress(pymysql.err.OperationalError):  # 1094: gone already
                cur.execute(f"KILL {i}")

        def gone() -> bool:
            cur.execute(self._SESSIONS, (database,))
            return not cur.fetchall()

        _until(gone)
        return len(ids)

    def tables(self, database: str) -> list[str]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (database,),
            )
            names = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT table_name, referenced_table_name FROM"
                " information_schema.referential_constraints WHERE constraint_schema = %s",
                (database,),
            )
            references = [(r[0], r[1]) for r in cur.fetchall()]
        return _referrers_first(names, references)

    def empty(self, database: str, tables: list[str]) -> int:
        with self.connect() as conn, conn.cursor() as cur:
            self._kill(cur, database)
            cur.execute("START TRANSACTION")
            for table in tables:
                cur.execute(f"DELETE FROM `{database}`.`{table}`")
            cur.execute("COMMIT")
            cur.execute(f"SELECT version FROM `{database}`.{VERSION_TABLE}")
            return int(cur.fetchone()[0])


@dataclass
class PostgresServer(StoreServer):
    admin_url: str
    scheme = "postgresql"

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        parts = urlsplit(self.admin_url)
        auth = user or parts.username or "postgres"
        if password is not None:
            auth += f":{password}"
        return f"postgresql://{auth}@{parts.hostname}:{parts.port}/{database}"

    def _admin(self, database: str | None = None) -> psycopg.Connection[Any]:
        url = self.admin_url if database is None else self.url(database)
        return psycopg.connect(url, autocommit=True)

    def create(self, database: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')

    def drop(self, database: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def sql(self, database: str, statements: list[str]) -> None:
        with self._admin(database) as conn:
            for statement in statements:
                conn.execute(statement)

    def rows(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        with self._admin(database) as conn:
            return list(conn.execute(sql).fetchall())

    def kill_connections(self, database: str) -> int:
        listed = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        with self._admin() as conn:
            pids = [int(r[0]) for r in conn.execute(listed, (database,)).fetchall()]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            _until(lambda: not conn.execute(listed, (database,)).fetchall())
        return len(pids)

    def tables(self, database: str) -> list[str]:
        names = self.rows(
            database, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        references = self.rows(
            database,
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
        )
        return _referrers_first([r[0] for r in names], [(r[0], r[1]) for r in references])

    def empty(self, database: str, tables: list[str]) -> int:
        others = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        with self._admin(database) as conn:
            pids = [int(r[0]) for r in conn.execute(others).fetchall()]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            if pids:
                _until(lambda: not conn.execute(others).fetchall())
            with conn.transaction():
                for table in tables:
                    conn.execute(f'DELETE FROM "{table}"')
            row = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
            assert row is not None
            return int(row[0])


def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(params=["mariadb", "postgresql"])
def server(request: pytest.FixtureRequest) -> StoreServer:
    # asked for lazily: a run of the MariaDB tests alone starts no PostgreSQL
    if request.param == "mariadb":
        return MariaDBServer(request.getfixturevalue("mariadb1"))
    return PostgresServer(request.getfixturevalue("postgres"))


class SharedStores:
    """One migrated store database per server, made the first time a test asks for
    it and emptied for each later one; dropped at the end of the module."""

    NAME = "st_shared_store"

    def __init__(self) -> None:
        #: scheme: (the server, the order to empty its store's tables in)
        self._made: dict[str, tuple[StoreServer, list[str]]] = {}

    def empty(self, server: StoreServer) -> str:
        """The server's shared store database, migrated, with no rows and no other
        session on it."""
        made = self._made.get(server.scheme)
        if made is None:
            server.create(self.NAME)
            with MetadataStore(server.url(self.NAME)) as store:
                assert store.version == LATEST_VERSION
            self._made[server.scheme] = (server, server.tables(self.NAME))
        else:
            # a test that changed the version makes a database of its own
            assert server.empty(self.NAME, made[1]) == LATEST_VERSION
        return self.NAME

    def drop_all(self) -> None:
        for server, _tables in self._made.values():
            server.drop(self.NAME)


@pytest.fixture(scope="module")
def shared_stores() -> Iterator[SharedStores]:
    stores = SharedStores()
    yield stores
    stores.drop_all()


@pytest.fixture
def database(server: StoreServer, shared_stores: SharedStores) -> str:
    """The server's shared store database, migrated and empty (close the test's
    stores: the next test ends the sessions left on it)."""
    return shared_stores.empty(server)


@pytest.fixture
def new_database(server: StoreServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database named after the test; dropped afterwards (close the
    test's stores first: PostgreSQL drops no database in use)."""
    node = request.node.name
    base = re.sub(r"[^a-z0-9_]", "_", node.lower())[:48]
    name = f"st_{base}_{zlib.crc32(node.encode()):08x}"
    server.create(name)
    yield name
    server.drop(name)


@pytest.fixture
def store_url(server: StoreServer, database: str) -> str:
    return server.url(database)


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    with MetadataStore(store_url) as s:
        yield s


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run *calls* at once, one thread each; what each returned or raised."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class _Racers:
    """Threads that run calls at once, the *i*-th call of every race on the *i*-th
    thread: as in so many processes, each thread keeps its store connections from
    one race to the next, so what races is the statements, not the connects."""

    def __init__(self, n: int) -> None:
        self._jobs: list[queue.Queue[tuple[threading.Barrier, Callable[[], Any]] | None]] = [
            queue.Queue() for _ in range(n)
        ]
        self._done: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _work(self, i: int) -> None:
        while (job := self._jobs[i].get()) is not None:
            start, call = job
            try:
                start.wait(60)
                result = call()
            except BaseException as exc:
                result = exc
            self._done.put((i, result))

    def race(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run *calls* at once; what each returned or raised."""
        assert len(calls) == len(self._jobs)
        start = threading.Barrier(len(calls))
        for jobs, call in zip(self._jobs, calls, strict=True):
            jobs.put((start, call))
        results: list[Any] = [None] * len(calls)
        for _ in calls:
            i, result = self._done.get(timeout=60)
            results[i] = result
        return results

    def __enter__(self) -> _Racers:
        return self

    def __exit__(self, *_exc: object) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for t in self._threads:
            t.join(60)


# -- the store's contract, on each server ---------------------------------------------


@pytest.mark.parametrize("check", BEHAVIOUR, ids=[c.__name__ for c in BEHAVIOUR])
def test_behaviour(store: MetadataStore, check: Check) -> None:
    check(store)


# -- schema ---------------------------------------------------------------------------


def test_schema_version_is_kept_in_a_table(
    server: StoreServer, database: str, store: MetadataStore
) -> None:
    assert store.version == LATEST_VERSION
    assert store.migrate() == []
    rows = server.rows(database, "SELECT version FROM duosync_store_version")
    assert rows == [(LATEST_VERSION,)]
    store.close()
    with MetadataStore(server.url(database)) as again:
        assert again.migrate() == []


def test_naming_a_server_store(server: StoreServer, database: str, store: MetadataStore) -> None:
    url = server.url(database)
    assert store.display == url  # no password in it to hide
    assert store.location == url
    assert repr(store) == f"MetadataStore({url!r})"
    with pytest.raises(AttributeError, match="server database"):
        _ = store.path


def test_newer_store_is_refused(server: StoreServer, new_database: str) -> None:
    database = new_database
    with MetadataStore(server.url(database)):
        pass
    server.sql(database, [f"UPDATE duosync_store_version SET version = {LATEST_VERSION + 1}"])
    with pytest.raises(ConfigError, match=f"schema version {LATEST_VERSION + 1}") as info:
        MetadataStore(server.url(database))
    assert server.url(database) in str(info.value)
    rows = server.rows(database, "SELECT version FROM duosync_store_version")
    assert rows == [(LATEST_VERSION + 1,)]


def test_concurrent_first_opens_migrate_once(server: StoreServer, new_database: str) -> None:
    """Several nodes starting at once on an empty store database: one migrates,
    the others wait for it and find the schema done."""
    database = new_database
    url = server.url(database)

    def open_and_close() -> int:
        with MetadataStore(url) as s:
            return s.version

    assert _race(*[open_and_close] * 4) == [LATEST_VERSION] * 4
    assert server.rows(database, "SELECT version FROM duosync_store_version") == [(LATEST_VERSION,)]
    with MetadataStore(url) as s:
        s.create_task("t", {})
        assert len(s.history("t")) == 1


def test_concurrent_migrate_calls(server: StoreServer, database: str) -> None:
    with MetadataStore(server.url(database)) as a, MetadataStore(server.url(database)) as b:
        assert _race(a.migrate, b.migrate, a.migrate) == [[], [], []]


def test_a_half_applied_mariadb_step_is_completed(mariadb1: Endpoint) -> None:
    """MariaDB commits each DDL statement: a crash inside a step leaves part of it
    applied and the version before it. The next start runs the step again,
    skipping what is there."""
    maria = MariaDBServer(mariadb1)
    name = "st_half_applied_step"
    maria.create(name)
    try:
        with MetadataStore(maria.url(name)) as s:
            s.create_task("t", {})
        maria.sql(
            name,
            [
                f"UPDATE duosync_store_version SET version = {LATEST_VERSION - 1}",
                # the last step's first statements ran, the rest did not
                "ALTER TABLE tasks DROP COLUMN last_error_at",
                "ALTER TABLE task_events DROP COLUMN kind",
            ],
        )
        with MetadataStore(maria.url(name)) as s:
            assert s.version == LATEST_VERSION
            s.record_retry("t", 1, 1.0, 2.0, "lost")
            assert s.get_task("t").last_error_at is not None
            assert [e.kind for e in s.history("t")] == ["state", "retry"]
    finally:
        maria.drop(name)


# -- several processes on one store ---------------------------------------------------


def test_two_processes_race_for_a_lease(store_url: str) -> None:
    with MetadataStore(store_url) as a, MetadataStore(store_url) as b, _Racers(2) as racers:
        for i in range(10):
            a.create_task(f"r{i}", {})
            won = racers.race(
                lambda i=i: a.claim(f"r{i}", "node-a", 60),
                lambda i=i: b.claim(f"r{i}", "node-b", 60),
            )
            assert sorted(won) == [False, True], won
            assert a.get_task(f"r{i}").owner == ("node-a" if won[0] else "node-b")


def test_two_processes_race_for_a_state_move(store_url: str) -> None:
    with MetadataStore(store_url) as a, MetadataStore(store_url) as b, _Racers(2) as racers:
        for i in range(10):
            a.create_task(f"r{i}", {})

            def move(s: MetadataStore, i: int = i) -> None:
                s.set_state(f"r{i}", State.NOT_STARTED, State.PRECHECKING, f"by {id(s)}")

            outcome = racers.race(lambda: move(a), lambda: move(b))
            lost = [r for r in outcome if isinstance(r, BaseException)]
            assert outcome.count(None) == 1 and len(lost) == 1, outcome
            assert isinstance(lost[0], FatalError)
            assert "another process changed it" in str(lost[0])
            moves = [(e.from_state, e.to_state) for e in b.history(f"r{i}")]
            assert moves == [(None, "not_started"), ("not_started", "prechecking")]


def test_two_processes_create_the_same_task(store_url: str) -> None:
    with MetadataStore(store_url) as a, MetadataStore(store_url) as b, _Racers(2) as racers:
        for i in range(5):
            outcome = racers.race(
                lambda i=i: a.create_task(f"r{i}", {"by": "a"}),
                lambda i=i: b.create_task(f"r{i}", {"by": "b"}),
            )
            assert sum(isinstance(r, TaskExists) for r in outcome) == 1, outcome
            assert len(a.history(f"r{i}")) == 1


# -- faults ---------------------------------------------------------------------------


def test_a_killed_connection_fails_once_then_reconnects(
    server: StoreServer, database: str, store: MetadataStore
) -> None:
    store.create_task("t", {})
    assert server.kill_connections(database) >= 1
    with pytest.raises(StoreUnavailable) as info:
        store.list_tasks()
    assert isinstance(info.value, RetriableError)
    assert store.display in str(info.value)
    assert [t.name for t in store.list_tasks()] == ["t"]  # a new connection

    # killed between two writes: the first fails (and is not half done), the next works
    server.kill_connections(database)
    with pytest.raises(StoreUnavailable):
        store.set_state("t", State.NOT_STARTED, State.PRECHECKING)
    assert store.get_task("t").state is State.NOT_STARTED
    store.set_state("t", State.NOT_STARTED, State.PRECHECKING)
    assert len(store.history("t")) == 2


def test_a_lock_wait_is_unavailable(
    server: StoreServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that holds the row too long (a stalled node): the store gives up
    after its lock wait with StoreUnavailable, and works once the row is free."""
    monkeypatch.setattr(store_backends, "BUSY_SECONDS", 1.0)
    with MetadataStore(server.url(database)) as store:
        store.create_task("t", {})
        holder = _hold_row(server, database)
        try:
            with pytest.raises(StoreUnavailable):
                store.set_request("t", "pause")
        finally:
            holder.release()
        store.set_request("t", "pause")
        assert store.get_task("t").request == "pause"


def test_a_deadlock_victim_is_run_again(server: StoreServer, database: str) -> None:
    """The store's transaction and another session lock two rows in opposite
    orders; the server rolls the store's back (it did less work). The store runs
    it again on the same connection once the other committed: both writes are
    there, and the caller saw no error."""
    with MetadataStore(server.url(database)) as store:
        for name in ["a", "b", *(f"w{i}" for i in range(20))]:
            store.create_task(name, {})
    other = _Session(server, database)
    other.run("BEGIN")
    # the other session does more work, so the server picks the store's as victim
    other.run("UPDATE tasks SET owner = 'other' WHERE name = 'b' OR name LIKE 'w%'")
    conn = store_backends.ThreadConnections(store_backends.open_backend(server.url(database)))
    runs: list[int] = []
    b_waits = threading.Event()

    @store_errors.rerun_on_conflict
    def a_then_b() -> None:
        runs.append(1)
        with conn.get().transaction() as db:
            db.execute("UPDATE tasks SET owner = 'store' WHERE name = 'a'")
            b_waits.set()
            db.execute("UPDATE tasks SET request = 'pause' WHERE name = 'b'")

    try:
        writer = threading.Thread(target=a_then_b)
        writer.start()
        assert b_waits.wait(10)
        time.sleep(0.3)  # the store's UPDATE of b is waiting for the other session
        other.run("UPDATE tasks SET request = 'resume' WHERE name = 'a'")  # the cycle
        other.run("COMMIT")
        writer.join(30)
        assert not writer.is_alive()
    finally:
        other.close()
        conn.close_all()
    assert len(runs) == 2
    rows = server.rows(database, "SELECT name, owner, request FROM tasks WHERE name < 'c'")
    assert sorted(rows) == [("a", "store", "resume"), ("b", "other", "pause")]


class _Session:
    """A plain session of the test's own on the store's database."""

    def __init__(self, server: StoreServer, database: str) -> None:
        if isinstance(server, PostgresServer):
            self._pg: psycopg.Connection[Any] | None = psycopg.connect(
                server.url(database), autocommit=True
            )
        else:
            assert isinstance(server, MariaDBServer)
            self._pg = None
            self._my = server.connect(database)

    def run(self, sql: str) -> None:
        if self._pg is not None:
            self._pg.execute(sql)
            return
        with self._my.cursor() as cur:
            cur.execute(sql)

    def close(self) -> None:
        (self._pg or self._my).close()


class _RowHolder:
    def __init__(self, release: Callable[[], None]) -> None:
        self.release = release


def _hold_row(server: StoreServer, database: str) -> _RowHolder:
    """Another session locks task t's row in an open transaction."""
    if isinstance(server, PostgresServer):
        pg = psycopg.connect(server.url(database), autocommit=True)
        pg.execute("BEGIN")
        pg.execute("UPDATE tasks SET owner = 'holder' WHERE name = 't'")

        def release_pg() -> None:
            pg.execute("ROLLBACK")
            pg.close()

        return _RowHolder(release_pg)
    assert isinstance(server, MariaDBServer)
    my = server.connect(database)
    with my.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE tasks SET owner = 'holder' WHERE name = 't'")

    def release_my() -> None:
        my.rollback()
        my.close()

    return _RowHolder(release_my)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _kill_postgres(box: Sandbox) -> None:
    """kill -9 the session's PostgreSQL; return once its process is gone for good.
    A reused sandbox's server (DUOSYNC_TEST_SANDBOX) is no child of ours: until
    init reaps it, a new postmaster takes the zombie for the owner of its pid file
    and refuses to start. Its backends go too: killed alone, the postmaster leaves
    them serving their sessions until they notice (late, on a loaded machine), and
    the store's next query would still be answered."""
    server = box.load().servers[POSTGRES.name]
    backends = [p for p in _children(server.pid)] if server.pid else []
    pid = kill9(box, POSTGRES.name)
    for child in backends:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)

    def reaped() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # else: the pid was used again

    _until(reaped, timeout=30)


def test_a_restarted_server_is_used_again(
    postgres_box: Sandbox, postgres: str, shared_stores: SharedStores
) -> None:
    pg = PostgresServer(postgres)
    name = shared_stores.empty(pg)
    with MetadataStore(pg.url(name)) as store:
        store.create_task("t", {})
        _kill_postgres(postgres_box)
        try:
            with pytest.raises(StoreUnavailable):
                store.list_tasks()  # the connection it had
            with pytest.raises(StoreUnavailable, match="unavailable"):
                store.list_tasks()  # no server to connect to
        finally:
            restart(postgres_box)
        assert [t.name for t in store.list_tasks()] == ["t"]
        store.set_request("t", "pause")


def test_unknown_database_is_a_config_error(server: StoreServer) -> None:
    with pytest.raises(ConfigError, match="cannot open metadata store") as info:
        MetadataStore(server.url("st_no_such_database"))
    assert not isinstance(info.value, RetriableError)
    assert info.value.hint is not None and "database" in info.value.hint


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for scheme in ("mariadb", "postgresql"):
        url = f"{scheme}://u:{SECRET}@127.0.0.1:{port}/duosync"
        with pytest.raises(StoreUnavailable) as info:
            MetadataStore(url)
        assert f"{scheme}://u@127.0.0.1:{port}/duosync" in str(info.value)
        assert SECRET not in str(info.value)


# -- passwords ------------------------------------------------------------------------


def test_password_is_never_shown(mariadb1: Endpoint) -> None:
    """(In a new database: a user of its own, as in production, migrates it.)"""
    maria = MariaDBServer(mariadb1)
    name = "st_password_never_shown"
    user = "duo_store_pw"
    maria.create(name)
    maria.run(
        [
            f"DROP USER IF EXISTS '{user}'@'%'",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{SECRET}'",
            f"GRANT ALL ON `{name}`.* TO '{user}'@'%'",
        ],
    )
    try:
        url = maria.url(name, user, SECRET)
        with MetadataStore(url) as store:
            store.create_task("t", {"source": {"password": "in the spec, as before"}})
            shown = f"mariadb://{user}@{mariadb1.host}:{mariadb1.port}/{name}"
            assert store.display == shown
            assert SECRET not in repr(store)
            maria.kill_connections(name)
            with pytest.raises(StoreUnavailable) as lost:
                store.list_tasks()
            assert shown in str(lost.value) and SECRET not in str(lost.value)
            assert store.get_task("t").spec["source"]["password"] == "in the spec, as before"
        with pytest.raises(ConfigError) as denied:
            MetadataStore(maria.url(name, user, SECRET + "-wrong"))
        assert "Access denied" in str(denied.value)
        assert SECRET not in str(denied.value)
    finally:
        maria.run([f"DROP USER IF EXISTS '{user}'@'%'"])
        maria.drop(name)


def test_postgres_password_is_never_shown(postgres: str, shared_stores: SharedStores) -> None:
    pg = PostgresServer(postgres)
    name = shared_stores.empty(pg)
    with MetadataStore(pg.url(name, password=SECRET)) as store:
        assert store.display == pg.url(name)
        assert SECRET not in repr(store)
        pg.kill_connections(name)
        with pytest.raises(StoreUnavailable) as lost:
            store.list_tasks()
        assert SECRET not in str(lost.value)


def test_the_api_answers_503_while_its_store_is_down(
    postgres_box: Sandbox, postgres: str, shared_stores: SharedStores
) -> None:
    pg = PostgresServer(postgres)
    name = shared_stores.empty(pg)
    token = "store-test-token-0123456789"
    app = create_app(pg.url(name, password=SECRET), token)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/tasks").json() == []
        _kill_postgres(postgres_box)
        try:
            down = client.get("/api/v1/tasks")
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "1"
            assert pg.url(name) in down.json()["error"]
            assert SECRET not in down.text
        finally:
            restart(postgres_box)
        assert client.get("/api/v1/tasks").status_code == 200
