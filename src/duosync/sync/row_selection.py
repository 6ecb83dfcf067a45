"""What incremental sync carries of each source change: row filters and
``options.dml``.

A filtered task (``filters: {db.table: condition}``) keeps on the target the rows
of the table that satisfy the condition, as a filtered replica would. The
condition is evaluated by the source server on the row images each change
carries (``endpoints.mysql.filter_eval``), so it means what it meant for the full
copy. Per change of a filtered table:

- INSERT: applied if the new row matches, else dropped;
- UPDATE: old row and new row matching: applied as an update; only the new one:
  the row enters the filter, an insert of the new row; only the old one: it leaves
  the filter, a delete of the old row; neither: dropped;
- DELETE: applied (it removes the row if the target holds it; the old row is not
  evaluated: the target may hold it from a time it matched).

Then ``options.dml`` drops the changes whose kind (as they reach the target, after
the filter made an update an insert or a delete) the task does not carry.

Two-way pairs (``reverse``): the forward task's filter says which rows the two
sides share. The reverse task carries the target's changes of those rows only: it
evaluates the same condition, on the forward task's source server (its own target)
against the row mapped back to the source table's names, and a target change whose
new row does not match (an insert outside the filter, an update moving a row out)
is refused: it would put on the source a row the forward task keeps off the target.
Under ``on_data_error: stop`` the reverse task stops naming the row; under ``skip``
the change is recorded in the conflict log and left out. Deletes always pass.

Both are pure functions of the change and the server's semantics: a replay after a
restart makes the same choices, so exactly-once is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from duosync.config import Endpoint
from duosync.core.events import Change, Op, RowChange
from duosync.endpoints.mysql.filter_eval import FilterEvaluator, FilterTable
from duosync.spec import DmlKind, TaskSpec

#: conflict-log resolution of a reverse change refused by the pair's filter
OUTSIDE = "skipped (outside the filter)"  # the column holds 32 characters


@dataclass(frozen=True)
class Refusal:
    """A reverse task's change that the pair's filter keeps off the source."""

    change: RowChange
    reason: str


@dataclass(frozen=True)
class Selected:
    """The changes of one transaction to apply, and those refused (reverse only)."""

    changes: list[Change]
    refused: list[Refusal]


class RowSelection:
    """Row filters and ``options.dml`` of one task (see the module docstring).

    *filters* are keyed by the table the condition is written for ("db.table"),
    evaluated on *server*. A forward task passes its own filters and source; a
    reverse task (*guard*) its forward task's, and its own target."""

    def __init__(
        self, spec: TaskSpec, filters: dict[str, str], server: Endpoint, *, guard: bool = False
    ) -> None:
        self.spec = spec
        self.filters = filters
        self.guard = guard
        self.dml = frozenset(Op(kind.value) for kind in spec.options.dml)
        self.evaluator = FilterEvaluator(server, spec.name) if filters else None

    @property
    def active(self) -> bool:
        """Whether anything is ever left out (else ``select`` need not be called)."""
        return self.evaluator is not None or len(self.dml) < len(DmlKind)

    def select(self, changes: Sequence[Change]) -> Selected:
        """The changes of one transaction, filtered (``SchemaChange`` passes)."""
        verdicts = self._evaluate(changes)
        kept: list[Change] = []
        refused: list[Refusal] = []
        for i, change in enumerate(changes):
            if not isinstance(change, RowChange):
                kept.append(change)
                continue
            verdict = verdicts.get(i)
            if verdict is None:
                out: RowChange | None = change
            elif self.guard:
                out = change if verdict[1] is not False else None
                if out is None:
                    refused.append(Refusal(change, self._outside(change)))
                    continue
            else:
                out = as_filtered(change, *verdict)
            if out is not None and out.op in self.dml:
                kept.append(out)
        return Selected(kept, refused)

    def _outside(self, change: RowChange) -> str:
        where = self._where(change)
        assert where is not None
        return (
            f"the target's {change.op.value} leaves a row outside the forward task's filter"
            f" on {where.origin} ({where.condition}): a filtered two-way pair carries only"
            " rows within the filter"
        )

    def _where(self, change: RowChange) -> FilterTable | None:
        """The condition that applies to *change*'s table, and where it is evaluated."""
        if not self.filters:
            return None
        if self.guard:
            db, table = self.spec.rename.table(change.database, change.table)
        else:
            db, table = change.database, change.table
        origin = f"{db}.{table}"
        condition = self.filters.get(origin)
        if condition is None:
            return None
        return FilterTable(db, table, condition, origin)

    def _columns(self, change: RowChange) -> tuple[str, ...]:
        if not self.guard:
            return change.columns
        rename = self.spec.rename
        return tuple(rename.column(change.database, change.table, c) for c in change.columns)

    def _evaluate(self, changes: Sequence[Change]) -> dict[int, tuple[bool | None, bool | None]]:
        """Per row change of a filtered table (by index): whether its old and new
        rows match (None where there is no such row, or it is not evaluated)."""
        if self.evaluator is None:
            return {}
        #: (table, columns) -> [(change index, 0 old / 1 new, row)]
        wanted: dict[tuple[FilterTable, tuple[str, ...]], list[tuple[int, int, Any]]] = {}
        for i, change in enumerate(changes):
            if not isinstance(change, RowChange) or change.op is Op.DELETE:
                continue
            where = self._where(change)
            if where is None:
                continue
            rows = wanted.setdefault((where, self._columns(change)), [])
            if change.before is not None and not self.guard:
                rows.append((i, 0, change.before))
            if change.after is not None:
                rows.append((i, 1, change.after))
        verdicts: dict[int, list[bool | None]] = {}
        for (where, columns), rows in wanted.items():
            results = self.evaluator.matches(where, columns, [r[2] for r in rows])
            for (i, side, _), ok in zip(rows, results, strict=True):
                verdicts.setdefault(i, [None, None])[side] = ok
        return {i: (v[0], v[1]) for i, v in verdicts.items()}

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()


def as_filtered(change: RowChange, old: bool | None, new: bool | None) -> RowChange | None:
    """A forward task's change of a filtered table, as the target must see it."""
    if change.op is Op.INSERT:
        return change if new else None
    # an update: both images evaluated
    if old and new:
        return change
    if new:
        return RowChange(
            Op.INSERT, change.database, change.table, change.columns, None, change.after
        )
    if old:
        return RowChange(
            Op.DELETE, change.database, change.table, change.columns, change.before, None
        )
    return None
