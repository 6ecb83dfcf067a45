"""Opening psycopg connections to a PostgreSQL target, and classifying its errors.

Every session runs in UTC with standard-conforming strings, so that timestamps
cross as they do between MySQL-family endpoints (``mysql.connection``) and DDL
literals mean what ``dialect.quote_literal`` wrote.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from duosync.config import Endpoint
from duosync.errors import ConfigError, DataError, DuosyncError, FatalError, RetriableError

#: SQLSTATE classes, by what the user (or the runner) should do about them
_DATA_CLASSES = ("22", "23")  # data exception, integrity constraint violation
_RETRIABLE_CLASSES = ("08", "40", "53", "57")  # connection, rollback, resources, operator
_CONFIG_CLASSES = ("28", "3D", "42")  # authorization, unknown catalog, syntax/access


def conninfo(endpoint: Endpoint) -> str:
    """The libpq connection string of *endpoint* (its database, else ``postgres``).
    It holds the password: never log or show it (``Endpoint.display`` instead)."""
    return make_conninfo(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=endpoint.resolved_password() or None,
        dbname=endpoint.database or "postgres",
        connect_timeout=max(1, int(endpoint.connect_timeout)),
        application_name="duosync",
    )


def connect_endpoint(endpoint: Endpoint, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """``connect`` to *endpoint*, named in errors by its display form."""
    conn = connect(conninfo(endpoint), endpoint.display)
    conn.autocommit = autocommit
    return conn


def connect(conninfo: str, display: str) -> psycopg.Connection[Any]:
    """One connection (autocommit off, explicit transactions); errors classified."""
    try:
        conn = psycopg.connect(conninfo)
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute("SET standard_conforming_strings = on")
            cur.execute("SET client_encoding = 'UTF8'")
        conn.commit()
    except psycopg.Error as exc:
        raise translate(exc, display, action="connect") from None
    return conn


def translate(
    exc: psycopg.Error, display: str, *, table: str | None = None, action: str = ""
) -> DuosyncError:
    """A psycopg error as ours, by its SQLSTATE class (no password: psycopg's messages
    name host and user, never the password)."""
    state = exc.sqlstate or ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = f"{action}: {first}" if action else first
    if state.startswith(_DATA_CLASSES):
        return DataError(text, endpoint=display, table=table)
    if isinstance(exc, psycopg.OperationalError) or state.startswith(_RETRIABLE_CLASSES):
        return RetriableError(text, endpoint=display, table=table)
    if state.startswith(_CONFIG_CLASSES):
        return ConfigError(text, endpoint=display, table=table)
    return FatalError(text, endpoint=display, table=table)
