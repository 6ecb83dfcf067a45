"""A large source transaction applied as it is read, in one target transaction.

Why: a transaction is otherwise held whole, in memory, from its first row to its
commit (and then once more as a batch). A stream given a fragment size
(``sync.runner.FRAGMENT_ROWS``) hands such a transaction on in ``Fragment``s; each
is written as it comes, on the applier's first connection, inside one target
transaction that stays open until the source transaction's last part arrives.
Memory is then bounded by the fragment size (and the reader's queue), whatever
the size of the transaction.

Contract:

- All or nothing on the target: the rows of every fragment and the
  checkpoints of *all* partitions (moved to the transaction's position) commit
  together, at its end. A kill -9, a lost link or a stop before that leaves
  nothing of it: the target rolls the open transaction back, every checkpoint is
  still before it, and the restarted task reads it again from its start.
  Exactly once follows from that, as for batches (``sync.checkpoint``).
- Because every partition's checkpoint moves with it, no partition is ever
  past such a transaction while another is before it: a restart never replays
  one partially, so fragments need no per-partition filtering.
- The transaction's first statement marks it as ours (``checkpoint.touch``), so
  the opposite task of a two-way sync recognises it on its first fragment and
  drops the rest unread into memory. An echo found only at the end (a batch of
  the opposite task large enough to be fragmented, whose marker comes last) is
  rolled back: nothing of it lands.
- A fault while it is open (a deadlock, a lost connection) cannot be retried
  here, as the fragments already written are no longer held: it is raised, and
  the task runner retries the phase, which reads the transaction again.
- While it waits for the next fragment, the open transaction is kept from
  looking idle (``keepalive``): a cluster run's sessions end transactions idle
  for ``applier.IDLE_TRANSACTION_TIMEOUT`` seconds, and a source that is slow to
  read (a long trigger log) could otherwise never get one through.
- A row the target refuses rolls its fragment back to a savepoint and the
  fragment is written again row by row (``Applier.write_rows``): skipped rows are
  recorded in the conflict log at the commit, ``on_data_error: stop`` stops.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pymysql

from duosync.core.positions import Position
from duosync.errors import DataError
from duosync.sync import checkpoint, conflict_log
from duosync.sync.applier import Applier
from duosync.sync.batch import Batch

#: seconds without a statement after which ``keepalive`` sends one: well under
#: the idle transaction limit of a cluster run (5 s)
KEEPALIVE_SECONDS = 1.0


class StreamedApply:
    """One large source transaction, open on the target (see the module)."""

    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self.conn = applier.conns[0]
        self.conflicts: list[conflict_log.Conflict] = []
        self.rows = 0
        self.nbytes = 0
        self.cur: Any = self.conn.cursor()
        self._open = True
        self._last = time.monotonic()
        try:
            self.cur.execute("BEGIN")
            checkpoint.touch(self.cur, applier.task, applier.tenure)
        except pymysql.err.MySQLError as exc:
            self.abandon()
            raise applier.error(exc, None, None, self.cur) from None
        except BaseException:
            self.abandon()
            raise

    def write(self, part: Batch) -> None:
        """Write *part* (one partition: the rows of a fragment, or the last rows)."""
        tables = list(part.parts[0].values())
        self.rows += part.rows
        self.nbytes += part.nbytes
        self.conflicts += part.notes[0]
        try:
            self.cur.execute("SAVEPOINT duosync_part")
            table: str | None = None
            try:
                for changes in tables:
                    table = ".".join(changes.mapping.target)
                    self.conflicts += self.applier.write(self.cur, changes, part.checked)
            except pymysql.err.MySQLError as exc:
                error = self.applier.error(exc, table, None, self.cur)
                if not isinstance(error, DataError):
                    raise error from None
                self.cur.execute("ROLLBACK TO SAVEPOINT duosync_part")
                self.conflicts += self.applier.write_rows(self.cur, tables, part.checked, None)
        except pymysql.err.MySQLError as exc:
            self.abandon()
            raise self.applier.error(exc, None, None, self.cur) from None
        except BaseException:
            self.abandon()
            raise
        self._last = time.monotonic()

    def keepalive(self) -> None:
        """A statement on the open transaction when none was sent for a second."""
        if time.monotonic() - self._last < KEEPALIVE_SECONDS:
            return
        try:
            self.cur.execute("SELECT 1")
            self.cur.fetchall()
        except pymysql.err.MySQLError as exc:
            self.abandon()
            raise self.applier.error(exc, None, None, self.cur) from None
        self._last = time.monotonic()

    def commit(self, position: Position, commit_ts: float) -> int:
        """Move every partition's checkpoint to *position* and commit; the
        conflicts recorded."""
        applier = self.applier
        try:
            conflict_log.record(self.cur, applier.task, self.conflicts, position, commit_ts)
            for p in range(applier.partitions):
                checkpoint.advance(self.cur, applier.task, p, position, commit_ts, applier.tenure)
            checkpoint.confirm(applier.tenure, applier.task, position)
            self.cur.execute("COMMIT")
        except pymysql.err.MySQLError as exc:
            self.abandon()
            raise applier.error(exc, None, position, self.cur) from None
        except BaseException:
            self.abandon()
            raise
        self._close()
        return len(self.conflicts)

    def abandon(self) -> None:
        """Roll back what was written (an echo, a stop, a fault)."""
        if not self._open:
            return
        # The connection may be the casualty (server gone): then the server rolled
        # the transaction back already.
        with contextlib.suppress(pymysql.err.MySQLError, OSError):
            self.conn.rollback()
        self._close()

    def _close(self) -> None:
        self._open = False
        with contextlib.suppress(pymysql.err.MySQLError, OSError):
            self.cur.close()
