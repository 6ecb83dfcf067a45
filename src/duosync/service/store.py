"""The metadata store: task definitions, state history and checkpoints in SQLite.

One SQLite file (default ``~/.duosync/duosync.db``) with a versioned schema. Each
migration runs in its own transaction together with the bump of ``user_version``,
so a crash mid-migration leaves the file at the previous version, never between.
A file written by a newer duosync (higher version than we know) is refused rather
than guessed at.

Checkpoints stored here are the *resume hints* of readers that have no target
transaction to piggy-back on (e.g. snapshot chunk progress); the authoritative
incremental checkpoint lives in the target's ``oms`` database, in the same
transaction as the rows it covers (DESIGN.md section 3.2).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duosync.errors import ConfigError, FatalError
from duosync.service import states
from duosync.service.states import State

DB_FILE = "duosync.db"

#: (version, what it adds, statements). Append only: never edit a released step.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "tasks, task state history, checkpoints",
        (
            """CREATE TABLE tasks (
                name       TEXT PRIMARY KEY,
                spec       TEXT NOT NULL,          -- validated task spec, JSON
                state      TEXT NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE task_events (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                task       TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                at         REAL NOT NULL,
                from_state TEXT,
                to_state   TEXT NOT NULL,
                detail     TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX task_events_task ON task_events(task, id)",
            """CREATE TABLE checkpoints (
                task       TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                stream     TEXT NOT NULL,          -- which reader: 'binlog', 'snapshot:db.t', ...
                position   TEXT NOT NULL,          -- serialized position, JSON
                updated_at REAL NOT NULL,
                PRIMARY KEY (task, stream)
            )""",
        ),
    ),
    (
        2,
        "full-migration chunks and the rows they could not copy",
        (
            """CREATE TABLE chunks (
                task       TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                tbl        TEXT NOT NULL,          -- source 'db.table'
                idx        INTEGER NOT NULL,
                lower_key  TEXT,                   -- JSON, exclusive; NULL = open
                upper_key  TEXT,                   -- JSON, inclusive; NULL = open
                done       INTEGER NOT NULL DEFAULT 0,
                rows       INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (task, tbl, idx)
            )""",
            """CREATE TABLE copy_conflicts (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                task       TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                tbl        TEXT NOT NULL,
                key        TEXT NOT NULL,          -- JSON
                detail     TEXT NOT NULL
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
            "ALTER TABLE tasks ADD COLUMN owner TEXT",
            "ALTER TABLE tasks ADD COLUMN lease_until REAL",
            # what was asked of the runner in another process ('pause'); it polls this
            "ALTER TABLE tasks ADD COLUMN request TEXT",
            # why the task failed, shown until it starts again
            "ALTER TABLE tasks ADD COLUMN error TEXT",
            # the states the old versions wrote, mapped into the lifecycle
            "UPDATE tasks SET state = 'paused' WHERE state = 'stopped'",
            """CREATE TABLE prechecks (
                task       TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                seq        INTEGER NOT NULL,       -- order of the items in the last run
                name       TEXT NOT NULL,
                status     TEXT NOT NULL,          -- pass, warn, fail
                detail     TEXT NOT NULL,
                at         REAL NOT NULL,
                PRIMARY KEY (task, name)
            )""",
            """CREATE TABLE precheck_skips (
                task       TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE,
                name       TEXT NOT NULL,
                at         REAL NOT NULL,
                detail     TEXT NOT NULL,          -- the failure that was skipped
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
            "ALTER TABLE tasks ADD COLUMN retry_attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN retry_since REAL",
            "ALTER TABLE tasks ADD COLUMN retry_next REAL",
            "ALTER TABLE tasks ADD COLUMN retry_error TEXT",
            # every retry ever made, and when the last error (retried or not) happened
            "ALTER TABLE tasks ADD COLUMN retries_total INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN last_error_at REAL",
            # state: a lifecycle move; note: an annotation; retry / recovered: healing
            "ALTER TABLE task_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'state'",
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
    #: the current streak of retried failures (``service.healing``); 0: healthy
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
    """Access to one metadata file, safe to share between threads.

    Every thread gets a SQLite connection of its own, opened on first use (a sqlite3
    connection must not be used by two threads at once, and the API serves requests
    on a pool of threads). The file is in WAL mode, so readers never wait for the
    writer, and every connection waits up to ``BUSY_SECONDS`` for the write lock
    instead of failing with "database is locked". Writes are short transactions
    (``BEGIN IMMEDIATE``), so that wait is milliseconds in practice.

    ``close`` closes every connection the store opened; call it once no other
    thread uses the store (at shutdown). A later use opens a new connection.
    """

    #: seconds a writer waits for the write lock before SQLite gives up
    BUSY_SECONDS = 30.0

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            first = self._db
            # task specs hold passwords: the file is its owner's only
            with contextlib.suppress(PermissionError):  # another user's file: theirs to set
                self.path.chmod(0o600)
            first.execute("PRAGMA journal_mode = WAL")
            self.migrate()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise ConfigError(f"cannot open metadata store {self.path}: {exc}") from None
        except BaseException:
            self.close()
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened on its first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a migration's
            # DDL and its version bump are one transaction. check_same_thread=False
            # only lets ``close`` (at shutdown) close it: no other thread uses it.
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=self.BUSY_SECONDS, check_same_thread=False
            )
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.BUSY_SECONDS * 1000)}")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open metadata store {self.path}: {exc}") from None
        with self._lock:
            self._opened.append(conn)
        self._local.conn = conn
        return conn

    @classmethod
    def in_home(cls, home: Path) -> MetadataStore:
        return cls(home / DB_FILE)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def migrate(self) -> list[int]:
        """Bring the file to ``LATEST_VERSION``; return the versions applied."""
        current = self.version
        if current > LATEST_VERSION:
            raise ConfigError(
                f"metadata store {self.path} has schema version {current}, newer than this"
                f" duosync understands ({LATEST_VERSION})",
                hint="upgrade duosync or point --home elsewhere",
            )
        applied = []
        for version, _what, statements in MIGRATIONS:
            if version <= current:
                continue
            with self._transaction() as db:
                # another connection (a thread of the service) may have applied it
                # since we looked: the write lock we now hold makes this read exact
                if self.version >= version:
                    continue
                for sql in statements:
                    db.execute(sql)
                # PRAGMA takes no bound parameters; version is our own integer constant.
                db.execute(f"PRAGMA user_version = {int(version)}")
            applied.append(version)
        return applied

    # -- tasks ---------------------------------------------------------------------

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
            except sqlite3.IntegrityError:
                raise TaskExists(f"a task named {name!r} already exists", task=name) from None
            db.execute(
                "INSERT INTO task_events (task, at, from_state, to_state) VALUES (?, ?, NULL, ?)",
                (name, now, state.value),
            )
        return self.get_task(name)

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

    def set_state(
        self, name: str, expected: State, new: State, detail: str = "", action: str = ""
    ) -> None:
        """Move *name* from *expected* to *new*: the lifecycle (``states``) decides
        legality, and no concurrent writer may have moved it in between. Entering
        failed records *detail* as the task's error; leaving it clears it."""
        states.check(name, expected, new, action)
        now = time.time()
        error = detail if new is State.FAILED else None
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE tasks SET state = ?, updated_at = ?, error = ?,"
                " last_error_at = CASE WHEN ? IS NULL THEN last_error_at ELSE ? END"
                " WHERE name = ? AND state = ?",
                (new.value, now, error, error, now, name, expected.value),
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
        rows = self._db.execute(
            "SELECT at, from_state, to_state, detail, kind FROM ("
            " SELECT id, at, from_state, to_state, detail, kind FROM task_events"
            " WHERE task = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (name, -1 if limit is None else limit),
        ).fetchall()
        return [TaskEvent(*r) for r in rows]

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

    def record_retry(
        self, name: str, attempts: int, since: float, next_at: float, error: str
    ) -> None:
        """The task failed with a retriable error and tries again at *next_at*:
        the streak's figures on the task, and a ``retry`` event."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET retry_attempts = ?, retry_since = ?, retry_next = ?,"
                " retry_error = ?, retries_total = retries_total + 1, last_error_at = ?"
                " WHERE name = ?",
                (attempts, since, next_at, error, now, name),
            )
            state = db.execute("SELECT state FROM tasks WHERE name = ?", (name,)).fetchone()
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
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET retry_attempts = 0, retry_since = NULL, retry_next = NULL,"
                " retry_error = NULL WHERE name = ?",
                (name,),
            )
        self.note(name, detail, "recovered")

    def clear_retry(self, name: str) -> None:
        """Forget the current streak (the run ended: failed, paused or done)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET retry_attempts = 0, retry_since = NULL, retry_next = NULL,"
                " retry_error = NULL WHERE name = ?",
                (name,),
            )

    def delete_task(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM tasks WHERE name = ?", (name,))

    # -- runner leases and requests -----------------------------------------------

    def claim(self, name: str, owner: str, seconds: float, stale: str | None = None) -> bool:
        """Take (or renew) the task's lease for *owner*: free, expired, already ours,
        or held by *stale* (an owner known dead). Whether we hold it now."""
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE tasks SET owner = ?, lease_until = ? WHERE name = ? AND ("
                " owner IS NULL OR owner = ? OR lease_until < ? OR owner = ?)",
                (owner, now + seconds, name, owner, now, stale or owner),
            )
            return cur.rowcount == 1

    def unclaim(self, name: str, owner: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET owner = NULL, lease_until = NULL WHERE name = ? AND owner = ?",
                (name, owner),
            )

    def set_request(self, name: str, request: str | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE tasks SET request = ? WHERE name = ?", (request, name))

    # -- pre-checks ----------------------------------------------------------------

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

    def skip_precheck(self, name: str, item: str, detail: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO precheck_skips (task, name, at, detail) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (task, name) DO UPDATE SET at = excluded.at,"
                " detail = excluded.detail",
                (name, item, time.time(), detail),
            )

    def precheck_skips(self, name: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT name, detail FROM precheck_skips WHERE task = ?", (name,)
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- checkpoints ---------------------------------------------------------------

    def save_checkpoint(self, task: str, stream: str, position: dict[str, Any]) -> None:
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO checkpoints (task, stream, position, updated_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (task, stream) DO UPDATE"
                    " SET position = excluded.position, updated_at = excluded.updated_at",
                    (task, stream, json.dumps(position, sort_keys=True), time.time()),
                )
            except sqlite3.IntegrityError:
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
            "SELECT idx, lower_key, upper_key, done, rows FROM chunks"
            " WHERE task = ? AND tbl = ? ORDER BY idx",
            (task, table),
        ).fetchall()
        return [
            (
                r[0],
                json.loads(r[1]) if r[1] else None,
                json.loads(r[2]) if r[2] else None,
                bool(r[3]),
                r[4],
            )
            for r in rows
        ]

    def copied_tables(self, task: str) -> frozenset[str]:
        """Source tables (``db.table``) whose copy the task has planned: done or
        under way, so the rows their targets hold are the task's own."""
        rows = self._db.execute("SELECT DISTINCT tbl FROM chunks WHERE task = ?", (task,))
        return frozenset(str(r[0]) for r in rows.fetchall())

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

    def mark_chunk_done(self, task: str, table: str, index: int, rows: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE chunks SET done = 1, rows = ? WHERE task = ? AND tbl = ? AND idx = ?",
                (rows, task, table, index),
            )

    def record_copy_conflict(self, task: str, table: str, key: Any, detail: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO copy_conflicts (task, tbl, key, detail) VALUES (?, ?, ?, ?)",
                (task, table, json.dumps(key), detail),
            )

    def copy_conflicts(self, task: str) -> list[tuple[str, Any, str]]:
        rows = self._db.execute(
            "SELECT tbl, key, detail FROM copy_conflicts WHERE task = ? ORDER BY id", (task,)
        ).fetchall()
        return [(r[0], json.loads(r[1]), r[2]) for r in rows]
