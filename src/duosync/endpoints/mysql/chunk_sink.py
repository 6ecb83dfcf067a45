"""The MySQL family's ``ChunkSink``: one target transaction per chunk.

``stop`` mode takes rendered text: ``LOAD DATA`` lines on a MariaDB or MySQL target
that allows ``LOAD DATA LOCAL`` (``@@local_infile``), INSERT ``VALUES`` lists
otherwise; ``ignore`` mode takes text rows, compares them with the target's and lets
the driver escape the ones it inserts.

A load is all or nothing like an INSERT (one InnoDB transaction per chunk), but
the server turns a refused value into a warning and skips a duplicate key instead
of failing. So a load that raised a warning, or wrote fewer rows than it was sent,
is rolled back and ``FormRefused`` asks for the chunk as INSERT values, whose
strict-mode errors are the same as without loads (and name the row at fault).
OceanBase targets always get INSERTs: seekdb's LOAD DATA was measured to commit
outside the open transaction (a ROLLBACK kept its rows) and to cut over-long values
and skip duplicate keys without a warning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pymysql

from duosync.config import Endpoint, Flavor
from duosync.core.copying import (
    Chunk,
    ChunkData,
    ChunkForm,
    ChunkResult,
    CopyJob,
    FormRefused,
    KeyedRow,
    Rendered,
)
from duosync.endpoints.mysql import tsv
from duosync.endpoints.mysql.connection import translate
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.local_infile import load_local
from duosync.endpoints.mysql.ranges import range_condition
from duosync.endpoints.mysql.sessions import max_packet, text_connect
from duosync.endpoints.mysql.snapshot import piece_limit


class MySQLChunkSink:
    """``core.interfaces.ChunkSink`` on one text session (READ COMMITTED)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        may_load = endpoint.flavor is not Flavor.OCEANBASE
        self._conn = text_connect(endpoint, local_infile=may_load)
        try:
            # MySQL 8 ships with local_infile OFF: such a target gets INSERTs
            self._loads = may_load and self._local_infile()
        except BaseException:
            self._conn.close()
            raise

    def _local_infile(self) -> bool:
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT @@local_infile")
                row = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.endpoint) from None
        return bool(row and str(row[0]) in ("1", "ON"))

    def form(self, job: CopyJob) -> ChunkForm:
        if job.ignore_existing:
            return ChunkForm.ROWS
        return ChunkForm.MYSQL_LOAD_LINES if self._loads else ChunkForm.MYSQL_VALUES

    def max_piece(self) -> int:
        try:
            return piece_limit(max_packet(self._conn))
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.endpoint) from None

    def write(self, job: CopyJob, chunk: Chunk, data: ChunkData) -> ChunkResult:
        """Write one chunk in one transaction; safe to repeat (``ChunkSink``)."""
        result = ChunkResult(job, chunk, data.rows, data.nbytes)
        try:
            with self._conn.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    self._empty_if_resumed(cur, job, chunk)
                    if data.form is ChunkForm.MYSQL_LOAD_LINES:
                        self._load_lines(job, data.pieces)
                    elif data.form is ChunkForm.MYSQL_VALUES:
                        header = _insert_header(job).encode()
                        for piece in data.pieces:
                            _execute_bytes(cur, header + piece.text)
                    else:
                        result.rows = self._insert_rows(cur, job, chunk, data.typed, result)
                    cur.execute("COMMIT")
                except BaseException:
                    # a dead connection cannot roll back (the server did): keep the first error
                    with contextlib.suppress(pymysql.err.MySQLError, OSError):
                        self._conn.rollback()
                    raise
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.endpoint, table=job.target.qualified) from None
        return result

    def replay_form(self) -> ChunkForm:
        return ChunkForm.MYSQL_VALUES

    def first_refused(
        self, job: CopyJob, chunk: Chunk, rows: Sequence[KeyedRow]
    ) -> tuple[KeyedRow, str] | None:
        header = _insert_header(job).encode()
        try:
            with self._conn.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    self._empty_if_resumed(cur, job, chunk)
                    for row in rows:
                        try:
                            _execute_bytes(cur, header + row.text)
                        except pymysql.err.MySQLError as exc:
                            refused = translate(exc, self.endpoint, table=job.target.qualified)
                            return row, refused.message
                finally:
                    with contextlib.suppress(pymysql.err.MySQLError, OSError):
                        self._conn.rollback()
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.endpoint, table=job.target.qualified) from None
        return None

    def close(self) -> None:
        self._conn.close()

    def _load_lines(self, job: CopyJob, pieces: Sequence[Rendered]) -> None:
        """Load each piece; ``FormRefused`` unless every row went in without a warning."""
        statement = tsv.load_statement(
            job.source, job.target.database, job.target.name, job.columns
        )
        for piece in pieces:
            # The newline ends the last line: without it a last empty field would be
            # taken as missing (NULL and a warning).
            got = load_local(self._conn, statement, tsv.TOKEN, (piece.text, b"\n"))
            if got.warnings or got.rows != piece.rows:
                raise FormRefused(
                    f"{job.target.qualified}: {piece.rows} rows sent, {got.message}",
                    ChunkForm.MYSQL_VALUES,
                )

    @staticmethod
    def _empty_if_resumed(cur: Any, job: CopyJob, chunk: Chunk) -> None:
        """``stop`` mode, a chunk an earlier run may have half written: empty its range
        (only our own rows can be there: the table was empty before the first write)."""
        if not job.ignore_existing and chunk.index in job.resumed:
            cond, args = range_condition(job.target_key, chunk.lower, chunk.upper)
            target = qualified(job.target.database, job.target.name)
            cur.execute(f"DELETE FROM {target} WHERE {cond}", args)

    @staticmethod
    def _insert_rows(
        cur: Any,
        job: CopyJob,
        chunk: Chunk,
        rows: list[tuple[Any, ...]],
        result: ChunkResult,
    ) -> int:
        """Text rows through the driver; in ``ignore`` mode target rows whose key
        exists are kept (and recorded when they differ). The rows inserted."""
        names = [t for _, t in job.columns]
        if job.ignore_existing and job.target_key:
            rows = _without_existing(cur, job, chunk, names, rows, result)
        if rows:
            marks = ", ".join(["%s"] * len(names))
            cur.executemany(f"{_insert_header(job)}({marks})", rows)
        return len(rows)


