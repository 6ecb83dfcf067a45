"""What verification found: per table counts and (capped) key lists.

Keys are shown as the SQL literals of their values (``5``, ``'abc'``, ``X'00FF'``),
in the order of the key's columns. Counts are exact; key lists hold at most
``max_keys`` entries each, ordered (numbers numerically, then text).

Rows *kept by options.dml* are the differences a task that does not carry every
kind of row change leaves on purpose (missing without ``insert``, extra without
``delete``, different without ``update``): counted and listed apart, they do not
make a table differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from duosync.verify.rows import Key

_INTEGER = re.compile(r"-?\d+")


def _sort_key(key: Key) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(v), "") if _INTEGER.fullmatch(v) else (1, 0, v) for v in key)


def ordered(keys: Iterable[Key]) -> list[Key]:
    return sorted(keys, key=_sort_key)


@dataclass
class TableReport:
    source: str  #: source ``db.table``
    target: str  #: target ``db.table`` (after renames)
    key: tuple[str, ...] = ()  #: source key columns (empty: compared as a whole)
    source_rows: int = 0  #: rows compared on the source (after the row filter)
    target_rows: int = 0
    chunks: int = 0  #: key-range chunks whose checksums were compared
    chunks_differing: int = 0  #: chunks whose rows were then read and compared
    rows_fetched: int = 0  #: row digests read for those chunks (both sides)
    missing: int = 0  #: source rows absent from the target
    extra: int = 0  #: target rows absent from the source
    different: int = 0  #: rows on both sides whose values differ
    missing_keys: list[Key] = field(default_factory=list)
    extra_keys: list[Key] = field(default_factory=list)
    different_keys: list[Key] = field(default_factory=list)
    #: target column name -> rows in which it differs
    columns_differing: dict[str, int] = field(default_factory=dict)
    #: rows that differ only as the task's options.dml leaves them (not differences):
    #: source rows absent from the target (no insert), target rows absent from the
    #: source (no delete), rows whose values differ (no update)
    kept_missing: int = 0
    kept_extra: int = 0
    kept_different: int = 0
    kept_missing_keys: list[Key] = field(default_factory=list)
    kept_extra_keys: list[Key] = field(default_factory=list)
    kept_different_keys: list[Key] = field(default_factory=list)
    #: rows that differed at first and converged while a sync applied them
    converged: int = 0
    #: keyless table: its checksums differ (rows cannot be named)
    keyless_differs: bool = False
    #: why the table could not be compared at all
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return bool(
            self.problem or self.missing or self.extra or self.different or self.keyless_differs
        )

    @property
    def kept(self) -> int:
        """Rows kept by options.dml (not differences)."""
        return self.kept_missing + self.kept_extra + self.kept_different


@dataclass
class RecheckInfo:
    """The recheck done because an incremental sync writes to the target."""

    lag: float  #: seconds, when first measured
    rounds: int
    keys: int  #: differing rows rechecked
    converged: int  #: of which equal in the end


@dataclass
class VerifyReport:
    task: str
    source: str
    target: str
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0
    recheck: RecheckInfo | None = None
    #: internal: what --fix needs (pairs and full key sets), not part of the result
    detail: Any = field(default=None, repr=False, compare=False)

    @property
    def differs(self) -> bool:
        return any(t.differs for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    @property
    def kept(self) -> int:
        """Rows kept by options.dml over every table (not differences)."""
        return sum(t.kept for t in self.tables)

    def table(self, source: str) -> TableReport:
        for t in self.tables:
            if t.source == source:
                return t
        raise KeyError(source)


def _keys(keys: list[Key], total: int) -> str:
    shown = ", ".join("(" + ", ".join(k) + ")" if len(k) > 1 else k[0] for k in keys)
    more = total - len(keys)
    return shown + (f" and {more} more" if more > 0 else "")


#: why each kind of kept row is expected
_KEPT_WHY = {
    "missing": "the task does not carry inserts",
    "extra": "the task does not carry deletes",
    "different": "the task does not carry updates",
}


def _kept_lines(t: TableReport) -> list[str]:
    key = ", ".join(t.key)
    out = []
    for kind, count, shown in (
        ("missing", t.kept_missing, t.kept_missing_keys),
        ("extra", t.kept_extra, t.kept_extra_keys),
        ("different", t.kept_different, t.kept_different_keys),
    ):
        if count:
            out.append(
                f"  kept by options.dml: {count} {kind} ({_KEPT_WHY[kind]}) ({key}):"
                f" {_keys(shown, count)}"
            )
    return out


def render(report: VerifyReport) -> list[str]:
    """The report as lines of text for a terminal."""
    lines: list[str] = []
    for t in report.tables:
        head = t.source if t.source == t.target else f"{t.source} -> {t.target}"
        if t.problem:
            lines.append(f"{head}: NOT COMPARED: {t.problem}")
        elif not t.differs:
            kept = f"; kept by options.dml: {t.kept} rows" if t.kept else ""
            lines.append(f"{head}: equal ({t.source_rows} rows, {t.chunks} chunks{kept})")
        elif t.keyless_differs:
            lines.append(
                f"{head}: DIFFERS ({t.source_rows} rows on the source, {t.target_rows} on the"
                " target; no key, rows cannot be named)"
            )
        else:
            lines.append(
                f"{head}: DIFFERS: {t.missing} missing, {t.extra} extra, {t.different} different"
                f" ({t.source_rows} source rows, {t.target_rows} target rows,"
                f" {t.chunks_differing} of {t.chunks} chunks compared row by row)"
            )
            key = ", ".join(t.key)
            if t.missing:
                lines.append(f"  missing ({key}): {_keys(t.missing_keys, t.missing)}")
            if t.extra:
                lines.append(f"  extra ({key}): {_keys(t.extra_keys, t.extra)}")
            if t.different:
                cols = ", ".join(f"{c} ({n})" for c, n in t.columns_differing.items())
                lines.append(f"  different ({key}): {_keys(t.different_keys, t.different)}")
                lines.append(f"  differing columns: {cols}")
        lines.extend(_kept_lines(t))
        if t.converged:
            lines.append(f"  {t.converged} rows in flight converged while the sync applied them")
        lines.extend(f"  note: {n}" for n in t.notes)
    if report.recheck is not None:
        r = report.recheck
        lines.append(
            f"sync running (lag {r.lag:.1f}s): {r.keys} differing rows rechecked in"
            f" {r.rounds} rounds, {r.converged} converged"
        )
    differing = [t for t in report.tables if t.differs]
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    lines.append(
        f"verify {report.task}: {len(report.tables)} tables, {report.rows} rows in"
        f" {report.seconds:.1f}s ({rate:.0f} rows/s): "
        + (
            f"{len(differing)} table{' differs' if len(differing) == 1 else 's differ'}"
            if differing
            else "source and target are equal"
        )
        + (f" (kept by options.dml: {report.kept} rows)" if report.kept else "")
    )
    return lines
