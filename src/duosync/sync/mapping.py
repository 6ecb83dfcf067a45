"""Which source rows go where on the target: selection, renames, target columns.

A mapping is derived from three things: the column names in the change itself (the
source writes them into every table map with binlog_row_metadata=FULL, so rows
decode correctly across DDL without a schema history of our own), the task's
selection and renames, and the target table as it is now (only its non-generated
columns are written). The row identity is the source table's primary key (else a
NOT NULL unique key), from the source catalog.

Catalog entries are read lazily (a table created after the task started is looked
up when its first row arrives) and dropped by ``forget`` after DDL touches a table.
"""

from __future__ import annotations

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.core.events import RowChange
from duosync.endpoints import open_inspector
from duosync.spec import TaskSpec
from duosync.sync.batch import TableMapping


class Mapper:
    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self._source: dict[tuple[str, str], Table | None] = {}
        self._target: dict[tuple[str, str], Table | None] = {}
        self._cache: dict[tuple[str, str, tuple[str, ...]], TableMapping | None] = {}

    def selected(self, database: str, table: str) -> bool:
        return self.spec.select.matches(database, table)

    def forget_all(self) -> None:
        """Drop everything known (a DDL this task does not parse, e.g. reverse tasks)."""
        self._source.clear()
        self._target.clear()
        self._cache.clear()

    def forget(self, database: str, table: str) -> None:
        """Drop what is known of a source table and its target (after DDL)."""
        self._source.pop((database, table), None)
        self._target.pop(self.spec.rename.table(database, table), None)
        self._cache = {k: v for k, v in self._cache.items() if k[:2] != (database, table)}

    def mapping(self, change: RowChange) -> TableMapping | None:
        key = (change.database, change.table, change.columns)
        if key not in self._cache:
            self._cache[key] = self._build(change)
        return self._cache[key]

    def _build(self, change: RowChange) -> TableMapping | None:
        db, name = change.database, change.table
        if not self.selected(db, name):
            return None
        target_ref = self.spec.rename.table(db, name)
        target = self._lookup(self._target, self.spec.target, target_ref)
        if target is None:
            return None  # not on the target: DDL sync creates it, or it was dropped
        writable = {c.name.lower(): c.name for c in target.columns if c.generated is None}
        columns: list[str] = []
        positions: list[int] = []
        for i, col in enumerate(change.columns):
            name_there = writable.get(self.spec.rename.column(db, name, col).lower())
            if name_there is not None:
                columns.append(name_there)
                positions.append(i)
        source = self._lookup(self._source, self.spec.source, (db, name))
        identity = source.row_identity if source is not None else ()
        wanted = [self.spec.rename.column(db, name, k).lower() for k in identity]
        lowered = [c.lower() for c in columns]
        key = tuple(lowered.index(k) for k in wanted) if all(k in lowered for k in wanted) else ()
        uniques = [tuple(target.primary_key)] if target.primary_key else []
        uniques += [tuple(c.name for c in idx.columns) for idx in target.unique_keys]
        other_unique = any({c.lower() for c in u} != set(wanted) for u in uniques)
        return TableMapping(target_ref, tuple(columns), tuple(positions), key, other_unique)

    @staticmethod
    def _lookup(
        cache: dict[tuple[str, str], Table | None], endpoint: Endpoint, ref: tuple[str, str]
    ) -> Table | None:
        if ref not in cache:
            with open_inspector(endpoint) as insp:
                if ref[0] not in insp.list_databases():
                    cache[ref] = None
                else:
                    catalog = insp.catalog([ref[0]])
                    db = catalog.database(ref[0])
                    for t in db.tables:
                        cache.setdefault((ref[0], t.name), t)
                    cache.setdefault(ref, None)
        return cache[ref]
