"""``TriggerLogStream``: whole committed transactions from an OceanBase change log.

Why commit order needs ``ORA_ROWSCN``: the log's ``seq`` is allocated when a row is
written, long before its transaction commits; a reader that follows ``seq`` skips a
transaction that allocated low numbers and committed after others (it would never
look back). The commit version (``ORA_ROWSCN``) is what orders commits, and
OceanBase's snapshot reads guarantee that a transaction not visible to a read
commits with a version above that read's snapshot: so "everything after the last
version we consumed" is complete at every read, which is what the page query asks.
The price: the version is not indexable, each page scans the unpurged log, which
is why consumed rows are purged continuously.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pymysql
from pymysql.connections import Connection

from duosync.config import Endpoint
from duosync.core.catalog import Column
from duosync.core.events import Change, Fragment, Heartbeat, Op, RowChange, Transaction
from duosync.core.positions import Position, TriggerLogPosition
from duosync.endpoints import open_inspector
from duosync.endpoints.mysql.connection import connect, translate
from duosync.endpoints.oceanbase.capture import consumers, log, schema_watch, triggers
from duosync.endpoints.oceanbase.capture.catalog_watch import CatalogWatch
from duosync.endpoints.oceanbase.capture.schema_watch import SchemaTracker, TableVersion
from duosync.endpoints.oceanbase.capture.values import Decoder, decoder
from duosync.errors import FatalError

TableFilter = Callable[[str, str], bool]
Say = Callable[[str], None]
TableRef = tuple[str, str]

_OPS = {"I": Op.INSERT, "U": Op.UPDATE, "D": Op.DELETE}
_MAX_SEQ = (1 << 63) - 1
# The order is found on the narrow key columns (the commit version cannot be
# indexed, so this scans the unpurged log); the images are then fetched by primary
# key. Sorting whole rows page after page made a large backlog cost quadratic time.
_KEYS_SQL = (
    f"SELECT ORA_ROWSCN, tx, seq FROM {log.CHANGELOG}"
    " WHERE ORA_ROWSCN > %s OR (ORA_ROWSCN = %s AND (tx > %s OR (tx = %s AND seq > %s)))"
    " ORDER BY ORA_ROWSCN, tx, seq LIMIT %s"
)
_IMAGES_SQL = (
    f"SELECT seq, db, tbl, ver, op, before_img, after_img FROM {log.CHANGELOG} WHERE seq IN "
)
#: seconds between counts of the log's rows (a full scan) for the size warning
_COUNT_SECONDS = 30.0
#: log rows fetched per image query
_IMAGE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class _Version:
    columns: tuple[str, ...]
    decoders: tuple[Decoder, ...]
    catalog: tuple[Column, ...]


@dataclass(slots=True)
class _Assembly:
    """The log rows read so far of one transaction (``(commit version, tx)``)."""

    key: tuple[int, int]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    #: fragments yielded before these rows
    fragments: int = 0
    #: it yields DDL: never fragmented
    whole: bool = False

    def fragmentable(self, size: int) -> bool:
        return not self.whole and len(self.rows) > size


@dataclass(slots=True)
class _Entry:
    """One decoded log row."""

    table: TableRef
    ver: int
    change: Change
    #: a row of the log (not one read back for a schema change)
    logged: bool = True


class TriggerLogStream:
    """Change stream of an OceanBase server, read from the trigger change log.

    Contract (the same as ``BinlogStream`` where it applies):

    - ``read`` yields whole committed transactions strictly after ``start``, in
      commit-version order (transactions sharing a version: by transaction id).
      ``Transaction.position`` is ``(commit version, transaction id)``: a stream
      started there yields the next transaction only. ``id`` is OceanBase's
      transaction id, ``origin`` 0, ``commit_ts`` the commit version in seconds.
    - Rows of tables for which ``tables(db, table)`` is False are skipped; a
      transaction left empty is yielded as a ``Heartbeat`` at its position.
    - DDL (with *ddl*, the default; a two-way sync's reverse task passes False): a
      captured table's column changes, tables created in *databases* and dropped
      ones are yielded as ``SchemaChange`` transactions, in log order with the
      rows around them, followed by the rows the change may have left stale
      (``capture.schema_watch`` has the contract). Without *ddl* (DML only), the
      ``SchemaChange`` is yielded for the runner to note, rows carry the columns
      they were written with, and nothing is read back from the tables.
    - When idle, a ``Heartbeat`` every ``heartbeat_seconds``. ``read`` returns
      within about ``poll_seconds`` once ``stop`` is set, between transactions.
    - ``confirm(position)`` (any thread) says everything up to *position* is
      durably applied: recorded as this consumer's progress on the source, and log
      rows every consumer is past are purged.
    - Tables created later in *databases* that ``tables`` selects are captured from
      when they are seen; with *ddl*, their CREATE and then their rows (read from
      the table) are yielded first (without it, rows written before their triggers
      existed are missed).

    - With *fragment_rows*, a large transaction's rows are yielded as
      ``Fragment``s of about that many rows (the contract of ``Fragment``), so
      memory is bounded by the fragment size. A transaction that holds a schema
      change (or rows written by newer triggers than the schema read so far) is
      held whole: its DDL must reach the consumer as a transaction of its own.

    One reader thread.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        start: TriggerLogPosition,
        *,
        consumer: str,
        tables: TableFilter | None = None,
        databases: Sequence[str] = (),
        say: Say | None = None,
        heartbeat_seconds: float = 1.0,
        poll_seconds: float = 0.05,
        page_rows: int = 100_000,
        watch_seconds: float = 1.0,
        purge_seconds: float = 2.0,
        warn_rows: int = 1_000_000,
        ddl: bool = True,
        fragment_rows: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._fragment_rows = fragment_rows or 0
        #: where the next ``read`` starts: after the last item yielded
        self.position = start
        self.consumer = consumer
        self._filter = tables
        self._say = say or (lambda _line: None)
        self._heartbeat = heartbeat_seconds
        self._poll = poll_seconds
        self._page = page_rows
        self._watch_every = watch_seconds
        self._purge_every = purge_seconds
        self.warn_rows = warn_rows
        self._versions: dict[tuple[str, str, int], _Version] = {}
        self._confirmed: TriggerLogPosition | None = None
        self._recorded: TriggerLogPosition | None = None
        self._lock = threading.Lock()
        self._next_watch = 0.0
        self._next_purge = 0.0
        self._warned = False
        self._floor: int | None = None
        self._next_count = 0.0
        self._catalog = CatalogWatch(endpoint, consumer, tables, databases, self._say)
        self._schema = SchemaTracker(self._table_version, self._key_of, ddl=ddl)
        self._keys: dict[TableRef, tuple[str, ...]] = {}
        # The reader's queries answer in milliseconds: io_timeout (a minute by
        # default) of silence is a dead link (a half-open connection would otherwise
        # block the reader forever).
        self._conn: Connection[Any] = connect(
            endpoint, read_timeout=endpoint.io_timeout, write_timeout=endpoint.io_timeout
        )
        try:
            with self._conn.cursor() as cur:
                self._catalog.load(cur)
                self._schema.load(cur, start.scn, start.tx, set(self._catalog.captured))
        except pymysql.err.MySQLError as exc:
            self._conn.close()
            raise translate(exc, endpoint) from None

    def __enter__(self) -> TriggerLogStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def confirm(self, position: Position) -> None:
        assert isinstance(position, TriggerLogPosition)
        with self._lock:
            if self._confirmed is None or self._confirmed < position:
                self._confirmed = position

    def read(self, stop: threading.Event) -> Iterator[Transaction | Heartbeat | Fragment]:
        last_beat = time.monotonic()
        while not stop.is_set():
            moved = False
            try:
                self._maintain()
                for item in self._read_available():
                    moved = True
                    if not isinstance(item, Fragment):
                        assert isinstance(item.position, TriggerLogPosition)
                        self.position = item.position
                    yield item
                    if stop.is_set():
                        return
            except pymysql.err.MySQLError as exc:
                error = translate(exc, self.endpoint)
                error.position = str(self.position)
                raise error from None
            now = time.monotonic()
            if moved:
                last_beat = now
                continue
            if now - last_beat >= self._heartbeat:
                last_beat = now
                yield Heartbeat(self.position, time.time())
            stop.wait(self._poll)

    # -- reading --------------------------------------------------------------

    def _read_available(self) -> Iterator[Transaction | Heartbeat | Fragment]:
        """Every transaction committed after ``position`` and visible now.

        Pages of ``page_rows`` keys continue after the last row read; a transaction
        is complete when a later transaction's row follows it or the log ends (all
        its rows became visible at once, at its commit). Rows not yet consumed are
        never purged (every consumer's floor is at or below its position), so the
        images are still there when fetched by key."""
        scn, tx, seq = self.position.scn, self.position.tx, _MAX_SEQ
        txn: _Assembly | None = None
        with self._conn.cursor() as cur:
            while True:
                cur.execute(_KEYS_SQL, (scn, scn, tx, tx, seq, self._page))
                keys = cur.fetchall()
                for start in range(0, len(keys), _IMAGE_BATCH):
                    part = keys[start : start + _IMAGE_BATCH]
                    images = self._images(cur, [int(k[2]) for k in part])
                    for k in part:
                        row_key = (int(k[0]), int(k[1]))
                        if txn is not None and row_key != txn.key:
                            yield self._transaction(cur, txn)
                            txn = None
                        txn = txn or _Assembly(row_key)
                        self._add(txn, images[int(k[2])])
                        if self._fragment_rows and txn.fragmentable(self._fragment_rows):
                            yield self._fragment(cur, txn)
                if len(keys) < self._page:
                    break
                scn, tx, seq = int(keys[-1][0]), int(keys[-1][1]), int(keys[-1][2])
            if txn is not None and txn.rows:
                yield self._transaction(cur, txn)

    def _add(self, txn: _Assembly, row: tuple[Any, ...]) -> None:
        txn.rows.append(row)
        _, db, tbl, ver, op, _, _ = row
        # Schema markers and rows of triggers newer than the schema read so far
        # make the reader yield DDL: such a transaction is held whole.
        if str(op) == "S" or int(ver) > self._schema.at((str(db), str(tbl))):
            txn.whole = True

    def _fragment(self, cur: Any, txn: _Assembly) -> Fragment:
        # The last row stays for the next part: a row written twice by two trigger
        # versions during a refresh is two consecutive log rows (``_same_write``).
        rows, txn.rows = txn.rows[:-1], txn.rows[-1:]
        txn.fragments += 1
        changes = self._decoded(cur, txn.key, rows)
        picked = tuple(c for c in changes if isinstance(c, RowChange))
        assert len(picked) == len(changes), "a fragment of a transaction without DDL"
        return Fragment(str(txn.key[1]), self.position, picked)

    def _images(self, cur: Any, seqs: list[int]) -> dict[int, tuple[Any, ...]]:
        cur.execute(_IMAGES_SQL + "(" + ", ".join(["%s"] * len(seqs)) + ")", seqs)
        return {int(r[0]): r for r in cur.fetchall()}

    def _transaction(self, cur: Any, txn: _Assembly) -> Transaction | Heartbeat:
        key = txn.key
        position = TriggerLogPosition(scn=key[0], tx=key[1])
        commit_ts = key[0] / 1e9
        changes = self._decoded(cur, key, txn.rows)
        if not changes and not txn.fragments:
            return Heartbeat(position, commit_ts)
        return Transaction(
            str(key[1]), 0, commit_ts, position, tuple(changes), fragments=txn.fragments
        )

    def _decoded(self, cur: Any, key: tuple[int, int], rows: list[tuple[Any, ...]]) -> list[Change]:
        """The changes that log rows *rows* of transaction *key* stand for."""
        entries: list[_Entry] = []
        for _, db, tbl, ver, op, before, after in rows:
            ref = (str(db), str(tbl))
            if self._filter is not None and not self._filter(*ref):
                continue
            if str(op) == "S":
                marker = schema_watch.read_marker(int(ver), str(before))
                self._keys.pop(ref, None)
                for c in self._schema.marker(cur, ref, marker, key[0]):
                    entries.append(_Entry(ref, marker.ver, c, logged=False))
                continue
            entry = self._entry(cur, ref, int(ver), str(op), before, after)
            if entry is None:
                continue
            if entries and _same_write(entries[-1], entry):
                if entry.ver == self._schema.at(ref):
                    entries[-1] = entry  # keep the copy with the target's columns
                continue
            entries.append(entry)
        return self._changes(cur, entries, key[0])

    def _entry(
        self, cur: Any, ref: TableRef, ver: int, op: str, before: Any, after: Any
    ) -> _Entry | None:
        version = self._version(cur, ref, ver)
        try:
            images = _decode(version, before), _decode(version, after)
        except (ValueError, TypeError, ArithmeticError):
            latest = triggers.latest_version(cur, *ref)
            if latest is None or latest[0] <= ver:
                raise
            # Written by old triggers after a type change (MODIFY): the READY
            # re-read of its schema change brings the row (schema_watch).
            return None
        change = RowChange(_OPS[op], ref[0], ref[1], version.columns, *images)
        return _Entry(ref, ver, change)

    def _changes(self, cur: Any, entries: list[_Entry], scn: int) -> list[Change]:
        out: list[Change] = []
        for e in entries:
            if not e.logged:
                out.append(e.change)
                continue
            if e.ver > self._schema.at(e.table):
                out.extend(self._schema.catch_up(e.table, e.ver))
            assert isinstance(e.change, RowChange)
            out.extend(self._schema.row(cur, e.change, e.ver, scn))
        return out

    def _table_version(self, ref: TableRef, ver: int) -> TableVersion:
        with self._conn.cursor() as cur:
            return TableVersion(self._version(cur, ref, ver).catalog)

    def _key_of(self, ref: TableRef) -> tuple[str, ...]:
        got = self._keys.get(ref)
        if got is None:
            with open_inspector(self.endpoint) as insp:
                found = [
                    t for t in insp.catalog([ref[0]]).database(ref[0]).tables if t.name == ref[1]
                ]
            got = self._keys[ref] = found[0].primary_key if found else ()
        return got

    def _version(self, cur: Any, ref: TableRef, ver: int) -> _Version:
        got = self._versions.get((*ref, ver))
        if got is None:
            try:
                columns = triggers.version_columns(cur, ref[0], ref[1], ver)
            except KeyError:
                raise FatalError(
                    f"the change log names version {ver} of {ref[0]}.{ref[1]}, which is"
                    f" not in {log.VERSIONS}",
                    endpoint=self.endpoint.display,
                    hint="the oms capture tables were changed by hand; reinstall capture",
                ) from None
            got = _Version(
                tuple(c.name for c in columns), tuple(decoder(c) for c in columns), columns
            )
            self._versions[(*ref, ver)] = got
        return got

    # -- upkeep: DDL watch, new tables, progress, purge ------------------------

    def _maintain(self) -> None:
        now = time.monotonic()
        if now >= self._next_watch:
            self._next_watch = now + self._watch_every
            with self._conn.cursor() as cur:
                self._catalog.watch(cur)
        if now >= self._next_purge:
            self._next_purge = now + self._purge_every
            with self._conn.cursor() as cur:
                self._purge(cur)

    def _purge(self, cur: Any) -> None:
        with self._lock:
            confirmed = self._confirmed
        if confirmed is not None and confirmed != self._recorded:
            consumers.confirm(cur, self.consumer, confirmed)
            self._recorded = confirmed
        self._floor = log.purge(cur, self._floor)
        now = time.monotonic()
        if now < self._next_count:
            return
        self._next_count = now + _COUNT_SECONDS
        cur.execute(f"SELECT COUNT(*) FROM {log.CHANGELOG}")
        count = int(cur.fetchone()[0])
        if count > self.warn_rows and not self._warned:
            cur.execute(f"SELECT consumer, scn FROM {log.CONSUMERS} ORDER BY scn LIMIT 1")
            slowest = cur.fetchone()
            behind = max(0.0, time.time() - int(slowest[1]) / 1e9) if slowest else 0.0
            self._say(
                f"warning: the OceanBase change log holds {count} rows (over {self.warn_rows});"
                f" the slowest consumer, task {slowest[0] if slowest else '?'}, is {behind:.0f}s"
                " behind: run it, or remove its capture with `duosync capture remove`"
            )
            self._warned = True
        elif count <= self.warn_rows:
            self._warned = False


def _decode(version: _Version, image: Any) -> tuple[Any, ...] | None:
    if image is None:
        return None
    values = json.loads(image)
    return tuple(dec(v) for dec, v in zip(version.decoders, values, strict=True))


def _same_write(prev: _Entry, entry: _Entry) -> bool:
    """Whether *entry* is the second record of one row write, made by the triggers
    of a newer version while a refresh had both versions installed: consecutive,
    same table and operation, a newer version, and equal on the shared columns."""
    a, b = prev.change, entry.change
    if not isinstance(a, RowChange) or not isinstance(b, RowChange) or not prev.logged:
        return False
    if prev.table != entry.table or a.op != b.op or entry.ver <= prev.ver:
        return False
    shared = [c for c in a.columns if c in b.columns]
    for image_a, image_b in ((a.before, b.before), (a.after, b.after)):
        if (image_a is None) != (image_b is None):
            return False
        if image_a is not None and image_b is not None:
            va = dict(zip(a.columns, image_a, strict=True))
            vb = dict(zip(b.columns, image_b, strict=True))
            if any(va[c] != vb[c] for c in shared):
                return False
    return True
