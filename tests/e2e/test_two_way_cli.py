"""Two-way sync from the command line: the demo, and the errors a user meets
(missing privileges for the transaction tables, a reverse task started too early,
conflicts of an unknown task)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.sandbox import Sandbox
from duosync.service.demo import DATABASE, TABLES
from tests.helpers import query, run_sql

pytestmark = pytest.mark.e2e


def _run(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, DUOSYNC_PLAIN="1"),
    )


def _rows(endpoint: Endpoint, table: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in query(endpoint, f"SELECT * FROM {DATABASE}.{table} ORDER BY id")]


def test_demo_syncs_both_ways_and_both_sides_end_equal(
    tmp_path: Path, sandbox_box: Sandbox, mariadb1: Endpoint, oceanbase: Endpoint
) -> None:
    got = _run(tmp_path / "home", "demo", "--dir", str(sandbox_box.dir), "--seconds", "4")
    assert got.returncode == 0, got.stderr[-3000:]
    assert "demo: both sides are equal" in got.stdout
    assert "demo.reverse is caught up (monitoring)" in got.stderr
    assert "demo: transactions written:" in got.stderr  # progress while writing
    # Our own comparison, not the demo's word: every row of both sides.
    for table in TABLES:
        left = _rows(mariadb1, table)
        assert left == _rows(oceanbase, table)
    # Both writers' rows are on both sides.
    keys = {r[0] for r in _rows(oceanbase, "orders")}
    assert any(1_000_000 <= k < 2_000_000 for k in keys)
    assert any(k >= 2_000_000 for k in keys)
    # Rerunning starts over cleanly.
    again = _run(tmp_path / "home", "demo", "--dir", str(sandbox_box.dir), "--seconds", "2")
    assert again.returncode == 0, again.stderr[-3000:]


def _spec(path: Path, name: str, a: str, b: str, db_a: str, db_b: str) -> Path:
    path.write_text(
        f"""
name: {name}
topology: two-way
source: {a}
target: {b}
types: [schema, full, incremental]
select: {{databases: [{db_a}]}}
rename: {{databases: {{{db_a}: {db_b}}}}}
"""
    )
    return path


def test_missing_create_privilege_on_oms_is_explained(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    db_a = fresh_database(mariadb1, "a")
    db_b = fresh_database(mariadb2, "b")
    run_sql(mariadb1, "CREATE TABLE t (id INT PRIMARY KEY)", db_a)
    user = "tw_noperm"
    run_sql(
        mariadb2,
        [
            f"DROP USER IF EXISTS '{user}'@'%'",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-Secret-9'",
            f"GRANT ALL ON `{db_b}`.* TO '{user}'@'%'",
            f"GRANT SELECT ON oms.* TO '{user}'@'%'",
        ],
    )
    run_sql(mariadb2, ["DROP TABLE IF EXISTS oms.duosync_conflict"])
    target = f"mariadb://{user}:pw-Secret-9@{mariadb2.host}:{mariadb2.port}"
    spec = _spec(
        tmp_path / "t.yaml", "tw-perm", f"mariadb://root@{mariadb1.host}:{mariadb1.port}", target,
        db_a, db_b,
    )  # fmt: skip
    try:
        got = _run(tmp_path / "home", "migrate", "-f", str(spec), timeout=120)
    finally:
        run_sql(mariadb2, [f"DROP USER IF EXISTS '{user}'@'%'"])
    assert got.returncode == 2, got.stderr[-2000:]
    err = got.stderr
    assert "pre-checks failed" in err and "transaction tables on the target" in err
    assert "GRANT CREATE" in err and "oms" in err and user in err
    assert "pw-Secret-9" not in err + got.stdout
    # Nothing was written to the target.
    assert query(mariadb2, f"SHOW TABLES FROM `{db_b}`") == []


def test_reverse_refused_until_the_forward_task_is_monitoring(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint
) -> None:
    a = f"mariadb://root@{mariadb1.host}:{mariadb1.port}"
    b = f"mariadb://root@{mariadb2.host}:{mariadb2.port}"
    spec = _spec(tmp_path / "t.yaml", "tw-early", a, b, "x_a", "x_b")
    home = tmp_path / "home"
    got = _run(home, "reverse", "-f", str(spec))
    assert got.returncode == 2
    assert "the forward task has not run yet" in got.stderr
    one_way = tmp_path / "one.yaml"
    one_way.write_text(spec.read_text().replace("topology: two-way", ""))
    got = _run(home, "reverse", "-f", str(one_way))
    assert got.returncode == 2 and "not a two-way sync" in got.stderr
    edited = tmp_path / "edited.yaml"
    edited.write_text(spec.read_text() + "reverse: {select: {databases: [x_b]}}\n")
    got = _run(home, "reverse", "-f", str(edited))
    assert got.returncode == 2
    assert "reverse: select: the reverse task's objects" in got.stderr
    got = _run(home, "conflicts", "no-such-task")
    assert got.returncode == 2 and "no task named 'no-such-task'" in got.stderr
