"""``BinlogStream``: whole committed transactions from a MySQL/MariaDB binlog."""

from __future__ import annotations

import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

import pymysql

from duosync.config import Endpoint
from duosync.core.events import Fragment, Heartbeat, Op, RowChange, SchemaChange, Transaction
from duosync.core.positions import BinlogPosition, Position
from duosync.endpoints.mysql.binlog import events as ev
from duosync.endpoints.mysql.binlog.protocol import ReplicationConnection
from duosync.endpoints.mysql.binlog.rows import (
    RowDecoder,
    RowsOverrun,
    build_decoder,
    query_codecs,
)
from duosync.endpoints.mysql.connection import connect
from duosync.errors import ConfigError, DuosyncError, FatalError, RetriableError

TableFilter = Callable[[str, str], bool]

_HEADER = ev.HEADER.unpack_from
_BODY = ev.BODY_START
_CRC_LEN = ev.CHECKSUM_LEN
#: CRC-32 (zlib's) of any bytes followed by their own CRC-32, little-endian
_CRC_RESIDUE = 0x2144DF1C
_MAX_CACHED_TABLE_MAPS = 4096
_MARIA_GTID_TEXT = re.compile(r"^\s*(\d+-\d+-\d+\s*(,\s*\d+-\d+-\d+\s*)*)?$")
#: decoding failures that mean "this event is not what its table map says"
_DECODE_ERRORS = (ev.EventError, RowsOverrun, IndexError, struct.error, UnicodeDecodeError)


@dataclass(slots=True)
class _Table:
    """What we know about one table map (cached by the map's bytes)."""

    database: str
    table: str
    map: ev.TableMap | None  # None: the filter excludes the table, rows are skipped
    decoders: dict[bytes, RowDecoder] = field(default_factory=dict)


@dataclass(slots=True)
class _Group:
    """The transaction being read: from its GTID (or BEGIN) to its commit event."""

    gtid: str | None = None
    origin: int | None = None
    #: rows may follow (MariaDB: a non-standalone GTID; MySQL and old MariaDB: BEGIN)
    open: bool = False
    ddl: bool = False  # MariaDB FL_DDL
    maria: tuple[int, int, int] | None = None  # (domain, server id, seq)
    mysql: tuple[str, int] | None = None  # (uuid, gno), MySQL only
    changes: list[RowChange | SchemaChange] = field(default_factory=list)
    tables: dict[int, _Table] = field(default_factory=dict)
    #: fragments of its rows yielded so far (``fragment_rows``)
    fragments: int = 0
    #: it holds a SchemaChange (CREATE ... SELECT): held whole, never fragmented
    has_ddl: bool = False


