"""A batch: the row changes of consecutive source transactions, merged per row and
split into partitions that are applied in parallel.

Why merge: many source transactions go into one target transaction, and several
changes to one row within the batch only need its final state (insert + update is
an insert of the updated row, update + delete is a delete, ...). The final state of
a keyed row is "present with these values" or "absent"; the applier writes it with
idempotent statements (REPLACE, DELETE), so replaying a batch is harmless.

Why partitions by key: all changes of one row land in the same partition, so each
row's changes stay in source commit order whatever the parallelism. The partition
of a row is a stable hash (crc32) of its table and key, never Python's randomised
``hash``: a restarted task must put every row in the same partition as before,
because checkpoints are kept per partition (see ``sync.checkpoint``).

Rows of tables without a key cannot be merged or made idempotent: their changes are
kept in order, in the partition of their table.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from duosync.core.events import Op, RowChange
from duosync.core.positions import Position
from duosync.sync.conflict_log import Conflict

#: A target table: (database, name).
TableRef = tuple[str, str]


@dataclass(frozen=True)
class TableMapping:
    """How rows of one source table are written to the target."""

    target: TableRef
    #: target column names, in the order of ``source_positions``
    columns: tuple[str, ...]
    #: for each target column, its index in the source row image
    source_positions: tuple[int, ...]
    #: indexes (in the target column tuple) of the row identity; empty: no key
    key: tuple[int, ...]
    #: the target table has a unique key besides the row identity (an update may
    #: then clash with another row, which conflict handling must see)
    other_unique: bool = False
    #: every source column, in order: a row image is the target row as it is
    identity: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # the common case (same columns on both sides) then skips a tuple copy per row
        positions = self.source_positions
        object.__setattr__(self, "identity", positions == tuple(range(len(positions))))


@dataclass
class TableChanges:
    """One partition's share of one table: final states by key, or ordered ops."""

    mapping: TableMapping
    #: key -> target row (present) or None (absent)
    final: dict[tuple[Any, ...], tuple[Any, ...] | None] = field(default_factory=dict)
    #: key -> the row's image before the batch's first change to it (None: the
    #: source had no such row): what conflict handling expects the target to hold
    first: dict[tuple[Any, ...], tuple[Any, ...] | None] = field(default_factory=dict)
    #: key -> commit time of the source transaction of the batch's last change to it
    stamps: dict[tuple[Any, ...], float] = field(default_factory=dict)
    #: keyless tables: (op, before, after) in source order
    ordered: list[tuple[Op, tuple[Any, ...] | None, tuple[Any, ...] | None]] = field(
        default_factory=list
    )

    def upserts(self) -> list[tuple[Any, ...]]:
        return [row for row in self.final.values() if row is not None]

    def deletes(self) -> list[tuple[Any, ...]]:
        return [key for key, row in self.final.items() if row is None]


def partition_of(target: TableRef, key: tuple[Any, ...], partitions: int) -> int:
    """The partition of a row: CRC-32 of ``repr((target, key))``, a value that must
    never change (checkpoints are per partition). Computed as the CRC of the
    target's part, kept per table, continued over the key's part: the same value
    without building the whole text for every row."""
    if partitions == 1:
        return 0
    start = _TARGET_CRC.get(target)
    if start is None:
        if len(_TARGET_CRC) >= 100_000:
            _TARGET_CRC.clear()
        start = _TARGET_CRC[target] = zlib.crc32(f"({target!r}, ".encode())
    return zlib.crc32(f"{key!r})".encode(), start) % partitions


#: target table -> CRC-32 of the start of ``repr((target, key))``
_TARGET_CRC: dict[TableRef, int] = {}


