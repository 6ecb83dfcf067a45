"""Opening MySQL-protocol connections and turning driver errors into ours.

All MySQL-family endpoints (MySQL, MariaDB, OceanBase MySQL mode) speak the same
protocol, so this is the one place a PyMySQL connection is made and the one place
its exceptions are classified. The rest of the code never catches ``pymysql.err``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.connections import Connection as Connection
from pymysql.constants import CLIENT, CR

from duosync.config import Endpoint, Flavor
from duosync.errors import ConfigError, DataError, DuosyncError, FatalError, RetriableError

# Server error codes, by what the user (or the runner) should do about them.
_CONFIG_CODES = {
    1044,  # access denied to database
    1045,  # access denied (wrong user or password)
    1049,  # unknown database
    1251,  # client does not support authentication protocol
    1698,  # access denied (unix_socket / auth plugin)
}
_RETRIABLE_CODES = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock
    2002,  # cannot connect through socket
    2003,  # cannot connect to host
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection (system error)
    1158,
    1159,
    1160,
    1161,  # network read/write errors and timeouts
    1317,  # query interrupted (a server shutting down interrupts its queries)
    1792,  # cannot execute in a read-only transaction
    1836,  # running in read-only mode
    1927,  # connection killed
    4031,  # disconnected by server (idle timeout)
}
#: 1290 "the server is running with the --read-only option" is retriable (a target
#: during a failover); the same code for other options (--secure-file-priv) is not
_READ_ONLY_TEXT = ("read-only", "read_only", "super_read_only")
#: OceanBase's own codes (its MySQL mode reports internal errors by their number;
#: MariaDB uses some of these numbers for other errors, so only on OceanBase)
_OCEANBASE_RETRIABLE = {
    4008,  # OB_SERVER_IS_INIT: the server is starting
    4009,  # OB_SERVER_IS_STOPPING
    4012,  # OB_TIMEOUT
    4023,  # OB_EAGAIN
    4038,  # OB_NOT_MASTER: a leader moved
    4121,
    4122,
    4124,  # RPC send/post/connect errors between components
    5627,  # OB_SCHEMA_EAGAIN: a schema version not yet readable after DDL
    6002,  # OB_TRANS_ROLLBACKED
    6210,
    6211,
    6212,
    6224,  # transaction timeout, killed, statement timeout, need rollback
}
#: OceanBase answers "Invalid argument" (OB_INVALID_ARGUMENT, MySQL 1210) for
#: passing internal states too (it was seen right after a DDL on a table, and went
#: away within a minute); retried, but given up after this many seconds, so one
#: that persists fails the task naming the statement and table
_OCEANBASE_INVALID_ARGUMENT = 1210
OCEANBASE_INVALID_ARGUMENT_GIVE_UP = 300.0
_DATA_CODES = {
    1048,  # column cannot be null
    1062,  # duplicate entry
    1264,  # out of range value
    1292,  # incorrect date/time value
    1364,  # a NOT NULL column without a default left out of the row
    1366,  # incorrect value for column
    1406,  # data too long
    1451,  # foreign key: cannot delete parent
    1452,  # foreign key: cannot add child
}

_HINTS = {
    1045: "check the user name and password (or the variable named by password_env)",
    2003: "is the server running and listening on that host and port?",
    1049: "create the database or fix the database name in the URL",
}


def connect(endpoint: Endpoint, *, database: str | None = None, **options: Any) -> Connection[Any]:
    """Open one connection to *endpoint*, raising a classified ``DuosyncError``.

    Connections are opened with autocommit on, utf8mb4 and ``time_zone='+00:00'``:
    the session time zone is pinned because TIMESTAMP values are converted by it and
    OceanBase defaults to +08:00; reading and writing every side in UTC keeps
    TIMESTAMP values identical across endpoints.

    TLS is PyMySQL's default (used when the server offers it, unverified, plain
    text otherwise), with one SSL context per process instead of one per
    connection (``_tls_options``).
    """
    password = endpoint.resolved_password()
    where = (endpoint.host, endpoint.port)
    explicit = any(k.startswith("ssl") for k in options)
    chosen = options if explicit else {**options, **_tls_options(where)}
    try:
        try:
            conn = _open(endpoint, password, database, chosen)
        except pymysql.err.OperationalError as exc:
            ours = not explicit and "ssl" in chosen
            if not ours or not exc.args or exc.args[0] != CR.CR_SSL_CONNECTION_ERROR:
                raise
            # The server stopped offering TLS: the default connects in plain text.
            chosen = options
            conn = _open(endpoint, password, database, chosen)
        offers = bool(getattr(conn, "server_capabilities", 0) & CLIENT.SSL)
        if not explicit:
            if offers and chosen.get("ssl_disabled"):
                # It offers TLS since: connect as the default would, with TLS.
                conn.close()
                conn = _open(endpoint, password, database, {**options, "ssl": _context()})
            _OFFERS_TLS[where] = offers
    except pymysql.err.MySQLError as exc:
        raise translate(exc, endpoint, password=password, action="connect") from None
    _keepalive(conn)
    return conn


def _open(
    endpoint: Endpoint, password: str, database: str | None, options: dict[str, Any]
) -> Connection[Any]:
    return pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=password,
        database=database if database is not None else endpoint.database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=endpoint.connect_timeout,
        init_command="SET time_zone = '+00:00'",
        **options,
    )


#: (host, port) -> whether the server's last greeting offered TLS
_OFFERS_TLS: dict[tuple[str, int], bool] = {}
_CONTEXT: list[ssl.SSLContext] = []
_CONTEXT_LOCK = threading.Lock()


def _tls_options(where: tuple[str, int]) -> dict[str, Any]:
    """Driver options that give PyMySQL's default TLS behaviour for the server at
    *where* without its cost: left alone, PyMySQL builds an SSL context, CA bundle
    and all, for every connection before it knows whether the server offers TLS
    (30-40 ms of CPU holding the GIL, measured: 0.47 s of a 1.6 s copy's CPU
    went there). A server whose last greeting offered TLS gets the process's one
    context; one that offered none gets plain text (``connect`` checks the
    greeting each time and follows a server that changed)."""
    offers = _OFFERS_TLS.get(where)
    if offers is None:
        return {}
    return {"ssl": _context()} if offers else {"ssl_disabled": True}


def _context() -> ssl.SSLContext:
    """The context PyMySQL builds when given no TLS option: no CA, so neither the
    certificate nor the host name is checked (its "preferred" mode)."""
    with _CONTEXT_LOCK:
        if not _CONTEXT:
            ctx = ssl.create_default_context()
            ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            _CONTEXT.append(ctx)
        return _CONTEXT[0]


def _keepalive(conn: Connection[Any]) -> None:
    """TCP keepalive: a server whose host vanished (power, network) is noticed in
    about a minute, instead of never, by a connection that waits for it."""
    sock: Any = getattr(conn, "_sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def translate(
    exc: BaseException,
    endpoint: Endpoint,
    *,
    password: str | None = None,
    action: str | None = None,
    table: str | None = None,
    statement: str | bytes | None = None,
) -> DuosyncError:
    """Classify a driver exception as one of our errors, naming the endpoint.

    The driver's text is kept (it is what a DBA will search for) but scrubbed of the
    password in case a server echoes it back in some message.
    """
    code: int | None = None
    text = str(exc)
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
        text = str(exc.args[1]) if len(exc.args) > 1 else text
    if not text.strip() or text == "(0, '')":
        # PyMySQL's InterfaceError(0, ''): the connection was already gone
        text = "the connection was lost (the server went away or closed it)"
    secret = password if password is not None else _safe_password(endpoint)
    if secret:
        text = text.replace(secret, "***")
    what = f"cannot {action}: " if action else ""
    message = f"{what}{text}" + (f" [MySQL error {code}]" if code else "")
    if statement:
        message += f"; statement: {_short(statement)}"
    cls = _classify(code, text, exc, endpoint)
    error = cls(
        message,
        endpoint=endpoint.display,
        table=table,
        hint=_HINTS.get(code) if code is not None else None,
    )
    if (
        isinstance(error, RetriableError)
        and code == _OCEANBASE_INVALID_ARGUMENT
        and endpoint.flavor is Flavor.OCEANBASE
    ):
        error.give_up_after = OCEANBASE_INVALID_ARGUMENT_GIVE_UP
    return error


def _classify(
    code: int | None, text: str, exc: BaseException, endpoint: Endpoint
) -> type[DuosyncError]:
    oceanbase = endpoint.flavor is Flavor.OCEANBASE
    if code in _CONFIG_CODES:
        return ConfigError
    if (
        code in _RETRIABLE_CODES
        or isinstance(exc, (OSError, pymysql.err.InterfaceError))
        or (code == 1290 and any(t in text.lower() for t in _READ_ONLY_TEXT))
        or (oceanbase and code in _OCEANBASE_RETRIABLE)
        or (oceanbase and code == _OCEANBASE_INVALID_ARGUMENT)
    ):
        return RetriableError
    if code in _DATA_CODES:
        return DataError
    return FatalError


def last_statement(cur: Any) -> str | None:
    """The head of the statement *cur* ran last, cut before its values (an error
    message names the statement, not the user's data)."""
    executed = getattr(cur, "_executed", None)
    if not isinstance(executed, str | bytes):
        return None
    text = executed.decode("utf-8", "replace") if isinstance(executed, bytes) else executed
    for cut in (" VALUES", " values", " WHERE ", " where "):
        at = text.find(cut)
        if at > 0:
            return text[:at] + cut + " ..."
    return text


def _short(statement: str | bytes, limit: int = 200) -> str:
    """A statement for an error message: its start (values may be megabytes)."""
    text = statement.decode("utf-8", "replace") if isinstance(statement, bytes) else statement
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _safe_password(endpoint: Endpoint) -> str:
    try:
        return endpoint.resolved_password()
    except ConfigError:
        return ""


@contextmanager
def driver_errors(endpoint: Endpoint, *, table: str | None = None) -> Iterator[None]:
    """Within the block, driver exceptions surface as classified ``DuosyncError``s."""
    try:
        yield
    except (pymysql.err.MySQLError, OSError) as exc:
        raise translate(exc, endpoint, table=table) from None


def query_all(conn: Connection[Any], sql: str, args: Any = None) -> list[dict[str, Any]]:
    """Run *sql* with bound *args* and return every row as a dict keyed by column name."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())
