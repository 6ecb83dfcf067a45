"""PostgreSQL's ``ChunkSink``: each chunk in one transaction, by ``COPY FROM STDIN``.

The source renders the chunk as COPY text (``endpoints.mysql.pg_copy``), which is
streamed to the server untouched. A resumed chunk's key range is emptied first in
the same transaction, as on every sink (``core.interfaces.ChunkSink``). COPY fails
the whole statement on the first value the target refuses, so the chunk is all or
nothing; ``first_refused`` replays its rows one by one under savepoints of a
transaction that is rolled back, to name the row.

Not yet: ``ignore`` mode (a non-empty target table), which needs rows compared with
the target's; such a job is refused with a ``ConfigError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from duosync.core.copying import Chunk, ChunkData, ChunkForm, ChunkResult, CopyJob, KeyedRow
from duosync.endpoints.postgres.connection import connect, translate
from duosync.endpoints.postgres.dialect import qualified, quote_ident
from duosync.endpoints.postgres.ranges import range_condition
from duosync.errors import ConfigError

#: bytes of COPY text per piece: COPY streams, so this only bounds memory
MAX_PIECE = 16 << 20


class PostgresChunkSink:
    """``core.interfaces.ChunkSink`` on one psycopg connection."""

    def __init__(self, conninfo: str, display: str) -> None:
        self.display = display
        self._conn = connect(conninfo, display)

    def form(self, job: CopyJob) -> ChunkForm:
        if job.ignore_existing:
            raise ConfigError(
                f"{job.target.qualified}: copying into a non-empty PostgreSQL table"
                " (non_empty_target: ignore) is not supported yet",
                endpoint=self.display,
                table=job.target.qualified,
                hint="empty the target table, or use non_empty_target: stop",
            )
        return ChunkForm.PG_COPY_TEXT

    def max_piece(self) -> int:
        return MAX_PIECE

    def replay_form(self) -> ChunkForm:
        return ChunkForm.PG_COPY_TEXT

    def write(self, job: CopyJob, chunk: Chunk, data: ChunkData) -> ChunkResult:
        """Write one chunk in one transaction; safe to repeat (``ChunkSink``)."""
        if data.form is not ChunkForm.PG_COPY_TEXT:
            raise ValueError(f"a PostgreSQL sink takes COPY text, not {data.form}")
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                self._empty_if_resumed(cur, job, chunk)
                with cur.copy(_copy_statement(job)) as copy:
                    for piece in data.pieces:
                        copy.write(piece.text)
                        copy.write(b"\n")
        except psycopg.Error as exc:
            self._reset()
            raise translate(exc, self.display, table=job.target.qualified) from None
        return ChunkResult(job, chunk, data.rows, data.nbytes)

    def first_refused(
        self, job: CopyJob, chunk: Chunk, rows: Sequence[KeyedRow]
    ) -> tuple[KeyedRow, str] | None:
        try:
            with self._conn.cursor() as cur:
                self._empty_if_resumed(cur, job, chunk)
                for row in rows:
                    cur.execute("SAVEPOINT duosync_row")
                    try:
                        with cur.copy(_copy_statement(job)) as copy:
                            copy.write(row.text + b"\n")
                    except psycopg.Error as exc:
                        return row, translate(exc, self.display).message
                    cur.execute("RELEASE SAVEPOINT duosync_row")
        except psycopg.Error as exc:
            raise translate(exc, self.display, table=job.target.qualified) from None
        finally:
            self._reset()
        return None

    def close(self) -> None:
        self._conn.close()

    def _reset(self) -> None:
        # a failed transaction must be rolled back before the connection is used again
        with contextlib.suppress(psycopg.Error):
            self._conn.rollback()

    @staticmethod
    def _empty_if_resumed(cur: Any, job: CopyJob, chunk: Chunk) -> None:
        if chunk.index in job.resumed:
            cond, args = range_condition(job.target_key, chunk.lower, chunk.upper)
            cur.execute(
                f"DELETE FROM {qualified(job.target.database, job.target.name)} WHERE {cond}",
                args,
            )


def _copy_statement(job: CopyJob) -> Any:
    columns = ", ".join(quote_ident(t) for _, t in job.columns)
    table = qualified(job.target.database, job.target.name)
    # COPY takes no parameters; every name is quoted by the one helper
    return sql.SQL(f"COPY {table} ({columns}) FROM STDIN")