def _insert_header(job: CopyJob) -> str:
    names = ", ".join(quote_ident(t) for _, t in job.columns)
    return f"INSERT INTO {qualified(job.target.database, job.target.name)} ({names}) VALUES "


def _execute_bytes(cur: Any, statement: bytes) -> None:
    # The statement holds utf8mb4 text and hex only; sending the bytes as they are
    # spares decoding and re-encoding megabytes per chunk (PyMySQL accepts bytes).
    cur.execute(statement)


def _without_existing(
    cur: Any,
    job: CopyJob,
    chunk: Chunk,
    names: list[str],
    rows: list[tuple[Any, ...]],
    result: ChunkResult,
) -> list[tuple[Any, ...]]:
    """``ignore`` mode: keep target rows whose key exists; record those that differ."""
    cond, args = range_condition(job.target_key, chunk.lower, chunk.upper)
    target = qualified(job.target.database, job.target.name)
    cur.execute(
        f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {target} WHERE {cond} FOR UPDATE",
        args,
    )
    key_pos = [names.index(k) for k in job.target_key]
    existing = {tuple(r[i] for i in key_pos): tuple(r) for r in cur.fetchall()}
    if not existing:
        return rows
    keep = []
    for row in rows:
        key = tuple(row[i] for i in key_pos)
        have = existing.get(key)
        if have is None:
            keep.append(row)
        elif have != tuple(row):
            result.conflicts.append(
                ([_jsonable(v) for v in key], "target row exists and differs; target kept")
            )
    return keep


def _jsonable(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else v
