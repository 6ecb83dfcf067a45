"""Change events: what a ChangeStream yields and an Applier consumes.

Values are immutable and typed; no dicts cross a module boundary. Row values are
in the order of ``RowChange.columns`` and are Python values a driver can bind
without losing anything:

- integers (every size, signed or unsigned, BIT, YEAR) -> ``int``
- DECIMAL -> ``str`` (its exact text, e.g. ``"-12.340"``)
- FLOAT, DOUBLE -> ``float`` (FLOAT widened exactly; ``repr`` round-trips)
- DATE, TIME, DATETIME, TIMESTAMP -> ``str`` in the server's text form
  (``"2024-01-31"``, ``"-838:59:59.000000"``, ``"2024-01-31 10:00:00.123456"``,
  zero dates kept as ``"0000-00-00 00:00:00"``); TIMESTAMP in UTC, which is the
  session time zone of every duosync connection
- CHAR, VARCHAR, TEXT, ENUM, SET, JSON stored as text -> ``str`` (ENUM/SET as
  their labels, SET members joined by ``,``)
- BINARY, VARBINARY, BLOB, GEOMETRY (internal format) -> ``bytes``
- NULL -> ``None``
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from duosync.core.positions import Position


class Op(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


# Not frozen, unlike the other events: a frozen dataclass's __init__ sets each field
# through object.__setattr__, 1.0 us per row against 0.3 us here, which was a sixth
# of binlog decoding. Nothing changes a RowChange once made; treat it as immutable.
@dataclass(slots=True)
class RowChange:
    """One row written by a source transaction (never changed once made).

    ``before`` is None for an insert, ``after`` None for a delete; an update has
    both (full row images: the sources run with binlog_row_image=FULL).
    """

    op: Op
    database: str
    table: str
    columns: tuple[str, ...]
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A DDL statement as the source ran it, with the database it ran in
    (``USE db`` at the time: unqualified names in ``ddl`` refer to it)."""

    database: str
    ddl: str


Change = RowChange | SchemaChange


@dataclass(frozen=True, slots=True)
class Transaction:
    """One committed source transaction, whole and in source commit order.

    ``position`` is the point just after its commit: a stream restarted from it
    yields the next transaction. ``commit_ts`` is the source commit time (Unix
    seconds); ``origin`` is the server id that first wrote it (kept through
    replication chains). A DDL statement is a transaction of its own with one
    ``SchemaChange``.
    """

    id: str
    origin: int
    commit_ts: float
    position: Position
    changes: tuple[Change, ...]
    #: ``Fragment``s of this transaction yielded before it (a stream asked to
    #: fragment large transactions): its ``changes`` are then only the rest
    fragments: int = 0


@dataclass(frozen=True, slots=True)
class Fragment:
    """The next rows of a large transaction still being read (streams that were
    given a fragment size): its first rows in source order, so that no consumer
    must hold the whole transaction. The transaction itself, with its position,
    commit time and last rows, follows the fragments (``Transaction.fragments``
    counts them). A fragment has no position: nothing is committed on it, and a
    stream stopped or failed in the middle reads the transaction again from its
    start. ``id`` is the transaction's id; fragments never hold ``SchemaChange``s
    (a transaction with DDL is held whole). ``follows`` is the stream's position
    before the transaction: every transaction at or before it came earlier, and
    this one ends after it.
    """

    id: str
    follows: Position
    changes: tuple[RowChange, ...]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing committed since the last event, up to ``position`` (server heartbeat
    or an idle read timeout): lets a consumer checkpoint and check for a stop."""

    position: Position
    ts: float