class Batch:
    """Changes accumulated for one apply round.

    ``skip_upto[p]`` is partition p's checkpoint: a change whose transaction is at or
    before it was already applied there (a restart replays from the lowest
    checkpoint of all partitions) and is dropped.
    """

    def __init__(
        self,
        partitions: int,
        mapping_of: Callable[[RowChange], TableMapping | None],
        skip_upto: list[Position] | None = None,
        *,
        checked: bool = False,
    ) -> None:
        #: apply with conflict detection (``sync.conflicts``), not idempotently
        self.checked = checked
        self.partitions = partitions
        self.mapping_of = mapping_of
        self.skip_upto = skip_upto
        #: per partition, per table and mapping: a table's rows under two column
        #: lists (an OceanBase reverse stream around a schema change) stay apart,
        #: written in the order the mappings came
        self.parts: list[dict[tuple[TableRef, TableMapping], TableChanges]] = [
            {} for _ in range(partitions)
        ]
        #: per partition: changes not applied but recorded in the conflict log with
        #: that partition's checkpoint (``refuse``), so exactly once like rows
        self.notes: list[list[Conflict]] = [[] for _ in range(partitions)]
        self.transactions = 0
        self.rows = 0
        self.nbytes = 0
        self.last: Position | None = None
        self.last_commit_ts: float | None = None
        self.first_seen: float | None = None

    def __bool__(self) -> bool:
        return self.transactions > 0

    def add(self, change: RowChange, position: Position, commit_ts: float = 0.0) -> None:
        mapping = self.mapping_of(change)
        if mapping is None:  # not selected
            return
        before = _project(change.before, mapping)
        after = _project(change.after, mapping)
        self.rows += 1
        self.nbytes += _size(change.before) + _size(change.after)
        if not mapping.key:
            p = partition_of(mapping.target, (), self.partitions)
            if not self._skipped(p, position):
                self._table(p, mapping).ordered.append((change.op, before, after))
            return
        old_key = None if before is None else tuple(before[i] for i in mapping.key)
        new_key = None if after is None else tuple(after[i] for i in mapping.key)
        # An update that changes the key moves the row: the old key becomes absent.
        if old_key is not None and old_key != new_key:
            self._set(mapping, old_key, None, position, before, commit_ts)
        if new_key is not None:
            same = old_key == new_key
            self._set(mapping, new_key, after, position, before if same else None, commit_ts)

    def refuse(self, change: RowChange, position: Position, reason: str, resolution: str) -> None:
        """Leave *change* out, recording it (with *reason* and *resolution*) in the
        conflict log of the partition its row belongs to."""
        mapping = self.mapping_of(change)
        if mapping is None:
            return
        before = _project(change.before, mapping)
        after = _project(change.after, mapping)
        image = after if after is not None else before
        key = tuple(image[i] for i in mapping.key) if image is not None and mapping.key else ()
        p = partition_of(mapping.target, key, self.partitions)
        if self._skipped(p, position):
            return
        self.notes[p].append(
            Conflict(
                table=".".join(mapping.target),
                op=change.op.value,
                key=key,
                columns=mapping.columns,
                before=before,
                after=after,
                current=None,
                reason=reason,
                resolution=resolution,
            )
        )

    def end_transaction(self, position: Position, commit_ts: float, now: float) -> None:
        self.transactions += 1
        self.last = position
        self.last_commit_ts = commit_ts
        if self.first_seen is None:
            self.first_seen = now

    def _set(
        self,
        mapping: TableMapping,
        key: tuple[Any, ...],
        row: tuple[Any, ...] | None,
        position: Position,
        before: tuple[Any, ...] | None,
        commit_ts: float,
    ) -> None:
        # Checked apply (conflict detection) of a table with another unique key keeps
        # the whole table in one partition: a unique value moving from one row to
        # another within a batch must not meet partitions committing out of order,
        # which would look like a clash. Stable across restarts: whether a batch is
        # checked depends only on its position (``sync.runner``).
        part_key = () if self.checked and mapping.other_unique else key
        p = partition_of(mapping.target, part_key, self.partitions)
        if not self._skipped(p, position):
            changes = self._table(p, mapping)
            changes.final[key] = row
            changes.first.setdefault(key, before)
            changes.stamps[key] = commit_ts

    def _skipped(self, partition: int, position: Position) -> bool:
        return self.skip_upto is not None and position <= self.skip_upto[partition]

    def _table(self, partition: int, mapping: TableMapping) -> TableChanges:
        tables = self.parts[partition]
        got = tables.get((mapping.target, mapping))
        if got is None:
            got = tables[(mapping.target, mapping)] = TableChanges(mapping)
        return got


def _project(values: tuple[Any, ...] | None, mapping: TableMapping) -> tuple[Any, ...] | None:
    if values is None:
        return None
    if mapping.identity and len(values) == len(mapping.source_positions):
        return values
    return tuple(values[i] for i in mapping.source_positions)


_TEXT = (str, bytes)


def _size(values: tuple[Any, ...] | None) -> int:
    """Bytes of a row image as rates count them: text its length, others 8."""
    if values is None:
        return 0
    n = 0
    for v in values:  # a plain loop: this runs for every row change (hot path)
        n += len(v) if v.__class__ in _TEXT else 8
    return n
