"""The catalog side of capture: which tables a consumer captures, and keeping their
triggers current as the source's catalog changes (about every second).

Each watch reads the selected databases' tables and the captured tables' column
signatures and trigger counts, then per table: a new one is captured (its rows so
far are read once, ``since`` 0), a changed one gets triggers of a new version, a
dropped one is recorded as a version without columns, and one that lost its
triggers (dropped and created again between two watches) is recorded as dropped
and captured anew. Each of these writes its markers into the change log
(``capture.schema_watch``), which is where readers learn of them, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from duosync.config import Endpoint
from duosync.endpoints import open_inspector
from duosync.endpoints.oceanbase.capture import consumers, log, schema_watch, triggers
from duosync.errors import DuosyncError, FatalError

TableFilter = Callable[[str, str], bool]
Say = Callable[[str], None]
TableRef = tuple[str, str]


class CatalogWatch:
    def __init__(
        self,
        endpoint: Endpoint,
        consumer: str,
        tables: TableFilter | None,
        databases: Sequence[str],
        say: Say,
    ) -> None:
        self.endpoint = endpoint
        self.consumer = consumer
        self._filter = tables
        self._databases = tuple(databases)
        self._say = say
        #: tables this consumer captures, with their column signature
        self.captured: dict[TableRef, str] = {}
        #: a commit version before any DDL the next watch finds (0: unknown)
        self.since = 0

    def load(self, cur: Any) -> None:
        """Read which tables the consumer captures, with their latest signature."""
        cur.execute(f"SELECT tables FROM {log.CONSUMERS} WHERE consumer = %s", (self.consumer,))
        row = cur.fetchone()
        if row is None:
            raise FatalError(
                f"no change capture is installed for task {self.consumer}",
                endpoint=self.endpoint.display,
                hint="run the task again: its start installs capture",
            )
        refs = [(str(r[0]), str(r[1])) for r in json.loads(row[0])]
        cur.execute(
            f"SELECT db, tbl, ver, signature FROM {log.VERSIONS} v WHERE ver ="
            f" (SELECT MAX(ver) FROM {log.VERSIONS} w WHERE w.db = v.db AND w.tbl = v.tbl)"
        )
        latest = {(str(r[0]), str(r[1])): (int(r[2]), str(r[3])) for r in cur.fetchall()}
        self.captured = {}
        for ref in refs:
            ver, signature = latest.get(ref, (0, ""))
            # A refresh cut short (its READY never written) is redone by the first
            # watch: an unknown signature always differs.
            complete = ver > 0 and triggers.complete(cur, *ref, ver)
            self.captured[ref] = signature if complete else ""

    def watch(self, cur: Any) -> None:
        """Refresh the triggers of tables whose columns changed; capture new tables
        the selection matches; note dropped ones."""
        wanted = set(self.captured)
        if self._databases:
            marks = ", ".join(["%s"] * len(self._databases))
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
                f" WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE'",
                self._databases,
            )
            for db, tbl in cur.fetchall():
                ref = (str(db), str(tbl))
                if self._filter is None or self._filter(*ref):
                    wanted.add(ref)
        cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
        clock = int(cur.fetchone()[0] * 1_000_000_000)
        now = triggers.signatures(cur, wanted)
        counts = triggers.trigger_counts(cur, wanted)
        todo = [r for r in sorted(wanted) if self._stale(r, now.get(r), counts.get(r, 0))]
        if todo:
            # One refresh at a time per server (other tasks' watches, installs):
            # what they did meanwhile is read again under the lock.
            with consumers.locked(cur):
                now = triggers.signatures(cur, todo)
                counts = triggers.trigger_counts(cur, todo)
                changed = False
                for ref in todo:
                    changed = self._refresh(cur, ref, now.get(ref), counts.get(ref, 0)) or changed
                if changed:
                    consumers.set_tables(cur, self.consumer, sorted(self.captured))
        # Any DDL the next watch finds committed after this one's reading.
        self.since = clock - schema_watch.SINCE_MARGIN

    def _stale(self, ref: TableRef, new: str | None, triggers_now: int) -> bool:
        old = self.captured.get(ref)
        if new is None:
            return old is not None
        return old is None or new != old or triggers_now < 3

    def _refresh(self, cur: Any, ref: TableRef, new: str | None, triggers_now: int) -> bool:
        """Bring one table's capture up to its catalog; whether anything changed."""
        old = self.captured.get(ref)
        if new is None:
            if old is None:
                return False
            self._say(f"capture: {ref[0]}.{ref[1]} was dropped on the source; its changes stop")
            triggers.record_dropped(cur, *ref)
            del self.captured[ref]
            return True
        since = self.since
        if old is not None and triggers_now == 0:
            # Triggers gone while the table is there: dropped and created again (or
            # dropped by hand), so writes went unrecorded: start the table over.
            self._say(f"capture: {ref[0]}.{ref[1]} lost its triggers (re-created?): recapturing")
            triggers.record_dropped(cur, *ref)
            old, since = None, 0
        elif new == old and triggers_now >= 3:
            return False
        if old is None:
            since = 0  # a new table: all its rows are read once
        self._install(cur, ref, new, since)
        what = "captured from now on" if old is None else "columns changed: triggers refreshed"
        self._say(f"capture: {ref[0]}.{ref[1]} {what}")
        self.captured[ref] = new
        return True

    def _install(self, cur: Any, ref: TableRef, signature: str, since: int) -> None:
        with open_inspector(self.endpoint) as insp:
            table = insp.catalog([ref[0]]).database(ref[0]).table(ref[1])
        try:
            triggers.check_supported([table])
        except DuosyncError as exc:
            exc.endpoint = self.endpoint.display
            raise
        triggers.install_table(cur, table, signature, since)
