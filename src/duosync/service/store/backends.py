"""Where the metadata store lives: a SQLite file, or a MariaDB/MySQL or PostgreSQL
database shared by the nodes of a cluster.

``service.store.metadata`` writes its SQL once, in SQLite's spelling with ``?`` placeholders;
a ``Backend`` supplies what differs by database: how a connection is opened, the
placeholder style (``render``), the column types of the migrations (``ddl``, named
tokens such as ``{key}``), the upsert clause, where the schema version is kept, the
migration lock, and how driver exceptions are classified.

Errors. Nothing a driver raises leaves this module as it is: ``StoreConnection``
turns it into ``StoreUnavailable`` (the server cannot be reached, the connection
was lost, a lock wait timed out: a ``RetriableError``), ``IntegrityViolation``
(a duplicate key or a missing referenced row; the store's methods turn it into the
error their callers expect), ``ConfigError`` (wrong user, password or database) or
``FatalError`` (anything else: a bug or a damaged store). Messages name the store
by its ``display``, never with the password.

A server connection that failed is closed and forgotten: the thread's next use
opens a new one, so a store server that restarted is used again at once.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.constants.CLIENT

from duosync.config import Endpoint, Flavor, redact_url
from duosync.endpoints.mysql.connection import translate as translate_mysql
from duosync.errors import ConfigError, DuosyncError, FatalError, RetriableError
from duosync.service.store.errors import (
    IntegrityViolation,
    StoreConflict,
    StoreUnavailable,
)

if TYPE_CHECKING:
    import psycopg

#: a SQLite file, or the URL of a server database (``mariadb://``, ``mysql://``,
#: ``postgresql://``); see ``parse_store``
StoreLocation = Path | str

#: seconds a writer waits for a lock (SQLite's write lock, a server's row lock)
#: before the store gives up with ``StoreUnavailable``
BUSY_SECONDS = 30.0
#: seconds to open a server connection
CONNECT_SECONDS = 10.0
#: seconds a server connection waits for an answer: longer than a lock wait, so a
#: busy store reports the lock wait, and a dead link is noticed after this long
IO_SECONDS = 2 * BUSY_SECONDS

#: the one-row table that holds the schema version on a server (SQLite keeps it in
#: ``PRAGMA user_version``)
VERSION_TABLE = "duosync_store_version"

#: ER_LOCK_DEADLOCK: InnoDB rolled the transaction back
_MYSQL_DEADLOCK = 1213

_MYSQL_SCHEMES = {"mariadb": Flavor.MARIADB, "mysql": Flavor.MYSQL}
_POSTGRES_SCHEMES = {"postgresql", "postgres"}
_DEFAULT_PORTS = {"mariadb": 3306, "mysql": 3306, "postgresql": 5432, "postgres": 5432}


# -- locations ----------------------------------------------------------------------


def is_url(location: StoreLocation) -> bool:
    return isinstance(location, str) and "://" in location


def parse_store(text: str) -> StoreLocation:
    """The store named by *text* (``--store``): a URL of a server database, checked
    here (``ConfigError`` naming it without its password), or else a file path."""
    if "://" not in text:
        return Path(text).expanduser()
    ServerAddress.parse(text)
    return text


@dataclass(frozen=True)
class ServerAddress:
    """A server database given as ``scheme://user[:password]@host[:port]/database``."""

    scheme: str
    host: str
    port: int
    user: str
    database: str
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The address in messages: never with the password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{self.user}@{host}:{self.port}/{self.database}"

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        shown = redact_url(url)

        def bad(why: str) -> ConfigError:
            return ConfigError(
                f"invalid metadata store URL {shown!r}: {why}",
                hint="expected mariadb|mysql|postgresql://user[:password]@host[:port]/database",
            )

        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            # urlsplit's own message may quote part of a misparsed password
            raise bad("the port is not a number from 1 to 65535") from None
        scheme = parts.scheme.lower()
        if scheme not in _MYSQL_SCHEMES and scheme not in _POSTGRES_SCHEMES:
            raise bad(f"unknown scheme {parts.scheme!r}")
        if not parts.hostname:
            raise bad("no host")
        if not parts.username:
            raise bad("no user")
        database = unquote(parts.path).strip("/")
        if not database or "/" in database:
            raise bad("name one database after the host, e.g. /duosync")
        if parts.query or parts.fragment:
            raise bad("no '?' or '#' parts are allowed (percent-encode them in a password)")
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port if port is not None else _DEFAULT_PORTS[scheme],
            user=unquote(parts.username),
            database=database,
            password=None if parts.password is None else unquote(parts.password),
        )


