"""Opening MySQL-protocol connections and turning driver errors into ours.

All MySQL-family endpoints (MySQL, MariaDB, OceanBase MySQL mode) speak the same
protocol, so this is the one place a PyMySQL connection is made and the one place
its exceptions are classified. The rest of the code never catches ``pymysql.err``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.connections import Connection as Connection

from duosync.config import Endpoint
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
    4031,  # disconnected by server (idle timeout)
}
_DATA_CODES = {
    1048,  # column cannot be null
    1062,  # duplicate entry
    1264,  # out of range value
    1292,  # incorrect date/time value
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
    """
    password = endpoint.resolved_password()
    try:
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
    except pymysql.err.MySQLError as exc:
        raise translate(exc, endpoint, password=password, action="connect") from None


def translate(
    exc: BaseException,
    endpoint: Endpoint,
    *,
    password: str | None = None,
    action: str | None = None,
    table: str | None = None,
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
    secret = password if password is not None else _safe_password(endpoint)
    if secret:
        text = text.replace(secret, "***")
    what = f"cannot {action}: " if action else ""
    message = f"{what}{text}" + (f" [MySQL error {code}]" if code is not None else "")
    cls: type[DuosyncError]
    if code in _CONFIG_CODES:
        cls = ConfigError
    elif code in _RETRIABLE_CODES or isinstance(exc, (OSError, pymysql.err.InterfaceError)):
        cls = RetriableError
    elif code in _DATA_CODES:
        cls = DataError
    else:
        cls = FatalError
    return cls(
        message,
        endpoint=endpoint.display,
        table=table,
        hint=_HINTS.get(code) if code is not None else None,
    )


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