class BinlogStream:
    """Change stream of one MySQL/MariaDB server, read from its binlog.

    Contract:

    - ``read`` yields whole committed transactions strictly after ``start``, in
      commit order. ``Transaction.position`` is the file and *end* offset of the
      transaction's commit event (XID, the COMMIT query, or the DDL query itself),
      with the GTID set after it; a stream started at that position yields the next
      transaction only. Positions are always given as file + offset: the GTID is
      informational (MariaDB: kept per domain, starting from ``start.gtid`` or, when
      that is missing, from the server's ``BINLOG_GTID_POS`` of ``start``).
    - ``id`` is the GTID (``"1-1-42"``, MySQL ``"uuid:42"``) or ``"file:offset"``
      when there is none; ``origin`` the server id in the event header (the server
      that first wrote the transaction); ``commit_ts`` the commit event's timestamp.
    - Rows of tables for which ``tables(db, table)`` is False are skipped without
      being decoded; a transaction left empty is yielded as a ``Heartbeat`` at its
      position, so positions still advance. DDL and other statements the server
      logs as text (GRANT, ANALYZE, ...) are a ``Transaction`` with one
      ``SchemaChange`` each, whatever the filter: the consumer decides on them.
    - When idle, the server's heartbeat (every ``heartbeat_seconds``) becomes a
      ``Heartbeat`` at the last transaction boundary. ``read`` returns within about
      ``heartbeat_seconds`` + 1 s once ``stop`` is set (never mid-transaction: an
      unfinished transaction is dropped and read again next time).
    - Calling ``read`` again (or after an error) resumes after the last item
      yielded. One reader thread; ``server_id`` must be unique among the replicas of
      the server (a second dump with the same id makes the server drop the first).

    - With *fragment_rows*, a transaction's rows are yielded as ``Fragment``s of
      that many rows as they are decoded, and the ``Transaction`` at its commit
      holds the rest (``Transaction.fragments`` says how many came before), so
      memory is bounded by the fragment size, not by the transaction. Without it,
      a transaction is held whole until its commit event.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        start: BinlogPosition,
        *,
        server_id: int,
        heartbeat_seconds: float = 1.0,
        tables: TableFilter | None = None,
        fragment_rows: int | None = None,
    ) -> None:
        if start.gtid and not _MARIA_GTID_TEXT.match(start.gtid) and ":" not in start.gtid:
            raise ConfigError(f"start position {start}: unreadable GTID set {start.gtid!r}")
        self.endpoint = endpoint
        #: where the next ``read`` starts: after the last item yielded
        self.position = start
        self._tables_filter = tables
        self._fragment_rows = fragment_rows or 0
        self._conn = ReplicationConnection(
            endpoint, server_id=server_id, heartbeat_seconds=heartbeat_seconds
        )
        self._cache: dict[bytes, _Table] = {}
        self._maria: dict[int, tuple[int, int]] | None = None  # domain -> (server, seq)

    def __enter__(self) -> BinlogStream:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def confirm(self, position: Position) -> None:
        """Nothing to do: the server keeps (and expires) its binlog by itself."""

    def close(self) -> None:
        self._conn.close()

    # -- reading -------------------------------------------------------------------------

    def read(self, stop: threading.Event) -> Iterator[Transaction | Heartbeat | Fragment]:
        """Yield transactions and heartbeats until *stop* is set (see the class)."""
        conn = self._conn
        conn.close()
        conn.open(self.position)
        try:
            if self._maria is None and conn.mariadb:
                self._maria = _parse_maria_gtid(self.position.gtid or self._gtid_pos())
            yield from self._loop(conn, stop)
        finally:
            conn.close()

    # One flat dispatch, most frequent events first: it keeps the per-event cost low.
    def _loop(
        self, conn: ReplicationConnection, stop: threading.Event
    ) -> Iterator[Transaction | Heartbeat | Fragment]:
        file, offset = self.position.file, self.position.offset
        fde: ev.FormatDescription | None = None
        crc = conn.checksum
        group: _Group | None = None
        codec_of = query_codecs(conn.charsets)
        rows_events, table_map, xid = ev.ROWS_EVENTS, ev.TABLE_MAP, ev.XID
        fragment_rows = self._fragment_rows
        while not stop.is_set():
            buf = conn.read_packet(file, offset)
            if buf is None:
                # The dump is blocking: the server only ends it when it shuts down
                # (or kills our thread). That is a cut, not the end of the changes.
                raise RetriableError(
                    "the source ended the binlog dump (server shutting down, or our"
                    " connection killed)",
                    endpoint=self.endpoint.display,
                    position=f"{file}:{offset}",
                )
            ts, etype, server_id, _, log_pos, flags = _HEADER(buf, 1)
            end = len(buf)
            try:
                if etype == ev.FORMAT_DESCRIPTION:
                    fde = ev.parse_format_description(buf, end)
                    crc = fde.checksum
                if crc:
                    end -= _CRC_LEN
                    # One pass over event and stored checksum: equal exactly when the
                    # CRC-32 of both is the polynomial's residue (no slicing).
                    if zlib.crc32(memoryview(buf)[1:]) != _CRC_RESIDUE and etype not in (
                        ev.HEARTBEAT,
                        ev.HEARTBEAT_V2,
                    ):
                        raise ev.EventError("checksum mismatch (corrupt binlog event)")
                if etype in rows_events:
                    if group is None or not group.open or fde is None:
                        raise ev.EventError("rows event outside a transaction")
                    self._rows(buf, end, etype, fde, group)
                    if fragment_rows and len(group.changes) >= fragment_rows and not group.has_ddl:
                        yield _fragment(group, self.position, file, offset)
                    continue
                if etype == table_map:
                    if group is None or fde is None:
                        raise ev.EventError("table map outside a transaction")
                    self._table_map(buf, end, fde, group, conn)
                    continue
                if log_pos and not flags & ev.LOG_EVENT_ARTIFICIAL_F:
                    offset = log_pos
                if etype == xid:
                    if group is None or not group.open:
                        raise ev.EventError("XID event outside a transaction")
                    yield self._commit(group, file, offset, ts, server_id)
                    group = None
                elif etype == ev.MARIADB_GTID:
                    if group is not None and group.open:
                        raise ev.EventError("GTID event inside a transaction")
                    g = ev.parse_mariadb_gtid(buf)
                    group = _Group(
                        gtid=f"{g.domain}-{server_id}-{g.seq}",
                        origin=server_id,
                        open=not g.standalone,
                        ddl=g.ddl,
                        maria=(g.domain, server_id, g.seq),
                    )
                elif etype == ev.QUERY:
                    if fde is None:
                        raise ev.EventError("query event before the format description")
                    q = ev.parse_query(buf, end, fde.post_header_len(ev.QUERY), codec_of)
                    group = group or _Group(origin=server_id)
                    if self._query(q, group):
                        yield self._commit(group, file, offset, ts, server_id)
                        group = None
                elif etype == ev.ROTATE:
                    rotate = ev.parse_rotate(buf, end)
                    file, offset = rotate.next_file, rotate.position
                elif etype in (ev.HEARTBEAT, ev.HEARTBEAT_V2):
                    if group is None:
                        yield self._heartbeat(file, offset, time.time())
                elif etype in (ev.MYSQL_GTID, ev.MYSQL_ANONYMOUS_GTID):
                    # MySQL only (not tested here): the group starts; BEGIN or a DDL
                    # query follows.
                    m = ev.parse_mysql_gtid(buf, etype == ev.MYSQL_ANONYMOUS_GTID)
                    group = _Group(
                        gtid=f"{m.sid}:{m.gno}" if m.sid else None,
                        origin=server_id,
                        mysql=(m.sid, m.gno) if m.sid else None,
                    )
                elif etype == ev.GTID_LIST:
                    self._gtid_list(ev.parse_gtid_list(buf))
                elif etype in ev.UNSUPPORTED:
                    raise ev.EventError(f"unsupported binlog event: {ev.UNSUPPORTED[etype]}")
                elif (
                    etype not in ev.HARMLESS
                    and etype != ev.FORMAT_DESCRIPTION
                    and not flags & ev.LOG_EVENT_IGNORABLE_F
                ):
                    raise ev.EventError(f"unknown binlog event type {etype}")
            except (*_DECODE_ERRORS, FatalError) as exc:
                raise self._fatal(exc, file, log_pos or offset, etype) from None

    # -- event handlers ------------------------------------------------------------------

    def _table_map(
        self,
        buf: bytes,
        end: int,
        fde: ev.FormatDescription,
        group: _Group,
        conn: ReplicationConnection,
    ) -> None:
        # The same table map is logged in every transaction that touches the table:
        # its bytes (table id and metadata included) key a cache of parsed maps
        # and generated decoders, so a map is parsed and compiled once.
        key = bytes(buf[_BODY:end])
        entry = self._cache.get(key)
        if entry is None:
            pos = _BODY + fde.post_header_len(ev.TABLE_MAP)
            database, table, _ = ev.parse_table_names(buf, pos)
            wanted = self._tables_filter is None or self._tables_filter(database, table)
            parsed = ev.parse_table_map(buf, end, fde, conn.mariadb) if wanted else None
            entry = _Table(database, table, parsed)
            if len(self._cache) >= _MAX_CACHED_TABLE_MAPS:
                self._cache.clear()  # table ids grow after DDL; keep this bounded
            self._cache[key] = entry
        group.tables[ev.table_id_at(buf, _BODY, fde.table_id_size)] = entry

    def _rows(
        self, buf: bytes, end: int, etype: int, fde: ev.FormatDescription, group: _Group
    ) -> None:
        entry = group.tables.get(ev.table_id_at(buf, _BODY, fde.table_id_size))
        if entry is None:
            raise ev.EventError("rows event for a table id with no table map")
        if entry.map is None:
            return  # filtered out: never decoded
        update = etype in ev.UPDATE_ROWS
        header = ev.parse_rows_header(buf, etype, fde, update)
        if header.width != len(entry.map.columns):
            raise ev.EventError(
                f"rows event has {header.width} columns, its table map {len(entry.map.columns)}"
            )
        if update and header.present2 != header.present:
            raise FatalError(
                "update row images with different columns (the source must run with "
                "binlog_row_image=FULL)",
                table=f"{entry.database}.{entry.table}",
            )
        decoder = entry.decoders.get(header.present)
        if decoder is None:
            decoder = entry.decoders[header.present] = build_decoder(
                entry.map, header.present, self._conn.charsets
            )
        images = decoder.decode(buf, header.rows_start, end)
        db, table, cols = entry.database, entry.table, decoder.columns
        append = group.changes.append
        if update:
            after = iter(images[1::2])
            for before in images[0::2]:
                append(RowChange(Op.UPDATE, db, table, cols, before, next(after)))
        elif etype in ev.WRITE_ROWS:
            for row in images:
                append(RowChange(Op.INSERT, db, table, cols, None, row))
        else:
            for row in images:
                append(RowChange(Op.DELETE, db, table, cols, row, None))

    def _query(self, q: ev.Query, group: _Group) -> bool:
        """Apply one QUERY event to *group*; True when it commits the group."""
        word = q.sql.lstrip()[:10].upper()
        if word.startswith("BEGIN"):
            group.open = True
            return False
        if word.startswith("COMMIT"):
            if not group.open:
                raise ev.EventError("COMMIT outside a transaction")
            return True
        if word.startswith("SAVEPOINT") and group.open:
            return False  # rows rolled back to a savepoint are not in the binlog
        if word.startswith("ROLLBACK"):
            raise ev.EventError(
                f"{q.sql[:40]!r} in the binlog: a transaction that changed non-transactional "
                "tables was rolled back; this reader cannot replay it"
            )
        if group.open and group.maria is not None and not group.ddl:
            raise ev.EventError(
                f"statement-based event {q.sql[:60]!r}: the source must run with binlog_format=ROW"
            )
        group.changes.append(SchemaChange(q.database, q.sql))
        group.has_ddl = True
        # A DDL statement is its own transaction, unless it opens one (MariaDB
        # CREATE ... SELECT: the CREATE, then rows, then XID).
        return not group.open

    def _commit(
        self, group: _Group, file: str, offset: int, ts: int, server_id: int
    ) -> Transaction | Heartbeat:
        if group.maria is not None and self._maria is not None:
            domain, server, seq = group.maria
            self._maria[domain] = (server, seq)
        elif group.mysql is not None:
            self.position = self.position.model_copy(
                update={"gtid": _mysql_gtid_add(self.position.gtid, *group.mysql)}
            )
        gtid = _maria_text(self._maria) if self._maria is not None else self.position.gtid
        # model_construct: the fields are ours and valid; validation would cost
        # more than decoding a small transaction.
        position = BinlogPosition.model_construct(file=file, offset=offset, gtid=gtid)
        self.position = position
        if not group.changes and not group.fragments:
            return Heartbeat(position, float(ts))
        return Transaction(
            id=group.gtid or f"{file}:{offset}",
            origin=group.origin if group.origin is not None else server_id,
            commit_ts=float(ts),
            position=position,
            changes=tuple(group.changes),
            fragments=group.fragments,
        )

    def _heartbeat(self, file: str, offset: int, ts: float) -> Heartbeat:
        gtid = _maria_text(self._maria) if self._maria is not None else self.position.gtid
        self.position = BinlogPosition.model_construct(file=file, offset=offset, gtid=gtid)
        return Heartbeat(self.position, ts)

    def _gtid_list(self, entries: tuple[ev.GtidListEntry, ...]) -> None:
        # The binlog state at the start of a file: the newest GTID of each domain.
        if self._maria is None:
            return
        for e in entries:
            current = self._maria.get(e.domain)
            if current is None or current[1] < e.seq:
                self._maria[e.domain] = (e.server_id, e.seq)

    def _gtid_pos(self) -> str | None:
        """MariaDB's GTID position at our start (file + offset), from the server."""
        conn = connect(self.endpoint)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT BINLOG_GTID_POS(%s, %s)", (self.position.file, self.position.offset)
                )
                row = cur.fetchone()
        except pymysql.err.MySQLError:
            return None  # informational only: start without it
        finally:
            conn.close()
        value = row[0] if row else None
        return value.decode() if isinstance(value, bytes) else value

    def _fatal(self, exc: BaseException, file: str, offset: int, etype: int) -> DuosyncError:
        if isinstance(exc, DuosyncError):
            exc.position = exc.position or f"{file}:{offset}"
            exc.endpoint = exc.endpoint or self.endpoint.display
            return exc
        return FatalError(
            f"cannot decode binlog event type {etype}: {exc}",
            endpoint=self.endpoint.display,
            position=f"{file}:{offset}",
        )


