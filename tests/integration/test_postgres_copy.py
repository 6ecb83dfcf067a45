"""Chunks copied from MariaDB to PostgreSQL by COPY (issue 19): the source renders
COPY text, ``PostgresChunkSink`` writes each chunk in one transaction. Every value
of the type-fidelity rows arrives equal (compared value by value, per type); a
resumed chunk is rewritten without duplicates; a value PostgreSQL refuses fails the
chunk whole and is named by its key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duosync.config import Endpoint
from duosync.core.copying import ChunkForm, CopyJob
from duosync.endpoints.mysql.snapshot import MySQLSnapshotReader
from duosync.endpoints.postgres.chunk_sink import PostgresChunkSink
from duosync.endpoints.postgres.ddl import create_schema_sql, table_ddl
from duosync.errors import DataError
from duosync.service.phases.inspection import inspect_endpoint
from tests.helpers import query, run_sql
from tests.helpers_postgres import mysql_rows, pg_rows

pytestmark = pytest.mark.integration

FIDELITY = (Path(__file__).parent / "fidelity_rows.sql").read_text()


@pytest.fixture
def pg(postgres: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(postgres, autocommit=True)
    yield conn
    conn.close()


def _prepare(
    mariadb1: Endpoint,
    pg: psycopg.Connection[Any],
    db: str,
    table: str,
    chunk_rows: int,
    resumed: bool = False,
) -> CopyJob:
    source = inspect_endpoint(mariadb1, [db]).database(db).table(table)
    pg.execute(f'DROP SCHEMA IF EXISTS "{db}" CASCADE')
    pg.execute(create_schema_sql(db))
    for statement in table_ddl(source).statements:
        pg.execute(statement)
    reader = MySQLSnapshotReader(mariadb1)
    try:
        chunks = tuple(reader.plan(source, source.row_identity, chunk_rows))
    finally:
        reader.close()
    return CopyJob(
        source,
        source,
        tuple((c.name, c.name) for c in source.columns if c.generated is None),
        source.row_identity,
        source.row_identity,
        None,
        chunks,
        False,
        frozenset(c.index for c in chunks) if resumed else frozenset(),
    )


def _copy(mariadb1: Endpoint, postgres: str, job: CopyJob) -> int:
    reader = MySQLSnapshotReader(mariadb1)
    sink = PostgresChunkSink(postgres, "postgres1")
    try:
        assert sink.form(job) is ChunkForm.PG_COPY_TEXT
        limit = min(reader.max_piece(), sink.max_piece())
        return sum(
            sink.write(job, c, reader.read(job, c, ChunkForm.PG_COPY_TEXT, limit)).rows
            for c in job.chunks
        )
    finally:
        reader.close()
        sink.close()


@pytest.mark.parametrize("source_name", ["mariadb1", "oceanbase1"])
def test_every_fidelity_value_arrives_equal(
    source_name: str,
    sandbox_servers: dict[str, Endpoint],
    postgres: str,
    pg: psycopg.Connection[Any],
    fresh_database: Callable[..., str],
) -> None:
    source = sandbox_servers[source_name]
    db = fresh_database(source)
    run_sql(source, FIDELITY, database=db)
    job = _prepare(source, pg, db, "fidelity", chunk_rows=2)
    assert len(job.chunks) == 3
    assert _copy(source, postgres, job) == 4
    want = mysql_rows(source, job.source)
    got = pg_rows(pg, job.source)
    assert len(got) == 4
    for w, g in zip(want, got, strict=True):
        diffs = {c.name: (a, b) for c, a, b in zip(job.source.columns, w, g, strict=True) if a != b}
        assert not diffs, f"row {w[0]}: {diffs}"


def test_a_resumed_chunk_is_rewritten_without_duplicates(
    mariadb1: Endpoint,
    postgres: str,
    pg: psycopg.Connection[Any],
    fresh_database: Callable[..., str],
) -> None:
    db = fresh_database(mariadb1)
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (a INT NOT NULL, b VARCHAR(10) NOT NULL, v TEXT, PRIMARY KEY (a, b))",
            "INSERT INTO t SELECT seq DIV 3, CONCAT('k', seq MOD 3),"
            " CONCAT('x\\ty\\nz\\\\', seq, '\\r') FROM seq_1_to_3000",
        ],
        database=db,
    )
    job = _prepare(mariadb1, pg, db, "t", chunk_rows=400)
    assert _copy(mariadb1, postgres, job) == 3000
    # as after a crash between a chunk's commit and its record: all again, resumed
    again = CopyJob(
        job.source,
        job.target,
        job.columns,
        job.key,
        job.target_key,
        None,
        job.chunks,
        False,
        frozenset(c.index for c in job.chunks),
    )
    assert _copy(mariadb1, postgres, again) == 3000
    want = query(mariadb1, "SELECT a, b, v FROM t ORDER BY a, b", database=db)
    got = pg.execute(f'SELECT a, b, v FROM "{db}".t ORDER BY a, b').fetchall()
    assert [tuple(r) for r in got] == [tuple(r) for r in want]


def test_a_refused_value_fails_its_chunk_whole_and_is_named(
    mariadb1: Endpoint,
    postgres: str,
    pg: psycopg.Connection[Any],
    fresh_database: Callable[..., str],
) -> None:
    """A zero date is a value MariaDB keeps and PostgreSQL cannot hold."""
    db = fresh_database(mariadb1)
    run_sql(
        mariadb1,
        [
            "SET SESSION sql_mode = ''",
            "CREATE TABLE t (id INT PRIMARY KEY, d DATE)",
            "INSERT INTO t SELECT seq, '2020-01-01' FROM seq_1_to_20",
            "UPDATE t SET d = '0000-00-00' WHERE id = 13",
        ],
        database=db,
    )
    job = _prepare(mariadb1, pg, db, "t", chunk_rows=100)
    with pytest.raises(DataError) as caught:
        _copy(mariadb1, postgres, job)
    assert caught.value.table == f"{db}.t"
    assert pg.execute(f'SELECT COUNT(*) FROM "{db}".t').fetchone() == (0,)
    reader, sink = MySQLSnapshotReader(mariadb1), PostgresChunkSink(postgres, "postgres1")
    try:
        rows = reader.read_keyed(job, job.chunks[0], sink.replay_form())
        found = sink.first_refused(job, job.chunks[0], rows)
    finally:
        reader.close()
        sink.close()
    assert found is not None and found[0].key == ("13",), found  # the server's text
    assert "0000-00-00" in found[1]