# -- connections ------------------------------------------------------------------------


class _Cursor(Protocol):
    """What the store uses of a DB-API cursor (sqlite3, PyMySQL, psycopg)."""

    @property
    def description(self) -> Any: ...
    @property
    def rowcount(self) -> int: ...
    def execute(self, sql: str, args: Any, /) -> Any: ...
    def executemany(self, sql: str, args: Any, /) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...
    def close(self) -> Any: ...


class Raw(Protocol):
    """A driver's connection."""

    def cursor(self) -> Any: ...
    def close(self) -> Any: ...


@dataclass(frozen=True)
class Result:
    """A statement's outcome: the rows it returned (all fetched), and the rows it
    matched (UPDATE and DELETE count rows matched, not only those changed)."""

    rowcount: int
    rows: list[tuple[Any, ...]]

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class ErrorKind(Enum):
    INTEGRITY = "integrity"
    UNAVAILABLE = "unavailable"
    #: a deadlock the server broke by rolling the transaction back
    CONFLICT = "conflict"
    CONFIG = "config"
    OTHER = "other"


@dataclass(frozen=True)
class Classified:
    """A driver exception, classified; *text* is scrubbed of the password."""

    kind: ErrorKind
    text: str
    #: what the user may do about it (a ConfigError's hint)
    hint: str | None = None


class StoreConnection:
    """One thread's connection to the store, speaking the store's SQL (``?``).

    Not for two threads at once. Once it failed with ``StoreUnavailable`` it is
    closed (*on_broken*) and every further use raises that again, so a
    transaction under way never goes on on a new connection.
    """

    def __init__(
        self, backend: Backend, raw: Raw, on_broken: Callable[[StoreConnection], None]
    ) -> None:
        self.backend = backend
        self.raw = raw
        self.broken = False
        self._on_broken = on_broken

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        with self._errors():
            cur: _Cursor = self.raw.cursor()
            try:
                cur.execute(self.backend.render(sql), tuple(args))
                rows = cur.fetchall() if cur.description is not None else []
                return Result(cur.rowcount, [tuple(r) for r in rows])
            finally:
                cur.close()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:  # PyMySQL and psycopg differ on an empty batch; none is a no-op
            return
        with self._errors():
            cur: _Cursor = self.raw.cursor()
            try:
                cur.executemany(self.backend.render(sql), [tuple(r) for r in rows])
            finally:
                cur.close()

    def migration_statement(self, sql: str) -> None:
        """Run one statement of a migration step (``ddl`` rendered); skip it when
        the backend says an earlier, interrupted run of the step applied it."""
        try:
            with self._errors(passthrough=self.backend.already_applied):
                cur: _Cursor = self.raw.cursor()
                try:
                    cur.execute(self.backend.render(self.backend.ddl(sql)), ())
                finally:
                    cur.close()
        except _AlreadyApplied:
            pass

    @contextmanager
    def transaction(self) -> Iterator[StoreConnection]:
        """A write transaction: committed at the end of the block, rolled back if
        it raises."""
        self.execute(self.backend.begin)
        try:
            yield self
            self.execute("COMMIT")
        except BaseException:
            # also after a failed COMMIT: SQLite leaves the transaction open then
            self._rollback_quietly()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()

    def _rollback_quietly(self) -> None:
        if self.broken:
            return
        try:
            self.execute("ROLLBACK")
        except DuosyncError:
            # in a state we do not know (e.g. interrupted in the middle of a
            # statement): not to be used again
            self.broken = True
            self._on_broken(self)

    @contextmanager
    def _errors(self, passthrough: Callable[[BaseException], bool] | None = None) -> Iterator[None]:
        if self.broken:
            raise self.backend.unavailable("its connection was lost earlier in this transaction")
        try:
            yield
        except self.backend.driver_errors as exc:
            if passthrough is not None and passthrough(exc):
                raise _AlreadyApplied from None
            raise self._translate(exc) from None

    def _translate(self, exc: BaseException) -> DuosyncError:
        found = self.backend.classify(exc)
        if found.kind is ErrorKind.UNAVAILABLE:
            self.broken = True
            self._on_broken(self)
            return self.backend.unavailable(found.text)
        if found.kind is ErrorKind.CONFLICT:
            # the server rolled the whole transaction back; the connection is fine
            return StoreConflict(f"metadata store {self.backend.display}: {found.text}")
        if found.kind is ErrorKind.INTEGRITY:
            return IntegrityViolation(f"metadata store {self.backend.display}: {found.text}")
        if found.kind is ErrorKind.CONFIG:
            return ConfigError(
                f"metadata store {self.backend.display}: {found.text}", hint=found.hint
            )
        return FatalError(f"metadata store {self.backend.display}: {found.text}")


