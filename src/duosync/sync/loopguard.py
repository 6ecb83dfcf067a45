"""Loop prevention of two-way sync (DESIGN.md §3.4).

Every transaction an applier commits also updates its task's row in the target's
``oms.duosync_checkpoint`` (``sync.checkpoint``): that row is the transaction's
marker. The opposite task reads that database's change log; a transaction holding a
marker row of the opposite task was written by it, so it is dropped whole, never
split (its rows came from our own side in the first place).

For this the marker table must reach the reader: the binlog stream's table filter
lets it through, and on OceanBase it gets capture triggers like a data table.
"""

from __future__ import annotations

from duosync.core.catalog import OMS_DATABASE
from duosync.core.events import Fragment, RowChange, Transaction

#: the table whose rows mark a transaction as an applier's (database, table)
MARKER_TABLE = (OMS_DATABASE, "duosync_checkpoint")


def is_marker_table(database: str, table: str) -> bool:
    return database.lower() == MARKER_TABLE[0] and table.lower() == MARKER_TABLE[1]


class LoopGuard:
    """Recognises the transactions written by the task named *opposite* and by the
    task itself, *own*: when source and target are one server (databases renamed),
    a task reads back its own writes, which must not count as the source moving."""

    def __init__(self, own: str, opposite: str | None = None) -> None:
        self.names = {own} if opposite is None else {own, opposite}
        self.dropped = 0

    def echo(self, txn: Transaction | Fragment) -> bool:
        """Whether *txn* (or a fragment of it) carries one of those markers (and
        must be dropped)."""
        for change in txn.changes:
            if not isinstance(change, RowChange) or not is_marker_table(
                change.database, change.table
            ):
                continue
            lowered = [c.lower() for c in change.columns]
            if "task" not in lowered:
                continue
            i = lowered.index("task")
            image = change.after if change.after is not None else change.before
            value = image[i] if image is not None else None
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value in self.names:
                self.dropped += 1
                return True
        return False
