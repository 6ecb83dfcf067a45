"""Row filters checked on the source before a task or a verify starts: each names a
selected table and is a valid condition there (the server parses it, with the
table's columns, in a statement that reads no row)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pymysql

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.endpoints.mysql.connection import connect
from duosync.endpoints.mysql.dialect import qualified
from duosync.errors import ConfigError


def check_row_filters(
    endpoint: Endpoint, task: str, filters: Mapping[str, str], tables: Sequence[Table]
) -> None:
    """Raise ``ConfigError`` naming the task, endpoint and table of the first filter
    that names no selected table or that the source refuses."""
    selected = {t.qualified: t for t in tables}
    conn = connect(endpoint)
    try:
        for key, condition in filters.items():
            if key not in selected:
                raise ConfigError(
                    f"filters: {key} is not a selected table on the source",
                    task=task,
                    endpoint=endpoint.display,
                )
            t = selected[key]
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        f"SELECT 1 FROM {qualified(t.database, t.name)} WHERE ({condition}) LIMIT 0"
                    )
            except pymysql.err.MySQLError as exc:
                raise ConfigError(
                    f"row filter is not valid on the source: {exc}",
                    task=task,
                    endpoint=endpoint.display,
                    table=key,
                ) from None
    finally:
        conn.close()
