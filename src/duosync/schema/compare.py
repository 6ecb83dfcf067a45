"""Is an existing target table the one we would create? Differences, one line each.

The expected side is the translated table (``schema.translate``); the actual side is
what the target's inspector reports. Only what changes the data a table can hold,
or how rows are identified, counts: display widths, index DESC flags dropped by
OceanBase, and expression spelling do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from duosync.core.catalog import Column, Index, Table

_COLUMN_FIELDS = (
    "data_type",
    "length",
    "precision",
    "scale",
    "fsp",
    "unsigned",
    "nullable",
    "charset",
    "collation",
    "auto_increment",
    "values",
)


# Types whose length is implied by the type (and differs by server: OceanBase caps
# LONGTEXT at 512 MiB), so a length difference is not a table difference.
_SIZED_TYPES = frozenset({"char", "varchar", "binary", "varbinary", "bit"})


def _column_differences(expected: Column, actual: Column) -> list[str]:
    out = []
    for field in _COLUMN_FIELDS:
        if field == "length" and expected.data_type not in _SIZED_TYPES:
            continue
        if field in ("charset", "collation") and expected.data_type == "json":
            continue  # JSON is utf8mb4_bin text on MariaDB, a binary type on OceanBase
        e, a = getattr(expected, field), getattr(actual, field)
        if e != a:
            out.append(f"column {expected.name}: {field} is {a!r}, expected {e!r}")
    if (expected.generated is None) != (actual.generated is None) or (
        expected.generated
        and actual.generated
        and expected.generated.stored != actual.generated.stored
    ):
        out.append(f"column {expected.name}: generated differs")
    return out


def _key(index: Index) -> tuple[bool, str, tuple[tuple[str, int | None], ...]]:
    return index.unique, index.kind, tuple((c.name, c.prefix) for c in index.columns)


def table_differences(expected: Table, actual: Table, *, check_indexes: bool = True) -> list[str]:
    """Differences between the table we would create and the one that exists."""
    out: list[str] = []
    exp_cols = [c.name for c in expected.columns]
    act_cols = [c.name for c in actual.columns]
    if exp_cols != act_cols:
        missing = [c for c in exp_cols if c not in act_cols]
        extra = [c for c in act_cols if c not in exp_cols]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"extra {', '.join(extra)}")
        if not detail:
            detail.append("different order")
        out.append(f"columns differ ({'; '.join(detail)})")
    for col in expected.columns:
        if col.name in act_cols:
            out.extend(_column_differences(col, actual.column(col.name)))
    if tuple(expected.primary_key) != tuple(actual.primary_key):
        out.append(
            f"primary key is ({', '.join(actual.primary_key)}),"
            f" expected ({', '.join(expected.primary_key)})"
        )
    wanted_unique = {_key(i) for i in expected.unique_keys}
    have_unique = {_key(i) for i in actual.unique_keys}
    if wanted_unique != have_unique:
        out.append("unique keys differ")
    if check_indexes:
        wanted = {_key(i) for i in expected.indexes if not i.unique}
        have = {_key(i) for i in actual.indexes if not i.unique}
        if not wanted <= have:
            out.append("secondary indexes differ")
    return out


@dataclass(frozen=True)
class ColumnDiff:
    """How a table's columns changed between two catalog readings (``column_diff``).

    ``added`` and ``moved`` carry the name of the column each follows in the new
    table (None: first), so the change can be replayed keeping the column order."""

    dropped: tuple[str, ...] = ()
    added: tuple[tuple[Column, str | None], ...] = ()
    modified: tuple[tuple[Column, str | None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dropped or self.added or self.modified)


def _same_definition(a: Column, b: Column) -> bool:
    # The ordinal position moves with every drop before it: not a definition change.
    return a.model_copy(update={"position": 0}) == b.model_copy(update={"position": 0})


def column_diff(old: Sequence[Column], new: Sequence[Column]) -> ColumnDiff:
    """The column changes that turn a table with columns *old* into one with *new*:
    columns dropped, added (with their place), and modified (a definition change
    or a new place among the columns both have)."""
    old_by_name = {c.name: c for c in old}
    new_names = [c.name for c in new]
    dropped = tuple(c.name for c in old if c.name not in new_names)
    kept_old = [c.name for c in old if c.name in new_names]
    kept_new = [n for n in new_names if n in old_by_name]
    added: list[tuple[Column, str | None]] = []
    modified: list[tuple[Column, str | None]] = []
    moved = kept_old != kept_new
    for i, col in enumerate(new):
        after = new[i - 1].name if i else None
        was = old_by_name.get(col.name)
        if was is None:
            added.append((col, after))
        elif not _same_definition(was, col) or (
            moved and kept_old.index(col.name) != kept_new.index(col.name)
        ):
            modified.append((col, after))
    return ColumnDiff(dropped, tuple(added), tuple(modified))
