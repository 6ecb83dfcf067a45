"""Which source table is compared with which target table, column by column.

A pair follows the task's renames (database, table, columns) and row filter: the
target should hold exactly the source rows the filter keeps, so target rows the
filter leaves out on the source count as extra. Generated columns are left out on
both sides (they are computed from the others, and the copy does not write them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from duosync.config import Flavor
from duosync.core.catalog import Catalog, Column, Table
from duosync.spec import TaskSpec
from duosync.verify.normalize import is_character


@dataclass(frozen=True)
class Side:
    """One side of a pair: its table, compared columns and key, in its own names."""

    table: Table
    flavor: Flavor
    columns: tuple[Column, ...]
    #: row identity (empty: the table has none and is compared as a whole)
    key: tuple[str, ...]
    #: row filter (source side only)
    where: str | None = None


@dataclass(frozen=True)
class TablePair:
    source: Side
    target: Side
    #: key columns are text whose order may differ between the sides (another
    #: collation or server family): a row may then sit in different chunks on the
    #: two sides, and the comparison must look rows up by key to be sure
    loose_order: bool
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.source.table.qualified

    @property
    def keyed(self) -> bool:
        return bool(self.source.key)


@dataclass(frozen=True)
class Unpaired:
    """A selected source table that cannot be compared, and why."""

    source: str
    target: str
    problem: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def build_pairs(
    spec: TaskSpec,
    source: Catalog,
    target: Catalog,
    source_flavor: Flavor,
    target_flavor: Flavor,
) -> list[TablePair | Unpaired]:
    """One entry per selected source table, in catalog order."""
    out: list[TablePair | Unpaired] = []
    tables = {(t.database, t.name): t for d in target.databases for t in d.tables}
    for src in spec.selected_tables(source):
        db, name = spec.rename.table(src.database, src.name)
        dst_name = f"{db}.{name}"
        dst = tables.get((db, name))
        if dst is None:
            out.append(Unpaired(src.qualified, dst_name, "the target has no such table"))
            continue
        out.append(_pair(spec, src, dst, source_flavor, target_flavor))
    return out


def _pair(
    spec: TaskSpec, src: Table, dst: Table, source_flavor: Flavor, target_flavor: Flavor
) -> TablePair | Unpaired:
    notes: list[str] = []
    src_cols: list[Column] = []
    dst_cols: list[Column] = []
    lacking: list[str] = []
    for col in src.columns:
        if col.generated is not None:
            continue
        renamed = spec.rename.column(src.database, src.name, col.name)
        try:
            other = dst.column(renamed)
        except KeyError:
            lacking.append(renamed)
            continue
        src_cols.append(col)
        dst_cols.append(other)
    if lacking:
        return Unpaired(
            src.qualified,
            dst.qualified,
            f"the target table has no column {', '.join(lacking)}",
        )
    known = {c.name.lower() for c in dst_cols}
    unknown = [c.name for c in dst.columns if c.generated is None and c.name.lower() not in known]
    if unknown:
        notes.append(f"target columns not on the source, not compared: {', '.join(unknown)}")
    key = src.row_identity
    dst_key = tuple(dst.column(spec.rename.column(src.database, src.name, k)).name for k in key)
    if not key:
        notes.append(
            "no primary key or NOT NULL unique key: compared as a whole (row count and"
            " checksum); differing rows cannot be named or fixed"
        )
    loose = False
    for s, t in zip(key, dst_key, strict=True):
        a, b = src.column(s), dst.column(t)
        if is_character(a) and (
            (a.charset, a.collation) != (b.charset, b.collation) or source_flavor != target_flavor
        ):
            loose = True
    return TablePair(
        Side(src, source_flavor, tuple(src_cols), key, spec.filter_for(src.database, src.name)),
        Side(dst, target_flavor, tuple(dst_cols), dst_key),
        loose,
        tuple(notes),
    )
