"""Full-migration copy: chunked, parallel, resumable, exact for every column type."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.core.copying import ChunkForm, ChunkResult, CopyJob
from duosync.endpoints.mysql.chunk_sink import MySQLChunkSink
from duosync.endpoints.mysql.ranges import plan_chunks
from duosync.endpoints.mysql.sessions import text_connect
from duosync.endpoints.mysql.snapshot import MySQLSnapshotReader
from duosync.errors import DataError
from duosync.migrate.copier import run_copy
from duosync.migrate.ratelimit import RateLimiter
from duosync.schema.ddl import create_table_sql
from duosync.schema.translate import translate_table
from duosync.service.phases.inspection import inspect_endpoint
from tests.helpers import MoveDatabase, query, run_sql

pytestmark = pytest.mark.integration

FIDELITY = (Path(__file__).parent / "fidelity_rows.sql").read_text()


def _job(
    source_ep: Endpoint,
    src_db: str,
    table: str,
    target_ep: Endpoint,
    dst_db: str,
    chunk_rows: int = 1000,
    ignore_existing: bool = False,
) -> CopyJob:
    source = inspect_endpoint(source_ep, [src_db]).database(src_db).table(table)
    target, _notes = translate_table(
        source, target=target_ep.flavor, renames=MoveDatabase(src_db, dst_db)
    )
    run_sql(target_ep, [create_table_sql(target, target_ep.flavor)])
    conn = text_connect(source_ep)
    try:
        chunks = plan_chunks(conn, src_db, table, source.row_identity, chunk_rows)
    finally:
        conn.close()
    cols = tuple((c.name, c.name) for c in source.columns if c.generated is None)
    return CopyJob(
        source,
        target,
        cols,
        source.row_identity,
        target.row_identity,
        None,
        tuple(chunks),
        ignore_existing,
    )


def _copy(job: CopyJob, source_ep: Endpoint, target_ep: Endpoint, **kw: Any) -> list[ChunkResult]:
    results: list[ChunkResult] = []
    run_copy(
        [job],
        source_ep,
        target_ep,
        read_concurrency=kw.get("readers", 2),
        write_concurrency=kw.get("writers", 2),
        limiter=RateLimiter(None, None),
        on_done=results.append,
        task="test",
    )
    return results


def _canonical(endpoint: Endpoint, db: str, table: Table) -> list[tuple[Any, ...]]:
    """Every row, each value as the server's exact text of it (JSON normalised)."""
    exprs = []
    for c in table.columns:
        q = f"`{c.name}`"
        if c.data_type == "json":
            exprs.append(f"CAST({q} AS CHAR)")  # compared parsed below
        elif c.data_type == "float":
            exprs.append(f"CAST({q} AS DOUBLE)")  # the stored float exactly, not 6 digits
        elif c.data_type == "bit":
            exprs.append(f"HEX({q})")
        else:
            exprs.append(q)
    rows = query(endpoint, f"SELECT {', '.join(exprs)} FROM `{db}`.`{table.name}` ORDER BY 1")

    out = []
    for r in rows:
        vals = list(r)
        for i, c in enumerate(table.columns):
            if c.data_type == "json" and vals[i] is not None:
                vals[i] = json.loads(vals[i])
        out.append(tuple(vals))
    return out


@pytest.mark.parametrize("target_name", ["mariadb2", "oceanbase1"])
def test_every_type_copies_exactly(
    target_name: str,
    mariadb1: Endpoint,
    sandbox_servers: dict[str, Endpoint],
    fresh_database: Callable[..., str],
) -> None:
    target = sandbox_servers[target_name]
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(target, "dst")
    run_sql(mariadb1, FIDELITY, database=src_db)
    job = _job(mariadb1, src_db, "fidelity", target, dst_db, chunk_rows=2)
    assert len(job.chunks) == 3  # (..2], (2..4], (4..)
    results = _copy(job, mariadb1, target)
    assert sum(r.rows for r in results) == 4
    assert _canonical(target, dst_db, job.target) == _canonical(mariadb1, src_db, job.source)


