"""``duosync verify`` of a task whose incremental sync does not carry every kind of
row change (``options.dml``): the rows it leaves different on purpose are reported
apart as kept, are not differences, are not rechecked, and ``--fix`` leaves them.

The target is built by duosync's full migration, then changed behind its back as
such a task leaves it (an extra row: a delete not carried; a missing row: an insert
not carried; a changed row: an update not carried)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from duosync.config import Endpoint
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.spec import TaskSpec
from duosync.specfile import parse_spec
from duosync.verify import VerifyReport, render, verify_task
from duosync.verify import fix as fixing
from tests.helpers import checkpoint_rows, query, run_sql

pytestmark = pytest.mark.integration


def _spec(
    name: str, source: Endpoint, target: Endpoint, src: str, dst: str, **body: Any
) -> TaskSpec:
    data: dict[str, Any] = {
        "name": name,
        "source": f"{source.flavor.value}://root@{source.host}:{source.port}",
        "target": f"{target.flavor.value}://root@{target.host}:{target.port}",
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
        "options": {"chunk_rows": 500},
    }
    data.update(body)
    return parse_spec(data, name)


def _with_dml(spec: TaskSpec, dml: list[str] | None) -> TaskSpec:
    """The task as verify sees it: with incremental sync carrying *dml*."""
    data = spec.model_dump(mode="json")
    data["name"] = f"{spec.name}-inc"
    data["types"] = ["schema", "full", "incremental"]
    if dml is not None:
        data["options"]["dml"] = dml
    return parse_spec(data)


def _migrate(spec: TaskSpec, home: Path) -> None:
    with MetadataStore.in_home(home) as store:
        run_spec(spec, store, lambda _line: None)


def _verify(spec: TaskSpec, **kw: Any) -> VerifyReport:
    report = verify_task(spec, say=lambda _line: None, **kw)
    print("\n".join(render(report)))  # shown when a test fails
    return report


def _items(endpoint: Endpoint, db: str) -> None:
    run_sql(
        endpoint,
        [
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2))",
            "INSERT INTO items SELECT seq, CONCAT('item ', seq), seq / 4 FROM seq_1_to_2000",
        ],
        database=db,
    )


#: the target as a task leaves it: 17 and 1500 missing (inserts), 5000 extra
#: (deletes), 1200 changed (updates); idempotent
PLANT = [
    "DELETE FROM items WHERE id IN (17, 1500)",
    "REPLACE INTO items VALUES (5000, 'stray', 1)",
    "UPDATE items SET price = 0 WHERE id = 1200",
]


def _target_ids(target: Endpoint, dst: str) -> set[int]:
    sql = "SELECT id FROM items WHERE id IN (17, 1500, 5000)"
    return {int(r[0]) for r in query(target, sql, database=dst)}


def _price_1200(target: Endpoint, dst: str) -> str:
    return str(query(target, "SELECT price FROM items WHERE id = 1200", database=dst)[0][0])


@pytest.mark.parametrize(
    "dml",
    [
        ["insert", "update", "delete"],
        ["insert", "update"],
        ["update", "delete"],
        ["insert", "delete"],
        ["insert"],
        ["delete"],
    ],
)
def test_rows_a_task_does_not_carry_are_kept_apart_and_left_by_fix(
    dml: list[str],
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _items(mariadb1, src)
    copy = _spec(f"vdml-{'-'.join(dml)}", mariadb1, mariadb2, src, dst)
    _migrate(copy, tmp_path / "home")
    run_sql(mariadb2, PLANT, database=dst)
    spec = _with_dml(copy, dml)

    # Without incremental sync the task carries every row: all three differ.
    full = _verify(copy).table(f"{src}.items")
    assert (full.missing, full.extra, full.different, full.kept) == (2, 1, 1, 0)

    report = _verify(spec)
    items = report.table(f"{src}.items")
    kept = (
        0 if "insert" in dml else 2,
        0 if "delete" in dml else 1,
        0 if "update" in dml else 1,
    )
    assert (items.kept_missing, items.kept_extra, items.kept_different) == kept
    assert (items.missing, items.extra, items.different) == (
        2 - kept[0],
        1 - kept[1],
        1 - kept[2],
    )
    assert items.kept_missing_keys == ([] if "insert" in dml else [("17",), ("1500",)])
    assert items.kept_extra_keys == ([] if "delete" in dml else [("5000",)])
    assert items.kept_different_keys == ([] if "update" in dml else [("1200",)])
    assert report.kept == sum(kept)
    assert report.differs  # every subset here carries at least one planted kind
    lines = render(report)
    if "delete" not in dml:
        assert any(
            "kept by options.dml: 1 extra (the task does not carry deletes) (id): 5000" in line
            for line in lines
        )

    # --fix corrects the differences only: kept rows stay as the task leaves them.
    notes = fixing.notes(report)
    if sum(kept):
        assert f"{src}.items: {sum(kept)} rows kept by options.dml are left as they are" in notes
    fixing.apply(spec.target, fixing.statements(report, spec.source))
    expected = {5000} if "delete" not in dml else set()
    if "insert" in dml:
        expected |= {17, 1500}
    assert _target_ids(mariadb2, dst) == expected
    assert _price_1200(mariadb2, dst) == ("300.00" if "update" in dml else "0.00")
    again = _verify(spec)
    assert not again.differs
    assert again.kept == sum(kept)
    assert render(again)[-1].endswith(
        f"source and target are equal (kept by options.dml: {sum(kept)} rows)"
        if sum(kept)
        else "source and target are equal"
    )


def test_a_keyless_table_cannot_tell_kept_rows_from_differences(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        ["CREATE TABLE logs (at INT, msg VARCHAR(9))", "INSERT INTO logs VALUES (1, 'a')"],
        database=src,
    )
    copy = _spec("vdml-keyless", mariadb1, mariadb2, src, dst)
    _migrate(copy, tmp_path / "home")
    run_sql(mariadb2, ["INSERT INTO logs VALUES (2, 'b')"], database=dst)
    logs = _verify(_with_dml(copy, ["insert", "update"])).table(f"{src}.logs")
    assert logs.keyless_differs and logs.kept == 0
    assert any("options.dml" in n and "cannot be told" in n for n in logs.notes)


# -- the command ------------------------------------------------------------------------------


def _duosync(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ},
    )


def test_cli_only_kept_rows_exits_equal_and_fix_leaves_them(
    tmp_path: Path, mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _items(mariadb1, src)
    copy = _spec("vdml-cli", mariadb1, mariadb2, src, dst)
    _migrate(copy, tmp_path / "home")
    # an archive target: the task never deletes, the target holds rows the source lost
    run_sql(mariadb2, ["INSERT INTO items VALUES (5000, 'old', 1), (5001, 'old', 2)"], database=dst)
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(_with_dml(copy, ["insert", "update"]).model_dump(mode="json")))
    home = tmp_path / "cli-home"

    ok = _duosync("verify", "-f", str(task), home=home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(
        rf"{src}\.items -> {dst}\.items: equal \(2000 rows, \d+ chunks;"
        r" kept by options.dml: 2 rows\)",
        ok.stdout,
    )
    assert (
        "  kept by options.dml: 2 extra (the task does not carry deletes) (id): 5000, 5001"
        in ok.stdout
    )
    assert ok.stdout.rstrip().endswith("source and target are equal (kept by options.dml: 2 rows)")

    printed = _duosync("verify", "-f", str(task), "--fix", home=home)
    assert printed.returncode == 0 and "DELETE" not in printed.stdout
    applied = _duosync("verify", "-f", str(task), "--yes", home=home)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert query(mariadb2, "SELECT COUNT(*) FROM items WHERE id > 2000", database=dst) == [(2,)]


# -- while the task's sync runs -----------------------------------------------------------------


def test_kept_rows_are_not_rechecked_while_the_sync_runs(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    syncing: Callable[[TaskSpec], None],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _items(mariadb1, src)
    spec = _spec(
        f"vdml-sync-{time.time_ns()}",
        mariadb1,
        mariadb2,
        src,
        dst,
        types=["schema", "full", "incremental"],
        options={"chunk_rows": 500, "dml": ["insert", "update"], "write_concurrency": 2},
    )
    syncing(spec)
    deadline = time.monotonic() + 60
    while checkpoint_rows(mariadb2, spec.name) < 2:
        assert time.monotonic() < deadline, "incremental sync did not start"
        time.sleep(0.2)

    # Only kept rows: nothing to recheck, although the task's sync writes.
    run_sql(mariadb2, ["INSERT INTO items VALUES (5000, 'old', 1)"], database=dst)
    only_kept = _verify(spec)
    assert not only_kept.differs and only_kept.kept == 1
    assert only_kept.recheck is None

    # A real difference too: it alone is rechecked, and stays reported.
    run_sql(mariadb2, ["UPDATE items SET price = -1 WHERE id = 7"], database=dst)
    report = _verify(spec, recheck_max_wait=5.0)
    items = report.table(f"{src}.items")
    assert report.recheck is not None and report.recheck.keys == 1
    assert items.different_keys == [("7",)] and items.converged == 0
    assert items.kept_extra_keys == [("5000",)] and items.kept == 1
