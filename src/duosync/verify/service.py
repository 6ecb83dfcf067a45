"""``verify_task``: compare a task's source and target; the entry point of
``duosync verify`` (and of anything else that wants the answer, such as an API).

1. Inspect both sides; resolve the selection, renames and row filters like the
   migration does (``spec.check_catalog``); refuse a filter the source rejects.
2. Pair every selected table with its target table and columns (``pairs``).
3. Compare chunk checksums, then rows of differing chunks only (``scan``).
4. If an incremental sync of the task writes to the target, recheck differing rows
   after its lag (``recheck``), so rows in flight are not reported.

A task with incremental sync whose ``options.dml`` leaves out a kind of row change
keeps some rows different on purpose; those are reported apart as kept
(``scan.TableState.set_aside``), not as differences, and are neither rechecked nor
fixed. A task without incremental sync carries every row (its full copy).

Nothing is written anywhere; ``fix`` turns the report into statements.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from duosync.config import Flavor
from duosync.core.catalog import Catalog
from duosync.endpoints import check_row_filters, open_inspector
from duosync.errors import ConfigError, DuosyncError
from duosync.spec import DmlKind, MigrationType, TaskSpec
from duosync.verify.pairs import TablePair, Unpaired, build_pairs
from duosync.verify.recheck import recheck as recheck_rows
from duosync.verify.report import TableReport, VerifyReport
from duosync.verify.rows import SideReader
from duosync.verify.scan import TableState, scan

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def verify_task(
    spec: TaskSpec,
    *,
    say: Say = _stderr,
    recheck: bool = True,
    max_keys: int = 20,
    chunk_rows: int | None = None,
    concurrency: int | None = None,
    recheck_rounds: int = 3,
    recheck_margin: float = 2.0,
    recheck_max_wait: float = 30.0,
) -> VerifyReport:
    """Compare the task's selected tables on source and target.

    *chunk_rows* and *concurrency* default to the spec's ``chunk_rows`` and
    ``read_concurrency``. *max_keys* caps each key list of the report (counts are
    exact). Raises ``ConfigError`` for a selection or filter that does not fit the
    source, and other ``DuosyncError``s (naming task, endpoint, table) on failure.
    """
    if max_keys < 0:
        raise ConfigError("max_keys must not be negative", task=spec.name)
    if spec.target.flavor is Flavor.POSTGRESQL:
        raise ConfigError(
            "verify of a PostgreSQL target is not supported yet",
            task=spec.name,
            endpoint=spec.target.display,
        )
    started = time.monotonic()
    try:
        states = _prepare(spec)
        scan(
            states,
            spec.source,
            spec.target,
            chunk_rows=chunk_rows or spec.options.chunk_rows,
            concurrency=concurrency or spec.options.read_concurrency,
            max_keys=max_keys,
            say=say,
        )
        info = None
        if recheck and any(len(s.diff) for s in states):
            info = recheck_rows(
                states,
                spec.source,
                spec.target,
                spec.name,
                say=say,
                max_keys=max_keys,
                rounds=recheck_rounds,
                margin=recheck_margin,
                max_wait=recheck_max_wait,
            )
    except DuosyncError as exc:
        if exc.task is None:
            exc.task = spec.name
        raise
    return VerifyReport(
        task=spec.name,
        source=spec.source.display,
        target=spec.target.display,
        tables=[s.report for s in states],
        seconds=time.monotonic() - started,
        recheck=info,
        detail=states,
    )


def _prepare(spec: TaskSpec) -> list[TableState]:
    with open_inspector(spec.source) as src_insp:
        candidates = spec.select.candidate_databases(src_insp.list_databases())
        # The target's side is inspected meanwhile, in a thread: every database a
        # selected table may be renamed into (a superset; extra tables are ignored).
        wanted = {spec.rename.databases.get(d, d) for d in candidates} | {
            spec.rename.table(*key.split("."))[0] for key in spec.rename.tables
        }
        with ThreadPoolExecutor(max_workers=1) as pool:
            target_side = pool.submit(_target_catalog, spec, wanted)
            source = src_insp.catalog(candidates)
            source_flavor = Flavor(src_insp.server_info().flavor)
            target, target_flavor = target_side.result()
    spec.check_catalog(source)
    tables = spec.selected_tables(source)
    if not tables:
        raise ConfigError(
            "the selection matches no table on the source",
            task=spec.name,
            endpoint=spec.source.display,
        )
    if spec.filters:
        check_row_filters(spec.source, spec.name, spec.filters, tables)
    states: list[TableState] = []
    for entry in build_pairs(spec, source, target, source_flavor, target_flavor):
        if isinstance(entry, Unpaired):
            report = TableReport(entry.source, entry.target, problem=entry.problem)
            states.append(TableState(report, None))
            continue
        states.append(_state(entry, carried(spec)))
    return states


def carried(spec: TaskSpec) -> frozenset[DmlKind]:
    """The row change kinds the task brings to the target: ``options.dml`` when it
    syncs incrementally, every kind otherwise."""
    if MigrationType.INCREMENTAL in spec.types:
        return frozenset(spec.options.dml)
    return frozenset(DmlKind)


def _target_catalog(spec: TaskSpec, wanted: set[str]) -> tuple[Catalog, Flavor]:
    with open_inspector(spec.target) as insp:
        existing = set(insp.list_databases())
        return insp.catalog(sorted(wanted & existing)), Flavor(insp.server_info().flavor)


def _state(pair: TablePair, dml: frozenset[DmlKind]) -> TableState:
    report = TableReport(
        pair.source.table.qualified,
        pair.target.table.qualified,
        key=pair.source.key,
        notes=list(pair.notes),
    )
    return TableState(
        report,
        pair,
        SideReader(pair.source, pair.target.flavor),
        SideReader(pair.target, pair.source.flavor),
        carried=dml,
    )