def test_many_rows_parallel_and_resume(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (a INT NOT NULL, b VARCHAR(10) NOT NULL, v VARCHAR(40),"
            " PRIMARY KEY (a, b))",
            "INSERT INTO t SELECT seq DIV 3, CONCAT('k', seq MOD 3), MD5(seq) FROM seq_1_to_5000",
        ],
        database=src_db,
    )
    job = _job(mariadb1, src_db, "t", mariadb2, dst_db, chunk_rows=300)
    assert len(job.chunks) == 17
    first = _copy(job, mariadb1, mariadb2, readers=3, writers=4)
    assert len(first) == 17
    # Simulate a crash after some chunks were written but not recorded: run them again.
    again = [c for c in job.chunks if c.index % 2 == 0]
    redo = CopyJob(
        job.source,
        job.target,
        job.columns,
        job.key,
        job.target_key,
        None,
        tuple(again),
        False,
        frozenset(c.index for c in again),
    )
    _copy(redo, mariadb1, mariadb2)
    src = query(mariadb1, "SELECT a, b, v FROM t ORDER BY a, b", database=src_db)
    dst = query(mariadb2, "SELECT a, b, v FROM t ORDER BY a, b", database=dst_db)
    assert len(src) == 5000 and src == dst


def test_ignore_mode_keeps_target_rows_and_records_conflicts(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
            "INSERT INTO t VALUES (1,'a'),(2,'b'),(3,'c')",
        ],
        database=src_db,
    )
    job = _job(mariadb1, src_db, "t", mariadb2, dst_db, ignore_existing=True)
    run_sql(mariadb2, "INSERT INTO t VALUES (2,'TARGET'),(3,'c')", database=dst_db)
    results = _copy(job, mariadb1, mariadb2)
    conflicts = [c for r in results for c in r.conflicts]
    assert [c[0] for c in conflicts] == [["2"]]
    dst = query(mariadb2, "SELECT id, v FROM t ORDER BY id", database=dst_db)
    assert dst == [(1, "a"), (2, "TARGET"), (3, "c")]


def test_a_row_the_target_refuses_is_named(
    mariadb1: Endpoint, oceanbase: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """MariaDB takes TIME up to 838:59:59.999999, OceanBase only to .000000: the copy
    stops with an error that names the table and the key of the refused row."""
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(oceanbase, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE spans (id INT PRIMARY KEY, d TIME(6))",
            "INSERT INTO spans SELECT seq, SEC_TO_TIME(seq) FROM seq_1_to_50",
            "UPDATE spans SET d = '838:59:59.999999' WHERE id = 37",
        ],
        database=src,
    )
    job = _job(mariadb1, src, "spans", oceanbase, dst, chunk_rows=100)
    with pytest.raises(DataError) as caught:
        _copy(job, mariadb1, oceanbase)
    text = str(caught.value)
    assert "(id) = (37)" in text, text
    assert f"{dst}.spans" in text and "test" in text
    assert query(oceanbase, f"SELECT COUNT(*) FROM {dst}.spans") == [(0,)]


# --- LOAD DATA LOCAL (MariaDB targets) ----------------------------------------------

AWKWARD = [
    "CREATE TABLE awk (id INT PRIMARY KEY, a VARCHAR(40), b VARBINARY(20), bt BIT(9),"
    " g GEOMETRY NULL, f FLOAT, z VARCHAR(10))",
    # text LOAD DATA would read as escapes or NULL, bytes it would read as separators,
    # and an empty last field (a line that ends in a tab)
    "INSERT INTO awk VALUES"
    " (1, '\\\\N', x'5c4e', b'100000001', ST_GeomFromText('POINT(1 2)'), 1.1, ''),"
    " (2, 'NULL', x'09000a5c', b'0', NULL, -0.0, NULL),"
    " (3, 'tab\\there\\nnewline\\\\', x'', NULL, ST_GeomFromText('LINESTRING(0 0,1 1)'),"
    " 3.4e38, 'end\\\\'),"
    " (4, '', NULL, b'111111111', NULL, NULL, '\\t'),"
    " (5, NULL, x'0a', b'1', NULL, 1e-30, '\\n')",
]


def _form(target: Endpoint, job: CopyJob) -> ChunkForm:
    sink = MySQLChunkSink(target)
    try:
        return sink.form(job)
    finally:
        sink.close()


def _awkward_rows(endpoint: Endpoint, db: str) -> list[tuple[Any, ...]]:
    return query(
        endpoint,
        "SELECT id, a, HEX(b), bt + 0, ST_AsText(g), CAST(f AS DOUBLE), z FROM awk ORDER BY id",
        database=db,
    )


