"""The text session: a connection whose results are the server's own text.

Copy, verify, the applier and DDL sync all read and write values as the servers
print them (bytes for binary types), never as Python values, so nothing is lost to
a Python type (zero dates, DECIMAL(65,30), TIME beyond 24 h).
"""

from __future__ import annotations

from typing import Any

import pymysql.converters
from pymysql.connections import Connection

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import connect, driver_errors

# Encoders only: arguments are escaped as usual, results stay text/bytes.
_TEXT_CONV = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}

#: seconds a copy or verify statement may wait for the server's answer: a chunk is
#: read or written in seconds, so silence this long means a dead (half-open) link
COPY_TIMEOUT = 300.0


def text_connect(
    endpoint: Endpoint, *, timeout: float | None = COPY_TIMEOUT, local_infile: bool = False
) -> Connection[Any]:
    """A connection whose results are the server's text (bytes for binary types).

    READ COMMITTED: writers of neighbouring key ranges must not block each other
    on gap locks (REPEATABLE READ locks the gap after an open-ended range).
    A read or write that waits longer than *timeout* raises ``RetriableError``
    (a connection whose peer vanished without a reset would wait forever); None
    waits as long as the statement takes (DDL). *local_infile* lets the session
    run ``LOAD DATA LOCAL`` (``endpoints.mysql.local_infile``)."""
    conn = connect(
        endpoint,
        conv=_TEXT_CONV,
        read_timeout=timeout,
        write_timeout=timeout,
        local_infile=local_infile,
    )
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # Literals rendered by QUOTE() and by the driver use backslash escapes.
        cur.execute("SELECT @@SESSION.sql_mode")
        row = cur.fetchone()
        modes = str(row[0] if row else "").split(",")
        if "NO_BACKSLASH_ESCAPES" in modes:
            kept = ",".join(m for m in modes if m and m != "NO_BACKSLASH_ESCAPES")
            cur.execute("SET SESSION sql_mode = %s", (kept,))
    return conn


def max_packet(conn: Connection[Any]) -> int:
    """The largest statement or result row the server takes (max_allowed_packet)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@max_allowed_packet")
        row = cur.fetchone()
    return int(row[0]) if row else 1 << 22
