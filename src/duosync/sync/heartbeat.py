"""Source heartbeat: a row written every few seconds into the source's ``oms``
database, so that an idle source still produces transactions: the sync position
advances (a restart does not re-read hours of unrelated binlog) and lag stays
measurable (it is computed from source commit times)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pymysql
from pymysql.connections import Connection

from duosync.config import Endpoint
from duosync.core.catalog import OMS_DATABASE
from duosync.endpoints.mysql.connection import connect, translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.errors import DuosyncError

TABLE = qualified(OMS_DATABASE, "duosync_heartbeat")


class SourceHeartbeat:
    """Writes ``(task, ts)`` every *seconds* until stopped; one background thread."""

    def __init__(self, source: Endpoint, task: str, seconds: float) -> None:
        self.source = source
        self.task = task
        self.seconds = seconds
        self.error: DuosyncError | None = None
        self._stop = threading.Event()
        self._conn: Connection[Any] | None = connect(source)
        try:
            with self._conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}")
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (task VARCHAR(64) PRIMARY KEY,"
                    " ts DOUBLE NOT NULL)"
                )
        except pymysql.err.MySQLError as exc:
            self._conn.close()
            raise translate(exc, source, table=f"{OMS_DATABASE}.duosync_heartbeat") from None
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # A failed heartbeat only costs lag visibility: report it, reconnect at the
        # next beat (the source may be restarting), never stop sync for it.
        while not self._stop.wait(self.seconds):
            try:
                if self._conn is None:
                    self._conn = connect(self.source)
                with self._conn.cursor() as cur:
                    cur.execute(
                        f"REPLACE INTO {TABLE} (task, ts) VALUES (%s, %s)",
                        (self.task, time.time()),
                    )
                self.error = None
            except DuosyncError as exc:
                self.error = exc
            except pymysql.err.MySQLError as exc:
                self.error = translate(exc, self.source)
                self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drop()