def test_awkward_values_load_exactly(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, AWKWARD, database=src_db)
    job = _job(mariadb1, src_db, "awk", mariadb2, dst_db, chunk_rows=2)
    assert _form(mariadb2, job) is ChunkForm.MYSQL_LOAD_LINES
    assert sum(r.rows for r in _copy(job, mariadb1, mariadb2)) == 5
    assert _awkward_rows(mariadb2, dst_db) == _awkward_rows(mariadb1, src_db)
    assert len(_awkward_rows(mariadb2, dst_db)) == 5


def test_a_chunk_larger_than_the_limit_loads_in_pieces(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """A chunk whose text would pass group_concat_max_len is read row by row and
    loaded in several pieces, in one transaction."""
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))",
            "INSERT INTO t SELECT seq, IF(seq MOD 7 = 0, '', MD5(seq)) FROM seq_1_to_300",
        ],
        database=src_db,
    )
    job = _job(mariadb1, src_db, "t", mariadb2, dst_db, chunk_rows=1000)
    limit = 1024
    reader, sink = MySQLSnapshotReader(mariadb1), MySQLChunkSink(mariadb2)
    try:
        data = reader.read(job, job.chunks[0], ChunkForm.MYSQL_LOAD_LINES, limit)
        assert len(data.pieces) >= 9
        assert sum(p.rows for p in data.pieces) == 300
        assert all(len(p.text) < limit for p in data.pieces)
        assert sink.write(job, job.chunks[0], data).rows == 300
    finally:
        reader.close()
        sink.close()
    want = query(mariadb1, "SELECT id, v FROM t ORDER BY id", database=src_db)
    assert query(mariadb2, "SELECT id, v FROM t ORDER BY id", database=dst_db) == want


def test_a_value_a_load_would_cut_is_named_and_nothing_lands(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """LOAD DATA LOCAL turns a refused value into a warning and a cut value: the
    chunk is rolled back and written with INSERTs, which refuse it by name."""
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))",
            "INSERT INTO t SELECT seq, 'abc' FROM seq_1_to_50",
            "UPDATE t SET v = 'far too long' WHERE id = 23",
        ],
        database=src_db,
    )
    job = _job(mariadb1, src_db, "t", mariadb2, dst_db, chunk_rows=100)
    run_sql(mariadb2, "ALTER TABLE t MODIFY v VARCHAR(5)", database=dst_db)
    with pytest.raises(DataError) as caught:
        _copy(job, mariadb1, mariadb2)
    assert "(id) = (23)" in str(caught.value), str(caught.value)
    assert query(mariadb2, "SELECT COUNT(*) FROM t", database=dst_db) == [(0,)]


def test_a_duplicate_key_a_load_would_skip_fails_the_copy(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """Keys distinct on the source but equal under the target's collation: a load
    would skip the second row with a warning; the copy stops instead."""
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) COLLATE utf8mb4_bin, UNIQUE (v))",
            "INSERT INTO t VALUES (1, 'a'), (2, 'A'), (3, 'b')",
        ],
        database=src_db,
    )
    job = _job(mariadb1, src_db, "t", mariadb2, dst_db)
    run_sql(
        mariadb2,
        "ALTER TABLE t MODIFY v VARCHAR(10) COLLATE utf8mb4_general_ci",
        database=dst_db,
    )
    with pytest.raises(DataError) as caught:
        _copy(job, mariadb1, mariadb2)
    assert "(id) = (2)" in str(caught.value) and "Duplicate entry" in str(caught.value)
    assert query(mariadb2, "SELECT COUNT(*) FROM t", database=dst_db) == [(0,)]


def test_a_target_refusing_local_files_gets_inserts(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src_db, dst_db = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, AWKWARD, database=src_db)
    job = _job(mariadb1, src_db, "awk", mariadb2, dst_db, chunk_rows=2)
    run_sql(mariadb2, "SET GLOBAL local_infile = 0")
    try:
        assert _form(mariadb2, job) is ChunkForm.MYSQL_VALUES
        assert sum(r.rows for r in _copy(job, mariadb1, mariadb2)) == 5
    finally:
        run_sql(mariadb2, "SET GLOBAL local_infile = 1")
    assert _awkward_rows(mariadb2, dst_db) == _awkward_rows(mariadb1, src_db)
