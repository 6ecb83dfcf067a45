"""Pre-checks: named items, each passed, warned or failed with an explanation, run
before a task starts so that it fails early and says why.

This holds the checks two-way sync needs; the task service grows the list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pymysql

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.core.checks import CheckResult as CheckResult
from duosync.core.checks import Status as Status
from duosync.endpoints import check_row_filters
from duosync.endpoints.mysql.connection import connect
from duosync.errors import ConfigError, DuosyncError
from duosync.spec import TaskSpec
from duosync.sync import checkpoint

_PRIVILEGE_CODES = {1044, 1045, 1142, 1143, 1227}


def transaction_tables(endpoint: Endpoint, side: str) -> CheckResult:
    """Create (if missing) the ``oms`` database and the transaction tables two-way
    sync keeps on *endpoint*: the loop-guard markers (checkpoints) and the conflict
    log. Needs CREATE on ``oms`` (and on ``*.*`` while ``oms`` does not exist)."""
    name = f"transaction tables on the {side} ({endpoint.display})"
    try:
        conn = connect(endpoint)
    except DuosyncError as exc:
        return CheckResult(name, Status.FAIL, f"cannot connect: {exc.message}")
    try:
        with conn.cursor() as cur:
            checkpoint.ensure_table(cur)
        return CheckResult(name, Status.PASS, "oms.duosync_checkpoint and oms.duosync_conflict")
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else 0
        why = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        if code in _PRIVILEGE_CODES:
            detail = (
                f"the user may not create them ({why}). Two-way sync keeps transaction"
                f" tables in the oms database on both sides to stop changes looping back:"
                f" GRANT CREATE ON *.* TO '{endpoint.user}' (to create the oms database),"
                f" or create it and GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON oms.*"
                f" TO '{endpoint.user}'"
            )
        else:
            detail = f"cannot create them: {why}"
        return CheckResult(name, Status.FAIL, detail)
    finally:
        conn.close()


def keyless_tables(tables: Sequence[Table], side: str) -> CheckResult:
    """Tables without a primary key or NOT NULL unique key: two-way sync cannot tell
    their rows apart, so duplicates may appear."""
    name = f"tables without a primary key on the {side}"
    keyless = [t.qualified for t in tables if not t.row_identity]
    if not keyless:
        return CheckResult(name, Status.PASS, "every table has a primary or NOT NULL unique key")
    return CheckResult(
        name,
        Status.WARN,
        f"{', '.join(keyless)}: no primary key or NOT NULL unique key; their rows cannot be"
        " told apart, so duplicate rows may appear during synchronization",
    )


def run(
    checks: Sequence[Callable[[], CheckResult]], say: Callable[[str], None], task: str
) -> list[CheckResult]:
    """Run *checks* in order, say each result, and raise ``ConfigError`` naming the
    failed ones (all of them are run first)."""
    results = []
    for check in checks:
        result = check()
        say(str(result))
        results.append(result)
    failed = [r for r in results if r.status is Status.FAIL]
    if failed:
        raise ConfigError(
            "pre-checks failed: " + "; ".join(f"{r.name}: {r.detail}" for r in failed),
            task=task,
        )
    return results


def check_filters(spec: TaskSpec, tables: list[Table]) -> None:
    """Every row filter names a selected table and is valid SQL on the source."""
    check_row_filters(spec.source, spec.name, spec.filters, tables)
