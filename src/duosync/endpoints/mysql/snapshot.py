"""The MySQL family's ``SnapshotReader``: chunks rendered by the source server.

The full copy's hot loop is "read a row, escape every value, write it out". Done in
Python that costs microseconds per value and holds the GIL, so parallel threads do
not help. Instead the source renders each row in the form the target takes
(``literals``: INSERT ``VALUES`` tuples; ``tsv``: ``LOAD DATA`` lines; ``pg_copy``:
PostgreSQL ``COPY`` text) and
concatenates a whole chunk with ``GROUP_CONCAT``: Python receives one value per
chunk and forwards it unchanged. ``ROWS`` (the ``ignore`` mode) reads the server's
text of each value through a connection without result converters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.core.copying import Chunk, ChunkData, ChunkForm, CopyJob, KeyedRow, Rendered
from duosync.endpoints.mysql import literals, pg_copy, tsv
from duosync.endpoints.mysql.connection import translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.ranges import plan_chunks, range_condition
from duosync.endpoints.mysql.sessions import max_packet, text_connect

#: Upper bound of one piece of rendered text: larger statements gain nothing and
#: cost memory on both servers.
MAX_PIECE = 16 << 20
#: Room left in a packet for a statement's ``INSERT INTO ... (columns) VALUES``.
HEADER_ROOM = 256 << 10


def piece_limit(packet: int) -> int:
    """Bytes of rendered text per piece on a server taking *packet*-byte packets."""
    return max(min(MAX_PIECE, packet - HEADER_ROOM), 64 << 10)


class MySQLSnapshotReader:
    """``core.interfaces.SnapshotReader`` on one text session (READ COMMITTED)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn = text_connect(endpoint)
        self._limit = 0  # group_concat_max_len set on the session

    def _error(self, exc: pymysql.err.MySQLError, table: str | None = None) -> Exception:
        return translate(exc, self.endpoint, table=table)

    def plan(self, table: Table, key: Sequence[str], chunk_rows: int) -> list[Chunk]:
        try:
            return plan_chunks(self._conn, table.database, table.name, key, chunk_rows)
        except pymysql.err.MySQLError as exc:
            raise self._error(exc, table.qualified) from None

    def max_piece(self) -> int:
        try:
            return piece_limit(max_packet(self._conn))
        except pymysql.err.MySQLError as exc:
            raise self._error(exc) from None

    def read(self, job: CopyJob, chunk: Chunk, form: ChunkForm, limit: int) -> ChunkData:
        try:
            if form is ChunkForm.ROWS:
                return self._rows(job, chunk)
            self._set_limit(limit)
            expr = _row_expr(job, form)
            separator = b"," if form is ChunkForm.MYSQL_VALUES else b"\n"
            pieces = self._rendered(job, chunk, limit, expr, separator)
        except pymysql.err.MySQLError as exc:
            raise self._error(exc, job.name) from None
        rows, nbytes = sum(p.rows for p in pieces), sum(len(p.text) for p in pieces)
        return ChunkData(form, rows, nbytes, pieces=pieces)

    def read_keyed(self, job: CopyJob, chunk: Chunk, form: ChunkForm) -> list[KeyedRow]:
        row = _row_expr(job, form)
        keys = ", ".join(quote_ident(k) for k in job.key) or "NULL"
        where, args = _chunk_where(job, chunk)
        table = qualified(job.source.database, job.source.name)
        # in key order, so that of two rows colliding on the target the later is named
        order = f" ORDER BY {keys}" if job.key else ""
        try:
            with self._conn.cursor() as cur:
                cur.execute(f"SELECT {keys}, {row} FROM {table} WHERE {where}{order}", args)
                got = list(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            raise self._error(exc, job.name) from None
        return [KeyedRow(tuple(key) if job.key else (), bytes(text)) for *key, text in got]

    def close(self) -> None:
        self._conn.close()

    def _set_limit(self, limit: int) -> None:
        """Let GROUP_CONCAT build pieces up to *limit* bytes on this session."""
        if limit != self._limit:
            with self._conn.cursor() as cur:
                cur.execute("SET SESSION group_concat_max_len = %s", (limit,))
            self._limit = limit

    def _rendered(
        self, job: CopyJob, chunk: Chunk, limit: int, expr: str, separator: bytes
    ) -> list[Rendered]:
        """The chunk's rows rendered by *expr*, joined by *separator*, in pieces
        under *limit*: one GROUP_CONCAT per chunk; when its text would reach *limit*
        (group_concat_max_len, which then cuts it) the rows are read one by one
        instead and packed into several pieces."""
        where, args = _chunk_where(job, chunk)
        table = qualified(job.source.database, job.source.name)
        with self._conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), GROUP_CONCAT({expr} SEPARATOR %s) FROM {table} WHERE {where}",
                [separator.decode(), *args],
            )
            got = cur.fetchone()
            count, text = (int(got[0]), got[1]) if got else (0, None)
            if count == 0 or text is None:
                return []
            if len(text) < limit:
                return [Rendered(bytes(text), count)]
            cur.execute(f"SELECT {expr} FROM {table} WHERE {where}", args)
            pieces: list[Rendered] = []
            batch: list[bytes] = []
            size = 0
            for (value,) in cur.fetchall():
                if batch and size + len(value) + 1 > limit:
                    pieces.append(Rendered(separator.join(batch), len(batch)))
                    batch, size = [], 0
                batch.append(bytes(value))
                size += len(value) + 1
            if batch:
                pieces.append(Rendered(separator.join(batch), len(batch)))
        return pieces

    def _rows(self, job: CopyJob, chunk: Chunk) -> ChunkData:
        """The chunk's rows as the server's text (bytes for binary types)."""
        cols = ", ".join(_select_expr(job.source, s) for s, _ in job.columns)
        where, args = _chunk_where(job, chunk)
        table = qualified(job.source.database, job.source.name)
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM {table} WHERE {where}", args)
            rows = list(cur.fetchall())
        return ChunkData(ChunkForm.ROWS, len(rows), _row_bytes(rows), typed=rows)


def _row_expr(job: CopyJob, form: ChunkForm) -> str:
    """SQL rendering one source row of *job* in *form* (not ``ROWS``)."""
    names = [s for s, _ in job.columns]
    if form is ChunkForm.MYSQL_VALUES:
        return literals.row_expr(job.source, names)
    if form is ChunkForm.MYSQL_LOAD_LINES:
        return tsv.line_expr(job.source, names)
    if form is ChunkForm.PG_COPY_TEXT:
        return pg_copy.line_expr(job.source, names)
    raise ValueError(f"rows are not rendered in form {form}")


def _chunk_where(job: CopyJob, chunk: Chunk) -> tuple[str, list[Any]]:
    cond, args = range_condition(job.key, chunk.lower, chunk.upper)
    # The statement is formatted with bound arguments, so a '%' of the user's filter
    # (LIKE 'FR%') must be doubled to reach the server as written.
    where = f" AND ({job.where.replace('%', '%%')})" if job.where else ""
    return f"({cond}){where}", args


def _select_expr(table: Table, name: str) -> str:
    # FLOAT's text form has 6 significant digits, which would round the value; the
    # double that holds the float exactly rounds back to the very same float.
    if table.column(name).data_type == "float":
        return f"CAST({quote_ident(name)} AS DOUBLE)"
    return quote_ident(name)


def _row_bytes(rows: Sequence[Sequence[Any]]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for r in rows for v in r)
