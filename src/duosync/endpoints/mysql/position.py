"""Binlog positions of MySQL/MariaDB sources."""

from __future__ import annotations

from typing import Any

from pymysql.connections import Connection

from duosync.core.positions import BinlogPosition
from duosync.errors import FatalError

__all__ = ["BinlogPosition", "current_position", "first_binlog_position"]


def current_position(conn: Connection[Any], flavor: str) -> BinlogPosition:
    """The server's binlog write position now (``SHOW MASTER STATUS``).

    Used as the full-migration handover: read *before* the first chunk is read, so
    every change committed during the copy lies after it. The incremental phase
    starts here and applies idempotently until it has passed the copy's end.
    """
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        if row is None:
            raise FatalError(
                "binary logging is off on the source: no position to start from",
                hint="start the server with --log-bin",
            )
        file, offset = str(row[0]), int(row[1])
        gtid_var = "@@gtid_binlog_pos" if flavor == "mariadb" else "@@gtid_executed"
        cur.execute(f"SELECT {gtid_var}")
        gtid = cur.fetchone()
    value = gtid[0] if gtid else None
    if isinstance(value, bytes):
        value = value.decode()
    return BinlogPosition(file=file, offset=offset, gtid=str(value) if value else None)


def first_binlog_position(conn: Connection[Any]) -> BinlogPosition:
    """The start of the oldest binlog the server still has (``SHOW BINARY LOGS``)."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        row = cur.fetchone()
    if row is None:
        raise FatalError("the source has no binary logs", hint="start it with --log-bin")
    name = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
    # Offset 4: just after the binlog file's magic bytes, where its first event starts.
    return BinlogPosition(file=name, offset=4)