def _fragment(group: _Group, follows: Position, file: str, offset: int) -> Fragment:
    """The rows decoded so far of *group*, handed on (and dropped here); *follows*
    is the position of the transaction before it."""
    rows = tuple(c for c in group.changes if isinstance(c, RowChange))
    group.changes = []
    group.fragments += 1
    # the transaction's id: its GTID, or where it started (the commit is not known yet)
    return Fragment(group.gtid or f"{file}:{offset}", follows, rows)


def _parse_maria_gtid(text: str | None) -> dict[int, tuple[int, int]]:
    state: dict[int, tuple[int, int]] = {}
    for part in (text or "").split(","):
        if part.strip():
            domain, server, seq = (int(x) for x in part.strip().split("-"))
            state[domain] = (server, seq)
    return state


def _maria_text(state: dict[int, tuple[int, int]]) -> str | None:
    if len(state) == 1:  # one domain, the usual case: this runs at every commit
        for d, (s, n) in state.items():
            return f"{d}-{s}-{n}"
    return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(state.items())) or None


def _mysql_gtid_add(text: str | None, sid: str, gno: int) -> str:
    """MySQL only: add ``sid:gno`` to a GTID set text (``uuid:1-5:7,uuid2:1-3``)."""
    sets: dict[str, list[list[int]]] = {}
    for part in (text or "").replace("\n", "").split(","):
        if not part.strip():
            continue
        uuid, *texts = part.strip().split(":")
        sets[uuid.lower()] = [[int(x) for x in (r.split("-") * 2)[:2]] for r in texts]
    intervals = sets.setdefault(sid.lower(), [])
    intervals.append([gno, gno])
    intervals.sort()
    merged: list[list[int]] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    sets[sid.lower()] = merged
    return ",".join(
        u + "".join(f":{lo}" if lo == hi else f":{lo}-{hi}" for lo, hi in r)
        for u, r in sorted(sets.items())
    )