class _AlreadyApplied(Exception):
    """A migration statement whose effect is there already."""


class ThreadConnections:
    """A connection per thread, opened on the thread's first use (sqlite3 and the
    server drivers' connections must not be used by two threads at once, and the
    API serves requests on a pool of threads). ``close_all`` closes every one."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[StoreConnection] = []

    def get(self) -> StoreConnection:
        conn: StoreConnection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.broken:
            return conn
        conn = StoreConnection(self.backend, self.backend.connect(), self._forget)
        with self._lock:
            self._opened.append(conn)
        self._local.conn = conn
        return conn

    def _forget(self, conn: StoreConnection) -> None:
        """Called on the connection's own thread when it broke."""
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        conn.close()

    def close_all(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()


# -- backends ---------------------------------------------------------------------------


class Backend(ABC):
    """What one kind of database does differently."""

    #: how the store is named in messages (never with a password)
    display: str
    #: the statement that starts a write transaction
    begin = "BEGIN"
    #: the column types of the migrations' ``{token}``s
    types: Mapping[str, str]
    #: the driver's exception classes ``classify`` understands
    driver_errors: tuple[type[BaseException], ...]

    def __init__(self) -> None:
        self._rendered: dict[str, str] = {}

    @abstractmethod
    def connect(self) -> Raw:
        """A new connection, set up (raises ``StoreUnavailable`` or ``ConfigError``)."""

    @abstractmethod
    def classify(self, exc: BaseException) -> Classified: ...

    def setup(self, conn: StoreConnection) -> None:  # noqa: B027 (optional hook)
        """Once per ``MetadataStore``, on its first connection, before migrating."""

    def render(self, sql: str) -> str:
        """*sql* with the driver's placeholders (SQLite's ``?`` is the default)."""
        return sql

    def ddl(self, sql: str) -> str:
        """A migration statement with this database's column types for its tokens."""
        return sql.format_map(self.types)

    def upsert(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """``INSERT`` of *columns* that updates the other columns of the row whose
        *keys* exist already."""
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
        return f"{_insert(table, columns)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update}"

    @abstractmethod
    def read_version(self, conn: StoreConnection) -> int:
        """The schema version (0: no schema yet)."""

    @abstractmethod
    def write_version(self, conn: StoreConnection, version: int) -> None: ...

    def prepare_migration(self, conn: StoreConnection) -> None:  # noqa: B027 (optional hook)
        """In each migration transaction, before the version is read: take the
        migration lock if the database has one per transaction, and make sure the
        version can be kept."""

    @contextmanager
    def migration_lock(self, conn: StoreConnection) -> Iterator[None]:
        """Around a whole migration: a lock held by the connection, where the
        database cannot lock in its (DDL-committing) transactions."""
        yield

    def already_applied(self, exc: BaseException) -> bool:
        """Whether a failed migration statement shows that it had been applied."""
        return False

    def unavailable(self, why: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"metadata store {self.display} is unavailable: {why}",
            hint="duosync retries; check that the store's server runs and is reachable",
        )


def _insert(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


# A literal, a '?' placeholder, or a '%' (the format-style drivers format the whole
# statement, literals included, with '%': a plain '%' must be doubled everywhere).
_FORMAT_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")


def format_placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as ``%s`` (PyMySQL, psycopg), outside literals."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return _FORMAT_TOKENS.sub(one, sql)


class _ServerBackend(Backend):
    """MariaDB/MySQL and PostgreSQL: ``%s`` placeholders, the version in a table."""

    def __init__(self, address: ServerAddress) -> None:
        super().__init__()
        self.address = address
        self.display = address.display

    def render(self, sql: str) -> str:
        rendered = self._rendered.get(sql)
        if rendered is None:
            rendered = self._rendered[sql] = format_placeholders(sql)
        return rendered

    @abstractmethod
    def version_table_exists(self, conn: StoreConnection) -> bool: ...

    def read_version(self, conn: StoreConnection) -> int:
        if not self.version_table_exists(conn):
            return 0
        row = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
        return 0 if row is None else int(row[0])

    def write_version(self, conn: StoreConnection, version: int) -> None:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version = ?", (version,))

    def prepare_migration(self, conn: StoreConnection) -> None:
        # Callers hold the migration lock: no other process creates it meanwhile.
        # Looked for first: a store's user may lack CREATE once it is set up.
        if not self.version_table_exists(conn):
            conn.execute(
                f"CREATE TABLE {VERSION_TABLE} (one INTEGER PRIMARY KEY, version INTEGER NOT NULL)"
            )
        if conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone() is None:
            conn.execute(f"INSERT INTO {VERSION_TABLE} (one, version) VALUES (1, 0)")

    def _open_error(self, exc: BaseException) -> DuosyncError:
        """A failed connect: unreachable (``StoreUnavailable``), the user's to fix
        (``ConfigError``: wrong user, password or database), or else fatal."""
        found = self.classify(exc)
        if found.kind is ErrorKind.UNAVAILABLE:
            return self.unavailable(found.text)
        text = f"cannot open metadata store {self.display}: {found.text}"
        if found.kind is ErrorKind.CONFIG:
            return ConfigError(text, hint=found.hint)
        return FatalError(text)

    def _scrub(self, text: str) -> str:
        secret = self.address.password
        return text.replace(secret, "***") if secret else text


class SQLiteBackend(Backend):
    """One file; WAL mode, so readers never wait for the writer. Writes are short
    ``BEGIN IMMEDIATE`` transactions: the write lock is taken at the start, so a
    read-then-write inside one sees no other writer's change in between."""

    begin = "BEGIN IMMEDIATE"
    types: Mapping[str, str] = {
        "key": "TEXT",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "int": "INTEGER",
        "real": "REAL",
        "text": "TEXT",
    }
    driver_errors = (sqlite3.Error,)
    #: primary result codes of a passing condition: busy, locked, disk full
    _UNAVAILABLE_CODES = frozenset(
        {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL}
    )

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.display = str(path)

    def connect(self) -> Raw:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a migration's
            # DDL and its version bump are one transaction. check_same_thread=False
            # only lets ``close`` (at shutdown) close it: no other thread uses it.
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_SECONDS, check_same_thread=False
            )
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open metadata store {self.display}: {exc}") from None
        return conn

    def setup(self, conn: StoreConnection) -> None:
        # task specs hold passwords: the file is its owner's only
        with contextlib.suppress(PermissionError):  # another user's file: theirs to set
            self.path.chmod(0o600)
        # Switching to WAL needs the file to itself for a moment, and SQLite does not
        # wait for that (no busy handler): several processes creating the store at
        # once retry here instead of failing with "database is locked".
        # (On the driver's connection: a failed statement would mark ours broken.)
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                cur = conn.raw.cursor()
                cur.execute("PRAGMA journal_mode")
                row = cur.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    cur.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.Error as exc:
                if self.classify(exc).kind is not ErrorKind.UNAVAILABLE:
                    raise conn._translate(exc) from None  # e.g. "file is not a database"
                if time.monotonic() > deadline:
                    raise self.unavailable(str(exc)) from None
                time.sleep(0.05)

    def classify(self, exc: BaseException) -> Classified:
        if isinstance(exc, sqlite3.IntegrityError):
            return Classified(ErrorKind.INTEGRITY, str(exc))
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in self._UNAVAILABLE_CODES:
            return Classified(ErrorKind.UNAVAILABLE, str(exc))
        return Classified(ErrorKind.OTHER, str(exc))

    def read_version(self, conn: StoreConnection) -> int:
        row = conn.execute("PRAGMA user_version").fetchone()
        return 0 if row is None else int(row[0])

    def write_version(self, conn: StoreConnection, version: int) -> None:
        # PRAGMA takes no bound parameters; version is our own integer constant.
        conn.execute(f"PRAGMA user_version = {int(version)}")


class MySQLBackend(_ServerBackend):
    """MariaDB (tested: 10.11) and the MySQL protocol, over PyMySQL.

    Sessions run with ``ANSI_QUOTES`` (the store's SQL quotes the reserved column
    names ``key`` and ``rows`` with double quotes, as SQLite and PostgreSQL do),
    strict mode, READ COMMITTED (no gap locks between the tasks' rows) and a lock
    wait of ``BUSY_SECONDS``. Text columns are utf8mb4 with a binary collation:
    names compare as on SQLite, case and accents included. ``FOUND_ROWS``: an
    UPDATE's row count is the rows it matched, as on SQLite (``claim`` and
    ``set_state`` rely on it).

    DDL commits by itself here, so a migration step is not atomic: a crash in the
    middle can leave it half applied. Running it again skips what exists already
    (a table, column or index of the same name), so the next start completes it.
    """

    types: Mapping[str, str] = {
        "key": "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "id": "BIGINT AUTO_INCREMENT PRIMARY KEY",
        "int": "BIGINT",
        "real": "DOUBLE",
        "text": "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    }
    driver_errors = (pymysql.err.MySQLError, OSError)
    #: table, column, index (key name) exists: a re-run of an interrupted step
    _EXISTS_CODES = frozenset({1050, 1060, 1061})

    def __init__(self, address: ServerAddress) -> None:
        super().__init__(address)
        # the endpoint classifier knows MySQL's codes (what is transient, what is
        # the user's to fix); the store reuses it
        self._endpoint = Endpoint(
            flavor=_MYSQL_SCHEMES[address.scheme],
            host=address.host,
            port=address.port,
            user=address.user,
            database=address.database,
        )

    def connect(self) -> Raw:
        try:
            conn = pymysql.connect(
                host=self.address.host,
                port=self.address.port,
                user=self.address.user,
                password=self.address.password or "",
                database=self.address.database,
                charset="utf8mb4",
                autocommit=True,
                client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
                connect_timeout=CONNECT_SECONDS,
                read_timeout=IO_SECONDS,
                write_timeout=IO_SECONDS,
            )
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES,"
                        "NO_ENGINE_SUBSTITUTION', innodb_lock_wait_timeout = %s",
                        (max(1, int(BUSY_SECONDS)),),
                    )
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            except BaseException:
                conn.close()
                raise
        except self.driver_errors as exc:
            raise self._open_error(exc) from None
        return conn

    def classify(self, exc: BaseException) -> Classified:
        error = translate_mysql(exc, self._endpoint, password=self.address.password)
        text = self._scrub(error.message)
        if isinstance(exc, pymysql.err.IntegrityError):
            return Classified(ErrorKind.INTEGRITY, text)
        if exc.args and exc.args[0] == _MYSQL_DEADLOCK:
            return Classified(ErrorKind.CONFLICT, text)
        if isinstance(error, RetriableError):
            return Classified(ErrorKind.UNAVAILABLE, text)
        if isinstance(error, ConfigError):
            return Classified(ErrorKind.CONFIG, text, error.hint)
        return Classified(ErrorKind.OTHER, text)

    def upsert(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        update = ", ".join(f"{c} = VALUES({c})" for c in columns if c not in keys)
        return f"{_insert(table, columns)} ON DUPLICATE KEY UPDATE {update}"

    def version_table_exists(self, conn: StoreConnection) -> bool:
        row = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = ?",
            (VERSION_TABLE,),
        ).fetchone()
        return row is not None and int(row[0]) > 0

    @contextmanager
    def migration_lock(self, conn: StoreConnection) -> Iterator[None]:
        # A named lock of the connection, per store database: DDL commits the
        # transaction it is in, so no row lock could be held across a step.
        name = "LEFT(CONCAT('duosync_store_migrate.', DATABASE()), 64)"
        wait = max(1, int(BUSY_SECONDS))
        row = conn.execute(f"SELECT GET_LOCK({name}, ?)", (wait,)).fetchone()
        if row is None or row[0] != 1:
            raise self.unavailable(
                f"another process has been migrating its schema for {BUSY_SECONDS:.0f} s"
            )
        try:
            yield
        finally:
            if not conn.broken:  # a lost connection released it
                with contextlib.suppress(DuosyncError):
                    conn.execute(f"SELECT RELEASE_LOCK({name})")

    def already_applied(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, pymysql.err.MySQLError)
            and bool(exc.args)
            and exc.args[0] in self._EXISTS_CODES
        )


class PostgresBackend(_ServerBackend):
    """PostgreSQL (tested: 15), over psycopg 3 in autocommit mode with explicit
    transactions. DDL is transactional here: a migration step and its version bump
    commit together, under an advisory lock of the transaction. Sessions wait at
    most ``BUSY_SECONDS`` for a lock, and the server ends a session left idle in a
    transaction (a client stopped while holding row locks) after a minute."""

    types: Mapping[str, str] = {
        "key": "TEXT",
        "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
        "text": "TEXT",
    }
    #: advisory locks are per database: one key serves every store database
    _MIGRATE_LOCK = zlib.crc32(b"duosync_store_migrate")
    #: SQLSTATE classes of errors the user fixes: authorization, unknown database
    _CONFIG_STATES = ("28", "3D")
    #: deadlock_detected, serialization_failure: the transaction was rolled back
    _CONFLICT_STATES = ("40P01", "40001")
    #: what libpq says when it could not log in (no SQLSTATE on connect errors)
    _CONFIG_TEXT = ("authentication failed", "does not exist", "no pg_hba.conf entry")
    _CONFIG_HINT = "check the user, password and database of the store's URL (create the database)"

    def __init__(self, address: ServerAddress) -> None:
        super().__init__(address)
        import psycopg  # only a PostgreSQL store pays for importing it

        self._psycopg = psycopg
        self.driver_errors = (psycopg.Error,)

    def connect(self) -> Raw:
        options: dict[str, Any] = {
            "host": self.address.host,
            "port": self.address.port,
            "user": self.address.user,
            "dbname": self.address.database,
            "connect_timeout": int(CONNECT_SECONDS),
            "application_name": "duosync store",
            "client_encoding": "UTF8",
            "options": f"-c lock_timeout={int(BUSY_SECONDS * 1000)}ms"
            " -c idle_in_transaction_session_timeout=60s",
            # libpq has no read timeout: keepalives and an unacknowledged-send limit
            # notice a dead link in about a minute
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": int(IO_SECONDS * 1000),
        }
        if self.address.password is not None:
            options["password"] = self.address.password
        try:
            conn: psycopg.Connection[Any] = self._psycopg.connect(autocommit=True, **options)
        except self._psycopg.Error as exc:
            raise self._open_error(exc) from None
        return conn

    def classify(self, exc: BaseException) -> Classified:
        errors = self._psycopg
        text = self._scrub(" ".join(str(exc).split()) or type(exc).__name__)
        state = getattr(exc, "sqlstate", None) or ""
        if isinstance(exc, errors.IntegrityError):
            return Classified(ErrorKind.INTEGRITY, text)
        if state in self._CONFLICT_STATES:
            return Classified(ErrorKind.CONFLICT, text)
        if state.startswith(self._CONFIG_STATES) or (
            not state and any(t in text for t in self._CONFIG_TEXT)
        ):
            return Classified(ErrorKind.CONFIG, text, self._CONFIG_HINT)
        if isinstance(exc, errors.OperationalError | errors.InterfaceError):
            return Classified(ErrorKind.UNAVAILABLE, text)
        return Classified(ErrorKind.OTHER, text)

    def version_table_exists(self, conn: StoreConnection) -> bool:
        row = conn.execute("SELECT to_regclass(?) IS NOT NULL", (VERSION_TABLE,)).fetchone()
        return row is not None and bool(row[0])

    def prepare_migration(self, conn: StoreConnection) -> None:
        # held until the transaction ends: concurrent migrations run one at a time
        conn.execute("SELECT pg_advisory_xact_lock(?)", (self._MIGRATE_LOCK,))
        super().prepare_migration(conn)


def open_backend(location: StoreLocation) -> Backend:
    """The backend of *location* (a URL is checked: ``ConfigError``); nothing is
    opened yet."""
    if not is_url(location):
        return SQLiteBackend(Path(location).expanduser())
    address = ServerAddress.parse(str(location))
    if address.scheme in _MYSQL_SCHEMES:
        return MySQLBackend(address)
    return PostgresBackend(address)
