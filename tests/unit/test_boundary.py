"""The endpoint boundary (issue 19): engine packages reach a database family only
through ``core`` interfaces and ``duosync.endpoints``' factories, never a driver or
an ``endpoints.<family>`` module.

Modules not yet moved behind the interfaces are listed in ``NOT_YET``; the test
fails when a module outside the list imports a family, and when a listed module no
longer does (so that the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import duosync

ENGINE = ("migrate", "sync", "verify", "schema", "service")
FORBIDDEN = (
    "pymysql",
    "psycopg",
    "duosync.endpoints.mysql",
    "duosync.endpoints.oceanbase",
    "duosync.endpoints.postgres",
)

#: engine modules still importing a family (27), as of the full copy's move behind
#: ``SnapshotReader`` and ``ChunkSink``
NOT_YET = frozenset(
    {
        "migrate/indexes.py",
        "schema/ddl.py",
        "schema/routines.py",
        "service/demo.py",
        "service/phases/migration.py",
        "service/phases/positions.py",
        "service/prechecks/items.py",
        "service/prechecks/privileges.py",
        "service/prechecks/server.py",
        "service/prechecks/checks.py",
        "service/store/backends.py",
        "sync/applier.py",
        "sync/checkpoint.py",
        "sync/conflict_log.py",
        "sync/conflicts.py",
        "sync/converging.py",
        "sync/ddl.py",
        "sync/heartbeat.py",
        "sync/row_selection.py",
        "sync/streamed.py",
        "sync/versions.py",
        "verify/compare.py",
        "verify/fix.py",
        "verify/normalize.py",
        "verify/recheck.py",
        "verify/rows.py",
        "verify/scan.py",
    }
)


def _imported(path: Path) -> set[str]:
    """Every module *path* imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _offenders() -> dict[str, list[str]]:
    root = Path(duosync.__file__).parent
    found: dict[str, list[str]] = {}
    for package in ENGINE:
        for path in sorted((root / package).rglob("*.py")):
            bad = sorted(
                n
                for n in _imported(path)
                if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)
            )
            if bad:
                found[path.relative_to(root).as_posix()] = bad
    return found


def test_engine_packages_import_no_driver_and_no_family() -> None:
    offenders = _offenders()
    new = {m: names for m, names in offenders.items() if m not in NOT_YET}
    assert not new, f"engine modules importing a driver or endpoints.<family>: {new}"


def test_the_list_of_modules_not_yet_moved_only_shrinks() -> None:
    moved = sorted(NOT_YET - set(_offenders()))
    assert not moved, f"no longer importing a family: remove from NOT_YET: {moved}"


def test_the_check_sees_an_import() -> None:
    """The scanner itself: a module-level and a function-level import both count."""
    root = Path(duosync.__file__).parent
    assert "pymysql" in _imported(root / "endpoints" / "mysql" / "connection.py")
    assert "duosync.endpoints.mysql.snapshot" in _imported(root / "endpoints" / "__init__.py")
