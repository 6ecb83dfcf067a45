"""The metadata store: task definitions, state history and checkpoints.

By default one SQLite file (``~/.duosync/duosync.db``); for a cluster of nodes, a
database on a MariaDB/MySQL or PostgreSQL server that every node's processes share
(``MetadataStore("mariadb://user:pass@host:3306/duosync")``). The SQL is written
once, here, in SQLite's spelling; ``service.store.backends`` renders it for each
database and opens the connections.

The schema is versioned: each migration runs in its own transaction together with
the bump of the version (SQLite's ``user_version``; on a server the one-row table
``duosync_store_version``), so a crash mid-migration leaves the store at the
previous version, never between (on MariaDB/MySQL, whose DDL commits by itself, a
step may be left half applied: the next start completes it). A store written by a
newer duosync (higher version than we know) is refused rather than guessed at.
Several processes may start at once: migrations take a lock, one runs them.

Checkpoints stored here are the *resume hints* of readers that have no target
transaction to piggy-back on (e.g. snapshot chunk progress); the authoritative
incremental checkpoint lives in the target's ``oms`` database, in the same
transaction as the rows it covers (DESIGN.md section 3.2).

Task specs hold endpoint passwords. A SQLite file is made readable by its owner
only (mode 600); on a server, the database's own access control protects them:
give the store's database to duosync's user alone.

Errors: every failure of the store's database is a ``DuosyncError``; a passing
one (server down, connection lost, lock wait timed out, "database is locked") is
``StoreUnavailable``, a ``RetriableError``. No driver exception leaves the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duosync.errors import ConfigError, FatalError
from duosync.service.runtime import states
from duosync.service.runtime.states import State
from duosync.service.store.backends import (
    BUSY_SECONDS,
    SQLiteBackend,
    StoreConnection,
    StoreLocation,
    ThreadConnections,
    open_backend,
    parse_store,
)
from duosync.service.store.errors import (
    IntegrityViolation,
    StoreUnavailable,
    rerun_on_conflict,
)

__all__ = [
    "DB_FILE",
    "LATEST_VERSION",
    "MIGRATIONS",
    "MetadataStore",
    "StoreLocation",
    "StoreUnavailable",
    "StoredCheck",
    "TaskEvent",
    "TaskExists",
    "TaskNotFound",
    "TaskRecord",
    "parse_store",
]

DB_FILE = "duosync.db"

# Statements use SQLite's ``?`` placeholders. In MIGRATIONS, column types are
# tokens each backend fills in (``store_backends``): {key} a name that is a key or
# indexed, {id} an auto-increment primary key, {int}, {real}, {text}. ``key`` and
# ``rows`` are reserved words on MariaDB: always double-quoted (MariaDB sessions
# run with ANSI_QUOTES). For SQLite the rendered text means what it always did,
# so files of every earlier version keep working.
#: (version, what it adds, statements). Append only: never edit a released step.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "tasks, task state history, checkpoints",
        (
            """CREATE TABLE tasks (
                name       {key} PRIMARY KEY,
                spec       {text} NOT NULL,     -- validated task spec, JSON
                state      {text} NOT NULL,
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL
            )""",
            """CREATE TABLE task_events (
                id         {id},
                task       {key} NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                at         {real} NOT NULL,
                from_state {text},
                to_state   {text} NOT NULL,
                detail     {text} NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX task_events_task ON task_events(task, id)",
            """CREATE TABLE checkpoints (
                task       {key} NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                stream     {key} NOT NULL,      -- which reader: 'binlog', 'snapshot:db.t', ...
                position   {text} NOT NULL,     -- serialized position, JSON
                updated_at {real} NOT NULL,
                PRIMARY KEY (task, stream)
            )""",
        ),
    ),
    (
        2,
        "full-migration chunks and the rows they could not copy",
        (
            """CREATE TABLE chunks (
                task       {key} NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                tbl        {key} NOT NULL,      -- source 'db.table'
                idx        {int} NOT NULL,
                lower_key  {text},              -- JSON, exclusive; NULL = open
                upper_key  {text},              -- JSON, inclusive; NULL = open
                done       {int} NOT NULL DEFAULT 0,
                "rows"     {int} NOT NULL DEFAULT 0,
                PRIMARY KEY (task, tbl, idx)
            )""",
            """CREATE TABLE copy_conflicts (
                id         {id},
                task       {key} NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                tbl        {key} NOT NULL,
                "key"      {text} NOT NULL,     -- JSON
                detail     {text} NOT NULL
            )""",
        ),
    ),
    (
        3,
        "task lifecycle: runner leases, requests, pre-check results and skips",
        (
            # A runner owns a task while its lease lasts (renewed every few seconds),
            # so a second process cannot run it too, and a task whose runner died is
            # found (expired lease, or a dead pid on this host) and resumed.
            "ALTER TABLE tasks ADD COLUMN owner {text}",
            "ALTER TABLE tasks ADD COLUMN lease_until {real}",
            # what was asked of the runner in another process ('pause'); it polls this
            "ALTER TABLE tasks ADD COLUMN request {text}",
            # why the task failed, shown until it starts again
            "ALTER TABLE tasks ADD COLUMN error {text}",
            # the states the old versions wrote, mapped into the lifecycle
            "UPDATE tasks SET state = 'paused' WHERE state = 'stopped'",
            """CREATE TABLE prechecks (
                task       {key} NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                seq        {int} NOT NULL,      -- order of the items in the last run
                name       {key} NOT NULL,
                status     {text} NOT NULL,     -- pass, warn, fail
                detail     {text} NOT NULL,
                at         {real} NOT NULL,
                PRIMARY KEY (task, name)
            )""",
            """CREATE TABLE precheck_skips (
                task       {key} NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                name       {key} NOT NULL,
                at         {real} NOT NULL,
                detail     {text} NOT NULL,     -- the failure that was skipped
                PRIMARY KEY (task, name)
            )""",
        ),
    ),
    (
        4,
        "self-healing: retry streaks and kinds of task events",
        (
            # the current streak of retried failures (0 attempts: healthy), shown by
            # every process that reads the store (task show, the API, /metrics)
            "ALTER TABLE tasks ADD COLUMN retry_attempts {int} NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN retry_since {real}",
            "ALTER TABLE tasks ADD COLUMN retry_next {real}",
            "ALTER TABLE tasks ADD COLUMN retry_error {text}",
            # every retry ever made, and when the last error (retried or not) happened
            "ALTER TABLE tasks ADD COLUMN retries_total {int} NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN last_error_at {real}",
            # state: a lifecycle move; note: an annotation; retry / recovered: healing
            "ALTER TABLE task_events ADD COLUMN kind {text} NOT NULL DEFAULT 'state'",
            "UPDATE task_events SET kind = 'note' WHERE from_state = to_state",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]


class TaskNotFound(ConfigError):
    """No task of that name in the store (the API answers 404)."""


class TaskExists(ConfigError):
    """A task of that name is already stored (the API answers 409)."""


@dataclass(frozen=True)
class TaskRecord:
    name: str
    spec: dict[str, Any]
    state: State
    created_at: float
    updated_at: float
    owner: str | None = None
    lease_until: float | None = None
    request: str | None = None
    error: str | None = None
    #: the current streak of retried failures (``service.runtime.healing``); 0: healthy
    retry_attempts: int = 0
    retry_since: float | None = None
    retry_next: float | None = None
    retry_error: str | None = None
    retries_total: int = 0
    last_error_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.retry_attempts == 0 and self.state is not State.FAILED


_TASK_COLUMNS = (
    "name, spec, state, created_at, updated_at, owner, lease_until, request, error,"
    " retry_attempts, retry_since, retry_next, retry_error, retries_total, last_error_at"
)


def _record(row: Any) -> TaskRecord:
    return TaskRecord(row[0], json.loads(row[1]), states.parse(row[2]), *row[3:])


@dataclass(frozen=True)
class StoredCheck:
    """One pre-check item of the task's last pre-check run."""

    name: str
    status: str
    detail: str
    at: float
    skipped: bool


@dataclass(frozen=True)
class TaskEvent:
    at: float
    from_state: str | None
    to_state: str
    detail: str
    #: state (a lifecycle move), note, retry or recovered
    kind: str = "state"


class MetadataStore:
    """Access to one metadata store, safe to share between threads.

    *location* is a SQLite file (a ``Path``, or a ``str`` without ``://``) or the
    URL of a server database (``StoreLocation``, see ``parse_store``). Every thread
    gets a connection of its own, opened on first use (the API serves requests on a
    pool of threads). A connection that broke (the server restarted, the link was
    cut) is dropped after raising ``StoreUnavailable``, and the thread's next call
    opens a new one.

    SQLite: the file is in WAL mode, so readers never wait for the writer, and every
    connection waits up to ``BUSY_SECONDS`` for the write lock instead of failing
    with "database is locked". On a server, writers wait as long for row locks.
    Writes are short transactions, so that wait is milliseconds in practice. A
    method that checks before it writes does so inside its transaction, or in the
    UPDATE's own WHERE (``set_state``, ``claim``): what another process changed
    in between is never overwritten. A write transaction the server rolled back
    to break a deadlock is run again (``rerun_on_conflict``).

    ``close`` closes every connection the store opened; call it once no other
    thread uses the store (at shutdown). A later use opens a new connection.
    """

    #: seconds a writer waits for a lock before the store gives up (the figure
    #: every backend uses is ``store_backends.BUSY_SECONDS``; this is its name here)
    BUSY_SECONDS = BUSY_SECONDS

    def __init__(self, location: StoreLocation) -> None:
        self._location = location
        self._backend = open_backend(location)
        self._connections = ThreadConnections(self._backend)
        try:
            self._backend.setup(self._db)
            self.migrate()
        except StoreUnavailable:
            self.close()
            raise
        except (OSError, FatalError) as exc:
            self.close()
            text = exc.message if isinstance(exc, FatalError) else str(exc)
            raise ConfigError(f"cannot open metadata store {self.display}: {text}") from None
        except BaseException:
            self.close()
            raise

    @property
    def display(self) -> str:
        """How the store is named in messages: the file, or the URL without its
        password (``mariadb://root@127.0.0.1:3306/duosync``)."""
        return self._backend.display

    @property
    def location(self) -> StoreLocation:
        """What the store was opened with, to open it again (in another thread's
        ``MetadataStore``): a URL keeps its password, so never show it."""
        return self._location

    @property
    def path(self) -> Path:
        """The SQLite file (``AttributeError`` for a store on a server: name it by
        ``display``, open it again by ``location``)."""
        if isinstance(self._backend, SQLiteBackend):
            return self._backend.path
        raise AttributeError(f"the metadata store {self.display} is a server database, not a file")

    @property
    def _db(self) -> StoreConnection:
        """This thread's connection (opened on its first use)."""
        return self._connections.get()

    @classmethod
    def in_home(cls, home: Path) -> MetadataStore:
        return cls(home / DB_FILE)

    def close(self) -> None:
        self._connections.close_all()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.display!r})"

    @property
    def version(self) -> int:
        return self._backend.read_version(self._db)

    @contextmanager
    def _transaction(self) -> Iterator[StoreConnection]:
        with self._db.transaction() as db:
            yield db

    def migrate(self) -> list[int]:
        """Bring the store to ``LATEST_VERSION``; return the versions applied.

        Safe when several processes (or threads) start at once: every step runs
        under a lock (SQLite's write lock; PostgreSQL's advisory lock of the
        transaction; on MariaDB/MySQL a named lock held across the migration, as
        DDL commits there) and reads the version again once it holds it.

        A step and its version bump commit together on SQLite and PostgreSQL. On
        MariaDB/MySQL each DDL statement commits by itself, so a crash in the
        middle of a step can leave it half applied at the old version; the next
        ``migrate`` runs the step again and skips the tables, columns and indexes
        that exist already, so it completes it.
        """
        db = self._db
        with self._backend.migration_lock(db):
            current = self._current_version(db)
            if current > LATEST_VERSION:
                raise ConfigError(
                    f"metadata store {self.display} has schema version {current}, newer than"
                    f" this duosync understands ({LATEST_VERSION})",
                    hint="upgrade duosync or point --home elsewhere",
                )
            applied = []
            for version, _what, statements in MIGRATIONS:
                if version <= current:
                    continue
                with db.transaction():
                    self._backend.prepare_migration(db)
                    # another process may have applied it since we looked: the lock
                    # we now hold makes this read exact
                    if self._backend.read_version(db) >= version:
                        continue
                    for sql in statements:
                        db.migration_statement(sql)
                    self._backend.write_version(db, version)
                applied.append(version)
        return applied

    def _current_version(self, db: StoreConnection) -> int:
        if isinstance(self._backend, SQLiteBackend):
            # no transaction: opening a file must not wait for its writer
            return self._backend.read_version(db)
        with db.transaction():
            self._backend.prepare_migration(db)
            return self._backend.read_version(db)

    # -- tasks ---------------------------------------------------------------------

    @rerun_on_conflict
    def create_task(
        self, name: str, spec: dict[str, Any], state: State = State.NOT_STARTED
    ) -> TaskRecord:
        now = time.time()
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO tasks (name, spec, state, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, json.dumps(spec, sort_keys=True), state.value, now, now),
                )
            except IntegrityViolation:
                raise TaskExists(f"a task named {name!r} already exists", task=name) from None
            db.execute(
                "INSERT INTO task_events (task, at, from_state, to_state) VALUES (?, ?, NULL, ?)",
                (name, now, state.value),
            )
        return self.get_task(name)

    @rerun_on_conflict
    def update_spec(self, name: str, spec: dict[str, Any]) -> None:
        """Replace a task's stored spec (a derived spec, e.g. a reverse task's objects
        matched again from its forward task)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET spec = ?, updated_at = ? WHERE name = ?",
                (json.dumps(spec, sort_keys=True), time.time(), name),
            )

    def find_task(self, name: str) -> TaskRecord | None:
        row = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else _record(row)

    def get_task(self, name: str) -> TaskRecord:
        record = self.find_task(name)
        if record is None:
            raise TaskNotFound(f"no task named {name!r}", task=name)
        return record

    def list_tasks(self) -> list[TaskRecord]:
        rows = self._db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks ORDER BY name").fetchall()
        return [_record(r) for r in rows]

    def enter_state(self, name: str, new: State, detail: str = "", action: str = "") -> None:
        """Move the task to *new* from whatever state it is in (nothing if already
        there); ``states.IllegalTransition`` if the lifecycle forbids it."""
        current = self.get_task(name).state
        if current != new:
            self.set_state(name, current, new, detail, action)

    @rerun_on_conflict
    def set_state(
        self, name: str, expected: State, new: State, detail: str = "", action: str = ""
    ) -> None:
        """Move *name* from *expected* to *new*: the lifecycle (``states``) decides
        legality, and no concurrent writer may have moved it in between (the UPDATE
        matches the row only in *expected*: of two processes making the same move,
        one wins, the other gets ``FatalError``). Entering failed records *detail*
        as the task's error; leaving it clears it."""
        states.check(name, expected, new, action)
        now = time.time()
        error = detail if new is State.FAILED else None
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE tasks SET state = ?, updated_at = ?, error = ?,"
                " last_error_at = COALESCE(?, last_error_at)"
                " WHERE name = ? AND state = ?",
                (new.value, now, error, None if error is None else now, name, expected.value),
            )
            if cur.rowcount != 1:
                actual = db.execute("SELECT state FROM tasks WHERE name = ?", (name,)).fetchone()
                if actual is None:
                    raise TaskNotFound(f"no task named {name!r}", task=name)
                raise FatalError(
                    f"task state is {actual[0]!r}, not {expected.value!r}: another process"
                    " changed it",
                    task=name,
                )
            db.execute(
                "INSERT INTO task_events (task, at, from_state, to_state, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, now, expected.value, new.value, detail),
            )

    def history(self, name: str, limit: int | None = None) -> list[TaskEvent]:
        """The task's events, oldest first (the last *limit* of them)."""
        if limit is None:
            rows = self._db.execute(
                "SELECT at, from_state, to_state, detail, kind FROM task_events"
                " WHERE task = ? ORDER BY id",
                (name,),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT at, from_state, to_state, detail, kind FROM ("
                " SELECT id, at, from_state, to_state, detail, kind FROM task_events"
                " WHERE task = ? ORDER BY id DESC LIMIT ?) AS recent ORDER BY id",
                (name, limit),
            ).fetchall()
        return [TaskEvent(*r) for r in rows]

    @rerun_on_conflict
    def note(self, name: str, detail: str, kind: str = "note") -> None:
        """Record an event that changes no state (e.g. a skipped pre-check)."""
        state = self.get_task(name).state.value
        with self._transaction() as db:
            db.execute(
                "INSERT INTO task_events (task, at, from_state, to_state, detail, kind)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, time.time(), state, state, detail, kind),
            )

    # -- self-healing --------------------------------------------------------------

    @rerun_on_conflict
    def record_retry(
        self, name: str, attempts: int, since: float, next_at: float, error: str
    ) -> None:
        """The task failed with a retriable error and tries again at *next_at*:
        the streak's figures on the task, and a ``retry`` event (its state read
        after the UPDATE locked the row, so it is the state the event is in)."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET retry_attempts = ?, retry_since = ?, retry_next = ?,"
                " retry_error = ?, retries_total = retries_total + 1, last_error_at = ?"
                " WHERE name = ?",
                (attempts, since, next_at, error, now, name),
            )
            state = db.execute("SELECT state FROM tasks WHERE name = ?", (name,)).fetchone()
            if state is None:
                raise TaskNotFound(f"no task named {name!r}", task=name)
            db.execute(
                "INSERT INTO task_events (task, at, from_state, to_state, detail, kind)"
                " VALUES (?, ?, ?, ?, ?, 'retry')",
                (
                    name,
                    now,
                    state[0],
                    state[0],
                    f"attempt {attempts} failed: {error}; next"
                    f" attempt in {max(0.0, next_at - now):.1f}s",
                ),
            )

    def record_recovered(self, name: str, detail: str) -> None:
        """The task shows progress again after a streak: healthy, and an event."""
        self.clear_retry(name)
        self.note(name, detail, "recovered")

    @rerun_on_conflict
    def clear_retry(self, name: str) -> None:
        """Forget the current streak (the run ended: failed, paused or done)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET retry_attempts = 0, retry_since = NULL, retry_next = NULL,"
                " retry_error = NULL WHERE name = ?",
                (name,),
            )

    @rerun_on_conflict
    def delete_task(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM tasks WHERE name = ?", (name,))

    # -- runner leases and requests -----------------------------------------------

    @rerun_on_conflict
    def claim(self, name: str, owner: str, seconds: float, stale: str | None = None) -> bool:
        """Take (or renew) the task's lease for *owner*: free, expired, already ours,
        or held by *stale* (an owner known dead). Whether we hold it now. The test
        is the UPDATE's WHERE, evaluated on the row locked: of two owners claiming
        at once, one gets it."""
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE tasks SET owner = ?, lease_until = ? WHERE name = ? AND ("
                " owner IS NULL OR owner = ? OR lease_until < ? OR owner = ?)",
                (owner, now + seconds, name, owner, now, stale or owner),
            )
            return cur.rowcount == 1

    @rerun_on_conflict
    def unclaim(self, name: str, owner: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET owner = NULL, lease_until = NULL WHERE name = ? AND owner = ?",
                (name, owner),
            )

    @rerun_on_conflict
    def set_request(self, name: str, request: str | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE tasks SET request = ? WHERE name = ?", (request, name))

    # -- pre-checks ----------------------------------------------------------------

    @rerun_on_conflict
    def save_prechecks(self, name: str, results: list[tuple[str, str, str]]) -> None:
        """Replace the task's pre-check results with (name, status, detail) items."""
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM prechecks WHERE task = ?", (name,))
            db.executemany(
                "INSERT INTO prechecks (task, seq, name, status, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(name, i, n, st, d, now) for i, (n, st, d) in enumerate(results)],
            )

    def prechecks(self, name: str) -> list[StoredCheck]:
        rows = self._db.execute(
            "SELECT p.name, p.status, p.detail, p.at, s.name IS NOT NULL FROM prechecks p"
            " LEFT JOIN precheck_skips s ON s.task = p.task AND s.name = p.name"
            " WHERE p.task = ? ORDER BY p.seq",
            (name,),
        ).fetchall()
        return [StoredCheck(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    @rerun_on_conflict
    def skip_precheck(self, name: str, item: str, detail: str) -> None:
        with self._transaction() as db:
            db.execute(
                self._backend.upsert(
                    "precheck_skips", ("task", "name", "at", "detail"), ("task", "name")
                ),
                (name, item, time.time(), detail),
            )

    def precheck_skips(self, name: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT name, detail FROM precheck_skips WHERE task = ?", (name,)
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- checkpoints ---------------------------------------------------------------

    @rerun_on_conflict
    def save_checkpoint(self, task: str, stream: str, position: dict[str, Any]) -> None:
        with self._transaction() as db:
            try:
                db.execute(
                    self._backend.upsert(
                        "checkpoints",
                        ("task", "stream", "position", "updated_at"),
                        ("task", "stream"),
                    ),
                    (task, stream, json.dumps(position, sort_keys=True), time.time()),
                )
            except IntegrityViolation:
                raise ConfigError(f"no task named {task!r}", task=task) from None

    def load_checkpoint(self, task: str, stream: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT position FROM checkpoints WHERE task = ? AND stream = ?", (task, stream)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # -- full-migration chunks -----------------------------------------------------

    def chunk_plan(self, task: str, table: str) -> list[tuple[int, Any, Any, bool, int]]:
        """(index, lower, upper, done, rows) of a table's chunks; empty if not planned."""
        rows = self._db.execute(
            'SELECT idx, lower_key, upper_key, done, "rows" FROM chunks'
            " WHERE task = ? AND tbl = ? ORDER BY idx",
            (task, table),
        ).fetchall()
        return [
            (
                int(r[0]),
                json.loads(r[1]) if r[1] else None,
                json.loads(r[2]) if r[2] else None,
                bool(r[3]),
                int(r[4]),
            )
            for r in rows
        ]

    def copied_tables(self, task: str) -> frozenset[str]:
        """Source tables (``db.table``) whose copy the task has planned: done or
        under way, so the rows their targets hold are the task's own."""
        rows = self._db.execute("SELECT DISTINCT tbl FROM chunks WHERE task = ?", (task,))
        return frozenset(str(r[0]) for r in rows.fetchall())

    @rerun_on_conflict
    def save_chunk_plan(self, task: str, table: str, chunks: list[tuple[int, Any, Any]]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM chunks WHERE task = ? AND tbl = ?", (task, table))
            db.executemany(
                "INSERT INTO chunks (task, tbl, idx, lower_key, upper_key) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        task,
                        table,
                        i,
                        None if lo is None else json.dumps(lo),
                        None if hi is None else json.dumps(hi),
                    )
                    for i, lo, hi in chunks
                ],
            )

    @rerun_on_conflict
    def mark_chunk_done(self, task: str, table: str, index: int, rows: int) -> None:
        with self._transaction() as db:
            db.execute(
                'UPDATE chunks SET done = 1, "rows" = ? WHERE task = ? AND tbl = ? AND idx = ?',
                (rows, task, table, index),
            )

    @rerun_on_conflict
    def record_copy_conflict(self, task: str, table: str, key: Any, detail: str) -> None:
        with self._transaction() as db:
            db.execute(
                'INSERT INTO copy_conflicts (task, tbl, "key", detail) VALUES (?, ?, ?, ?)',
                (task, table, json.dumps(key), detail),
            )

    def copy_conflicts(self, task: str) -> list[tuple[str, Any, str]]:
        rows = self._db.execute(
            'SELECT tbl, "key", detail FROM copy_conflicts WHERE task = ? ORDER BY id', (task,)
        ).fetchall()
        return [(r[0], json.loads(r[1]), r[2]) for r in rows]
