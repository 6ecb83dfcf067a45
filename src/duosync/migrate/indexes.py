"""Post-indexing: build the secondary indexes deferred until after the copy.

One ALTER per table adds all of its missing indexes (one DDL task and, on MariaDB,
one pass over the table's rows instead of one per index; OceanBase spends about a
second of fixed cost per DDL statement), and tables are altered in parallel on
separate connections: index builds are CPU-bound sorts that use both cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.endpoints.mysql.connection import connect as open_connection
from duosync.endpoints.mysql.connection import driver_errors
from duosync.schema.ddl import add_indexes_sql, deferred_indexes


def _existing_index_names(cur: Any, t: Table) -> set[str]:
    cur.execute(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (t.database, t.name),
    )
    return {str(r[0]) for r in cur.fetchall()}


def _build(target: Endpoint, table: Table) -> list[str]:
    conn = open_connection(target)
    try:
        with driver_errors(target, table=table.qualified), conn.cursor() as cur:
            have = _existing_index_names(cur, table)
            missing = [i for i in deferred_indexes(table) if i.name not in have]
            if missing:
                cur.execute(add_indexes_sql(table, missing))
            return [i.name for i in missing]
    finally:
        conn.close()


def build_deferred_indexes(
    target: Endpoint, tables: Sequence[Table], concurrency: int, say: Callable[[str], None]
) -> None:
    """Create every deferred index of *tables* that the target lacks (idempotent:
    a rerun after a crash creates only what is still missing)."""
    workers = max(1, min(concurrency, len(tables)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index") as pool:
        futures = [(t, pool.submit(_build, target, t)) for t in tables]
        for table, future in futures:
            for name in future.result():
                say(f"created index {table.qualified}.{name}")
