"""Pre-check items of a PostgreSQL target: connectivity, version, privileges,
encoding, and whether the tables the task would create already hold rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from duosync.config import Endpoint
from duosync.core.checks import CheckResult, Status
from duosync.endpoints.postgres.connection import connect_endpoint, translate
from duosync.endpoints.postgres.dialect import qualified
from duosync.errors import DuosyncError

#: oldest PostgreSQL release duosync writes to (identity columns, stored generated columns)
MIN_VERSION = 120000


def target_checks(
    endpoint: Endpoint, tables: Sequence[tuple[str, str]], own: frozenset[tuple[str, str]]
) -> list[CheckResult]:
    """The ``target.*`` items for *tables* ((schema, table) the task creates); rows in
    *own* tables are the task's own (a resumed copy), not a reason to refuse."""
    try:
        conn = connect_endpoint(endpoint, autocommit=True)
    except DuosyncError as exc:
        failed = CheckResult("target.connectivity", Status.FAIL, str(exc))
        names = ("target.version", "target.privileges", "target.encoding")
        return (
            [failed]
            + [CheckResult(n, Status.FAIL, "not checked: no connection") for n in names]
            + [CheckResult("target.non_empty_tables", Status.FAIL, "not checked: no connection")]
        )
    try:
        with conn.cursor() as cur:
            results = [
                CheckResult(
                    "target.connectivity",
                    Status.PASS,
                    f"connected to {endpoint.display} as {_one(cur, 'SELECT current_user')}",
                ),
                _version(cur, endpoint),
                _privileges(cur, endpoint),
                _encoding(cur, endpoint),
                _non_empty(cur, endpoint, tables, own),
            ]
    except psycopg.Error as exc:
        error = translate(exc, endpoint.display)
        results = [CheckResult("target.connectivity", Status.FAIL, str(error))]
    finally:
        conn.close()
    return results


def _one(cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
    cur.execute(sql, args)
    row = cur.fetchone()
    return row[0] if row else None


def _version(cur: Any, endpoint: Endpoint) -> CheckResult:
    number = int(_one(cur, "SHOW server_version_num"))
    text = str(_one(cur, "SHOW server_version"))
    if number < MIN_VERSION:
        return CheckResult(
            "target.version",
            Status.FAIL,
            f"{endpoint.display} runs PostgreSQL {text}; duosync needs 12 or later",
        )
    return CheckResult("target.version", Status.PASS, f"{endpoint.display} runs PostgreSQL {text}")


def _privileges(cur: Any, endpoint: Endpoint) -> CheckResult:
    database = _one(cur, "SELECT current_database()")
    if _one(cur, "SELECT has_database_privilege(current_database(), 'CREATE')"):
        return CheckResult(
            "target.privileges", Status.PASS, f"may create schemas in database {database}"
        )
    return CheckResult(
        "target.privileges",
        Status.FAIL,
        f"{endpoint.display}: the user may not create schemas in database {database}",
    )


def _encoding(cur: Any, endpoint: Endpoint) -> CheckResult:
    encoding = str(_one(cur, "SHOW server_encoding"))
    if encoding.upper() not in ("UTF8", "UTF-8"):
        return CheckResult(
            "target.encoding",
            Status.FAIL,
            f"{endpoint.display}: database encoding {encoding} cannot hold every utf8mb4"
            " character; create the database with ENCODING 'UTF8'",
        )
    return CheckResult("target.encoding", Status.PASS, "UTF8 holds every source character")


def _non_empty(
    cur: Any,
    endpoint: Endpoint,
    tables: Sequence[tuple[str, str]],
    own: frozenset[tuple[str, str]],
) -> CheckResult:
    busy = []
    for schema, table in tables:
        if (schema, table) in own:
            continue
        if _one(cur, "SELECT to_regclass(%s)", (qualified(schema, table),)) is None:
            continue
        if _one(cur, f"SELECT EXISTS (SELECT 1 FROM {qualified(schema, table)})"):
            busy.append(f"{schema}.{table}")
    if busy:
        return CheckResult(
            "target.non_empty_tables",
            Status.FAIL,
            f"target tables on {endpoint.display} hold rows: {', '.join(busy)}",
        )
    return CheckResult(
        "target.non_empty_tables", Status.PASS, f"no target table on {endpoint.display} holds rows"
    )
