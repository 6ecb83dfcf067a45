"""The small set of interfaces every endpoint package offers (DESIGN.md section 2).

``Inspector``, ``ChangeStream``, and the full copy's ``SnapshotReader`` and
``ChunkSink`` are protocols here; the engine packages (migrate, sync, verify,
schema, service) reach a family only through them and ``duosync.endpoints``'
factories. The applier exists once (MySQL-family SQL serves every family so far)
and joins this module when a second family needs its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from duosync.core.catalog import Catalog, ServerInfo, Table
from duosync.core.copying import Chunk, ChunkData, ChunkForm, ChunkResult, CopyJob, KeyedRow
from duosync.core.events import Fragment, Heartbeat, Transaction
from duosync.core.positions import Position


class Inspector(Protocol):
    """Reads an endpoint's catalog into the neutral model.

    Contract: read-only (never changes the server); one connection, used from one
    thread; every method may raise ``DuosyncError`` subclasses naming the endpoint.
    ``catalog`` takes a consistent look per call, but DDL running concurrently on the
    server may make tables appear or vanish between two calls.
    """

    def server_info(self) -> ServerInfo:
        """Flavour, version and the settings change capture depends on."""
        ...

    def list_databases(self) -> list[str]:
        """User databases, without system schemas and without our own ``oms`` database."""
        ...

    def catalog(self, databases: Sequence[str] | None = None) -> Catalog:
        """The catalog of *databases* (default: every user database).

        A named database that does not exist raises ``ConfigError``.
        """
        ...

    def close(self) -> None: ...


class ChangeStream(Protocol):
    """Committed source transactions, whole and in commit order, from a position.

    Contract: ``read(stop)`` yields ``Transaction``s strictly after the start
    position and ``Heartbeat``s while idle, returning soon after *stop* is set and
    never mid-transaction; a stream given a fragment size yields a large
    transaction's rows first as ``Fragment``s (the contract of ``Fragment``);
    ``position`` is where the next ``read`` would start (the
    last item yielded). ``confirm(p)`` may be called from any thread once every
    change up to ``p`` is durably applied (a log the source keeps for us may then be
    trimmed). One reader thread.
    """

    @property
    def position(self) -> Position: ...

    def read(self, stop: threading.Event) -> Iterator[Transaction | Heartbeat | Fragment]: ...

    def confirm(self, position: Position) -> None: ...

    def close(self) -> None: ...


class SnapshotReader(Protocol):
    """Reads a source table's rows chunk by chunk, rendered by the source server.

    Contract: one connection, used from one thread, in READ COMMITTED (each chunk
    is read as committed when its statement runs; the incremental phase replays
    what changed since the handover position taken before the first chunk). Every
    method raises ``DuosyncError`` subclasses naming the endpoint and table.
    """

    def plan(self, table: Table, key: Sequence[str], chunk_rows: int) -> list[Chunk]:
        """Chunks of about *chunk_rows* rows over *key* (``core.copying``)."""
        ...

    def max_piece(self) -> int:
        """The largest piece of rendered text this server can produce or take."""
        ...

    def read(self, job: CopyJob, chunk: Chunk, form: ChunkForm, limit: int) -> ChunkData:
        """The chunk's rows in *form*, in pieces under *limit* bytes."""
        ...

    def read_keyed(self, job: CopyJob, chunk: Chunk, form: ChunkForm) -> list[KeyedRow]:
        """The chunk's rows one by one in *form*, in key order, with their keys."""
        ...

    def close(self) -> None: ...


class ChunkSink(Protocol):
    """Writes chunks to a target table, each in one target transaction.

    Contract: ``write`` is all or nothing and safe to repeat: in ``stop`` mode a
    resumed chunk's range is emptied first (only our rows can be there), in
    ``ignore`` mode existing keys are kept and recorded. Raises ``DataError`` for a
    value the target refuses, ``RetriableError`` for what a retry may cure (the
    chunk was rolled back whole), ``FormRefused`` to have it again in another form.
    One connection, used from one thread.
    """

    def form(self, job: CopyJob) -> ChunkForm:
        """The form this sink takes *job*'s chunks in."""
        ...

    def max_piece(self) -> int:
        """The largest piece of rendered text this server takes in one statement."""
        ...

    def write(self, job: CopyJob, chunk: Chunk, data: ChunkData) -> ChunkResult: ...

    def replay_form(self) -> ChunkForm:
        """The form of the single rows ``first_refused`` takes."""
        ...

    def first_refused(
        self, job: CopyJob, chunk: Chunk, rows: Sequence[KeyedRow]
    ) -> tuple[KeyedRow, str] | None:
        """Write *rows* one by one in a transaction that is rolled back; the first
        the target refuses, with the target's reason, or None."""
        ...

    def close(self) -> None: ...


class SchemaSink(Protocol):
    """Creates tables on a target of another family than the source, and finishes
    them after the copy (so far: PostgreSQL; MySQL-family targets use ``schema``).

    Contract: ``create`` and ``finish`` are idempotent, so a task run again after a
    crash does only what is missing; errors are ``DuosyncError`` subclasses naming
    the endpoint and table."""

    def exists(self, table: Table) -> bool: ...

    def holds_rows(self, table: Table) -> bool:
        """Whether *table* exists and has a row."""
        ...

    def create(self, table: Table) -> list[str]:
        """Create *table* without its secondary indexes; notes on what changed."""
        ...

    def finish(self, tables: Sequence[Table], say: Callable[[str], None]) -> None:
        """Indexes, identity sequences past the copied keys, foreign keys."""
        ...

    def close(self) -> None: ...
