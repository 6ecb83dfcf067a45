"""Binlog event framing and the parsing of the events a change stream needs.

A binlog dump packet is ``0x00`` followed by one event: a 19-byte header
(timestamp, type, server id, event size, end position, flags), a post-header whose
length the FORMAT_DESCRIPTION event announces per type, a body, and, when the
binlog is checksummed, a 4-byte CRC32 at the end. Functions here take the whole
packet ``buf`` plus the offset where the event's data ends (CRC excluded) and work
with offsets into it: row events are large and slicing them would copy.

Only what a change stream needs is parsed; everything else is named so the stream
can decide between "skip" and "stop: this would lose data".
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

# -- event types ---------------------------------------------------------------------

QUERY = 2
STOP = 3
ROTATE = 4
FORMAT_DESCRIPTION = 15
XID = 16
TABLE_MAP = 19
WRITE_ROWS_V1, UPDATE_ROWS_V1, DELETE_ROWS_V1 = 23, 24, 25
HEARTBEAT = 27
WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2 = 30, 31, 32
MYSQL_GTID, MYSQL_ANONYMOUS_GTID = 33, 34
HEARTBEAT_V2 = 41  # MySQL 8.0.26+
ANNOTATE_ROWS = 160  # MariaDB
BINLOG_CHECKPOINT = 161
MARIADB_GTID = 162
GTID_LIST = 163

WRITE_ROWS = frozenset({WRITE_ROWS_V1, WRITE_ROWS_V2})
UPDATE_ROWS = frozenset({UPDATE_ROWS_V1, UPDATE_ROWS_V2})
DELETE_ROWS = frozenset({DELETE_ROWS_V1, DELETE_ROWS_V2})
ROWS_V2 = frozenset({WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2})
ROWS_EVENTS = WRITE_ROWS | UPDATE_ROWS | DELETE_ROWS

#: Events that carry nothing we apply, or only context for statement-based
#: events (which stop the stream anyway when they arrive).
HARMLESS = frozenset(
    {
        1,  # START_V3
        3,  # STOP
        5,  # INTVAR (context of a statement-based query)
        13,  # RAND
        14,  # USER_VAR
        28,  # IGNORABLE
        29,  # ROWS_QUERY (MySQL: the statement text of row events)
        35,  # PREVIOUS_GTIDS (MySQL)
        36,  # TRANSACTION_CONTEXT (group replication)
        37,  # VIEW_CHANGE (group replication)
        ANNOTATE_ROWS,
        BINLOG_CHECKPOINT,
        GTID_LIST,
        164,  # START_ENCRYPTION: the server decrypts before sending
    }
)
#: Events that change data in a way this reader does not decode: skipping one would
#: silently lose changes, so the stream stops on them.
UNSUPPORTED = {
    **dict.fromkeys((6, 8, 9, 10, 11, 12, 17, 18), "LOAD DATA logged as a statement"),
    7: "SLAVE",
    **dict.fromkeys((20, 21, 22), "rows event v0"),
    26: "INCIDENT (the source lost events)",
    38: "XA_PREPARE (XA transactions)",
    39: "PARTIAL_UPDATE_ROWS (binlog_row_value_options=PARTIAL_JSON)",
    40: "TRANSACTION_PAYLOAD (binlog_transaction_compression)",
    **dict.fromkeys(range(165, 172), "compressed event (log_bin_compress)"),
}
#: Header flag: a reader that does not know the event may skip it.
LOG_EVENT_IGNORABLE_F = 0x80
#: Header flag on events the server made up for this dump (fake rotate, re-sent FDE).
LOG_EVENT_ARTIFICIAL_F = 0x20

# -- framing ---------------------------------------------------------------------------

#: timestamp, type, server id, event size, end position, flags (after the 0x00 byte)
HEADER = struct.Struct("<IBIIIH")
BODY_START = 1 + HEADER.size  # post-header starts here in a packet
CHECKSUM_LEN = 4
_CRC_OFF, _CRC32 = 0, 1

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class EventError(ValueError):
    """A malformed or unsupported event; the stream turns it into a FatalError."""


def read_packed_int(buf: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at *pos*: (value, position after it)."""
    first = buf[pos]
    if first < 251:
        return first, pos + 1
    if first == 252:
        return _U16.unpack_from(buf, pos + 1)[0], pos + 3
    if first == 253:
        return int.from_bytes(buf[pos + 1 : pos + 4], "little"), pos + 4
    if first == 254:
        return _U64.unpack_from(buf, pos + 1)[0], pos + 9
    raise EventError(f"bad length-encoded integer prefix {first}")


def table_id_at(buf: bytes, pos: int, size: int) -> int:
    return int.from_bytes(buf[pos : pos + size], "little")


# -- FORMAT_DESCRIPTION, ROTATE, GTIDs ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormatDescription:
    server_version: str
    #: post-header length of event type t at index t - 1
    post_header_lengths: bytes
    checksum: bool

    def post_header_len(self, event_type: int) -> int:
        lengths = self.post_header_lengths
        return lengths[event_type - 1] if 0 < event_type <= len(lengths) else 0

    @property
    def table_id_size(self) -> int:
        # Servers since MySQL 5.1.4 use 6-byte table ids (post-header 8); older ones 4.
        return 4 if self.post_header_len(TABLE_MAP) == 6 else 6


def parse_format_description(buf: bytes, end: int) -> FormatDescription:
    """*end* is the end of the whole event (its checksum included): the checksum
    algorithm byte sits before the 4 checksum bytes, whether or not it is on."""
    pos = BODY_START
    version = buf[pos + 2 : pos + 52].split(b"\0", 1)[0].decode("ascii", "replace")
    lengths_start = pos + 2 + 50 + 4 + 1
    numbers = [int(x) for x in _leading_digits(version).split(".") if x]
    if tuple(numbers[:3]) >= (5, 6, 1):  # checksum-aware server: alg byte + CRC at the end
        alg = buf[end - CHECKSUM_LEN - 1]
        return FormatDescription(
            version, bytes(buf[lengths_start : end - CHECKSUM_LEN - 1]), alg == _CRC32
        )
    return FormatDescription(version, bytes(buf[lengths_start:end]), False)


def _leading_digits(version: str) -> str:
    out = []
    for ch in version:
        if not (ch.isdigit() or ch == "."):
            break
        out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Rotate:
    next_file: str
    position: int


def parse_rotate(buf: bytes, end: int) -> Rotate:
    (position,) = _U64.unpack_from(buf, BODY_START)
    return Rotate(buf[BODY_START + 8 : end].decode(), position)


@dataclass(frozen=True, slots=True)
class MariaGtid:
    domain: int
    seq: int
    #: FL_STANDALONE: no BEGIN/COMMIT around it (DDL or a non-transactional statement)
    standalone: bool
    #: FL_DDL: the group is DDL (also set on CREATE ... SELECT, which has rows too)
    ddl: bool


_MARIA_GTID = struct.Struct("<QIB")
_FL_STANDALONE, _FL_DDL = 0x01, 0x20


def parse_mariadb_gtid(buf: bytes) -> MariaGtid:
    seq, domain, flags = _MARIA_GTID.unpack_from(buf, BODY_START)
    return MariaGtid(domain, seq, bool(flags & _FL_STANDALONE), bool(flags & _FL_DDL))


@dataclass(frozen=True, slots=True)
class GtidListEntry:
    domain: int
    server_id: int
    seq: int


_GTID_LIST_ENTRY = struct.Struct("<IIQ")


def parse_gtid_list(buf: bytes) -> tuple[GtidListEntry, ...]:
    """MariaDB's GTID binlog state at the start of a binlog file."""
    count = _U32.unpack_from(buf, BODY_START)[0] & 0x0FFFFFFF  # top 4 bits are flags
    pos = BODY_START + 4
    out = []
    for _ in range(count):
        domain, server_id, seq = _GTID_LIST_ENTRY.unpack_from(buf, pos)
        out.append(GtidListEntry(domain, server_id, seq))
        pos += _GTID_LIST_ENTRY.size
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MysqlGtid:
    sid: str  # source uuid, "" for an anonymous GTID
    gno: int


def parse_mysql_gtid(buf: bytes, anonymous: bool) -> MysqlGtid:
    pos = BODY_START + 1  # commit flags byte
    gno = _U64.unpack_from(buf, pos + 16)[0]
    return MysqlGtid("" if anonymous else str(uuid.UUID(bytes=bytes(buf[pos : pos + 16]))), gno)


# -- QUERY ----------------------------------------------------------------------------------

_QUERY_POST = struct.Struct("<IIBHH")  # thread id, exec time, db length, error code, vars length
_Q_CHARSET_CODE = 4
# Sizes of the fixed-size status variables that may come before Q_CHARSET_CODE.
_STATUS_FIXED = {0: 4, 1: 8, 3: 4}


@dataclass(frozen=True, slots=True)
class Query:
    database: str
    sql: str


def parse_query(buf: bytes, end: int, post_header_len: int, codec_of: dict[int, str]) -> Query:
    """The statement text, decoded in the session's ``character_set_client``."""
    _, _, db_len, _, vars_len = _QUERY_POST.unpack_from(buf, BODY_START)
    vars_start = BODY_START + post_header_len
    db_start = vars_start + vars_len
    codec = _query_codec(buf, vars_start, db_start, codec_of)
    database = buf[db_start : db_start + db_len].decode("utf-8", "replace")
    sql = buf[db_start + db_len + 1 : end].decode(codec, "replace")
    return Query(database, sql)


def _query_codec(buf: bytes, pos: int, end: int, codec_of: dict[int, str]) -> str:
    # Status variables are (code, value) with a per-code size; Q_CHARSET_CODE comes
    # early (codes are written in increasing order), so stop at anything else.
    while pos < end:
        code = buf[pos]
        if code == _Q_CHARSET_CODE:
            return codec_of.get(_U16.unpack_from(buf, pos + 1)[0], "utf-8")
        if code == 2:  # Q_CATALOG_CODE (old): length byte, text, NUL
            pos += 1 + 1 + buf[pos + 1] + 1
        elif code in _STATUS_FIXED:
            pos += 1 + _STATUS_FIXED[code]
        else:
            break
    return "utf-8"


# -- TABLE_MAP --------------------------------------------------------------------------------

# Column types as they appear in a table map.
T_DECIMAL, T_TINY, T_SHORT, T_LONG, T_FLOAT, T_DOUBLE, T_NULL = 0, 1, 2, 3, 4, 5, 6
T_TIMESTAMP, T_LONGLONG, T_INT24, T_DATE, T_TIME, T_DATETIME, T_YEAR = 7, 8, 9, 10, 11, 12, 13
T_NEWDATE, T_VARCHAR, T_BIT, T_TIMESTAMP2, T_DATETIME2, T_TIME2 = 14, 15, 16, 17, 18, 19
T_JSON, T_NEWDECIMAL, T_ENUM, T_SET = 245, 246, 247, 248
T_TINY_BLOB, T_MEDIUM_BLOB, T_LONG_BLOB, T_BLOB = 249, 250, 251, 252
T_VAR_STRING, T_STRING, T_GEOMETRY = 253, 254, 255
T_BLOB_COMPRESSED, T_VARCHAR_COMPRESSED = 140, 141  # MariaDB COMPRESSED columns

_ONE_BYTE_META = frozenset({T_FLOAT, T_DOUBLE, T_BLOB, T_GEOMETRY, T_JSON, T_BLOB_COMPRESSED}) | {
    T_TIMESTAMP2,
    T_DATETIME2,
    T_TIME2,
}
_TWO_BYTE_META = frozenset({T_VARCHAR, T_VAR_STRING, T_BIT, T_NEWDECIMAL, T_STRING}) | {
    T_ENUM,
    T_SET,
    T_VARCHAR_COMPRESSED,
}
# The old types (0-14, DECIMAL to NEWDATE) have no metadata, except FLOAT and DOUBLE.
_NO_META = frozenset(range(15)) - _ONE_BYTE_META
_NUMERIC = frozenset(
    {T_TINY, T_SHORT, T_INT24, T_LONG, T_LONGLONG, T_NEWDECIMAL, T_FLOAT, T_DOUBLE}
)
_CHARACTER = frozenset({T_STRING, T_VAR_STRING, T_VARCHAR, T_BLOB})

# Optional metadata (binlog_row_metadata=MINIMAL/FULL) field types.
_M_SIGNEDNESS, _M_DEFAULT_CHARSET, _M_COLUMN_CHARSET, _M_COLUMN_NAME = 1, 2, 3, 4
_M_SET_STR_VALUE, _M_ENUM_STR_VALUE, _M_GEOMETRY_TYPE = 5, 6, 7
_M_SIMPLE_PRIMARY_KEY, _M_PRIMARY_KEY_WITH_PREFIX = 8, 9
_M_ENUM_AND_SET_DEFAULT_CHARSET, _M_ENUM_AND_SET_COLUMN_CHARSET = 10, 11


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table map, with its optional metadata resolved.

    ``size`` depends on the type: the maximum byte length of CHAR/VARCHAR, the
    length-prefix size of BLOB/TEXT/GEOMETRY/JSON, the storage size of
    ENUM/SET/FLOAT/DOUBLE, the number of bits of BIT, the precision of DECIMAL and
    the fractional-second digits of TIME2/DATETIME2/TIMESTAMP2. ``scale`` is
    DECIMAL's scale.
    """

    name: str
    type: int  # real type: ENUM/SET/STRING resolved from STRING's metadata
    size: int
    scale: int
    nullable: bool
    unsigned: bool
    collation: int | None  # character, ENUM and SET columns; 63 is binary
    labels: tuple[bytes, ...] | None  # ENUM/SET members, in the column's charset
    geometry_type: int | None


@dataclass(frozen=True, slots=True)
class TableMap:
    table_id: int
    database: str
    table: str
    columns: tuple[Column, ...]
    primary_key: tuple[int, ...]


def parse_table_names(buf: bytes, pos: int) -> tuple[str, str, int]:
    """Database and table at the start of a table map body, and where they end."""
    db_len = buf[pos]
    database = buf[pos + 1 : pos + 1 + db_len].decode()
    pos += 1 + db_len + 1
    tbl_len = buf[pos]
    table = buf[pos + 1 : pos + 1 + tbl_len].decode()
    return database, table, pos + 1 + tbl_len + 1


def parse_table_map(buf: bytes, end: int, fde: FormatDescription, mariadb: bool) -> TableMap:
    id_size = fde.table_id_size
    table_id = table_id_at(buf, BODY_START, id_size)
    database, table, pos = parse_table_names(buf, BODY_START + fde.post_header_len(TABLE_MAP))
    count, pos = read_packed_int(buf, pos)
    types = list(buf[pos : pos + count])
    pos += count
    meta_len, pos = read_packed_int(buf, pos)
    meta_end = pos + meta_len
    sizes, scales = [0] * count, [0] * count
    for i, t in enumerate(types):
        if t in _ONE_BYTE_META:
            sizes[i] = buf[pos]
            pos += 1
        elif t in _TWO_BYTE_META:
            b0, b1 = buf[pos], buf[pos + 1]
            pos += 2
            types[i], sizes[i], scales[i] = _two_byte_meta(t, b0, b1)
        elif t not in _NO_META:
            # Its metadata size is unknown, so nothing after it can be read.
            raise EventError(
                f"table map of {database}.{table}: column {i + 1} has unknown type {t}"
            )
    if pos != meta_end:
        raise EventError(f"table map of {database}.{table}: metadata length mismatch")
    null_bits = int.from_bytes(buf[pos : pos + (count + 7) // 8], "little")
    pos += (count + 7) // 8
    opt = _Optional(types, mariadb)
    opt.parse(buf, pos, end)
    if len(opt.names) != count:
        raise EventError(
            f"table map of {database}.{table} carries no column names: "
            "the source must run with binlog_row_metadata=FULL"
        )
    columns = tuple(
        Column(
            name=opt.names[i],
            type=types[i],
            size=sizes[i],
            scale=scales[i],
            nullable=bool(null_bits >> i & 1),
            unsigned=opt.unsigned.get(i, False),
            collation=opt.collations.get(i),
            labels=opt.labels.get(i),
            geometry_type=opt.geometry.get(i),
        )
        for i in range(count)
    )
    return TableMap(table_id, database, table, columns, tuple(opt.primary_key))


def _two_byte_meta(t: int, b0: int, b1: int) -> tuple[int, int, int]:
    """(real type, size, scale) from a two-byte metadata field."""
    if t in (T_VARCHAR, T_VAR_STRING, T_VARCHAR_COMPRESSED):
        return t, b0 | b1 << 8, 0
    if t == T_BIT:
        return t, b1 * 8 + b0, 0  # b0: bits in the partial byte, b1: whole bytes
    if t == T_NEWDECIMAL:
        return t, b0, b1
    # STRING: b0 is the real type (STRING/ENUM/SET). CHAR lengths above 255 bytes
    # borrow two bits of it, stored inverted so that the real type still reads
    # ENUM/SET-free (0xfe has both bits set).
    if b0 & 0x30 != 0x30:
        return b0 | 0x30, b1 | ((b0 & 0x30) ^ 0x30) << 4, 0
    return b0, b1, 0


class _Optional:
    """Optional metadata fields (TLV) of a table map, mapped back to column indexes."""

    def __init__(self, types: list[int], mariadb: bool) -> None:
        self.types = types
        numeric = _NUMERIC | {T_YEAR} if mariadb else _NUMERIC
        # MariaDB's YEAR is an integer field (it carries a signedness bit); MySQL's
        # is not. MariaDB also gives GEOMETRY a charset (binary), MySQL does not.
        character = (
            _CHARACTER | {T_GEOMETRY, T_BLOB_COMPRESSED, T_VARCHAR_COMPRESSED}
            if mariadb
            else _CHARACTER
        )
        self.numeric = [i for i, t in enumerate(types) if t in numeric]
        self.character = [i for i, t in enumerate(types) if t in character]
        self.enum_set = [i for i, t in enumerate(types) if t in (T_ENUM, T_SET)]
        self.unsigned: dict[int, bool] = {}
        self.collations: dict[int, int] = {}
        self.labels: dict[int, tuple[bytes, ...]] = {}
        self.geometry: dict[int, int] = {}
        self.names: list[str] = []
        self.primary_key: list[int] = []

    def parse(self, buf: bytes, pos: int, end: int) -> None:
        while pos < end:
            kind = buf[pos]
            length, pos = read_packed_int(buf, pos + 1)
            stop = pos + length
            if kind == _M_SIGNEDNESS:
                for n, i in enumerate(self.numeric):
                    self.unsigned[i] = bool(buf[pos + n // 8] & (0x80 >> n % 8))
            elif kind in (_M_DEFAULT_CHARSET, _M_ENUM_AND_SET_DEFAULT_CHARSET):
                cols = self.character if kind == _M_DEFAULT_CHARSET else self.enum_set
                default, p = read_packed_int(buf, pos)
                found = dict.fromkeys(cols, default)
                while p < stop:  # (index among those columns, collation) exceptions
                    nth, p = read_packed_int(buf, p)
                    found[cols[nth]], p = read_packed_int(buf, p)
                self.collations.update(found)
            elif kind in (_M_COLUMN_CHARSET, _M_ENUM_AND_SET_COLUMN_CHARSET):
                cols = self.character if kind == _M_COLUMN_CHARSET else self.enum_set
                self.collations.update(zip(cols, _ints(buf, pos, stop), strict=False))
            elif kind == _M_COLUMN_NAME:
                self.names = [s.decode() for s in _strings(buf, pos, stop)]
            elif kind in (_M_SET_STR_VALUE, _M_ENUM_STR_VALUE):
                wanted = T_SET if kind == _M_SET_STR_VALUE else T_ENUM
                cols = [i for i, t in enumerate(self.types) if t == wanted]
                p = pos
                for i in cols:
                    n, p = read_packed_int(buf, p)
                    members = []
                    for _ in range(n):
                        size, p = read_packed_int(buf, p)
                        members.append(bytes(buf[p : p + size]))
                        p += size
                    self.labels[i] = tuple(members)
            elif kind == _M_GEOMETRY_TYPE:
                cols = [i for i, t in enumerate(self.types) if t == T_GEOMETRY]
                self.geometry.update(zip(cols, _ints(buf, pos, stop), strict=False))
            elif kind == _M_SIMPLE_PRIMARY_KEY:
                self.primary_key = _ints(buf, pos, stop)
            elif kind == _M_PRIMARY_KEY_WITH_PREFIX:
                self.primary_key = _ints(buf, pos, stop)[0::2]  # (index, prefix) pairs
            pos = stop  # unknown fields (e.g. MySQL's column visibility) are skipped


def _ints(buf: bytes, pos: int, end: int) -> list[int]:
    out = []
    while pos < end:
        value, pos = read_packed_int(buf, pos)
        out.append(value)
    return out


def _strings(buf: bytes, pos: int, end: int) -> list[bytes]:
    out = []
    while pos < end:
        size, pos = read_packed_int(buf, pos)
        out.append(bytes(buf[pos : pos + size]))
        pos += size
    return out


# -- ROWS -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowsHeader:
    table_id: int
    width: int  # number of columns of the table
    present: bytes  # columns-present bitmap (the after image of an update: present2)
    present2: bytes | None
    rows_start: int


def parse_rows_header(
    buf: bytes, event_type: int, fde: FormatDescription, update: bool
) -> RowsHeader:
    table_id = table_id_at(buf, BODY_START, fde.table_id_size)
    pos = BODY_START + fde.post_header_len(event_type)
    if event_type in ROWS_V2:
        # v2 post-header ends with the length of an "extra data" block (itself included)
        extra_len = _U16.unpack_from(buf, pos - 2)[0]
        pos += extra_len - 2
    width, pos = read_packed_int(buf, pos)
    nbytes = (width + 7) // 8
    present = bytes(buf[pos : pos + nbytes])
    pos += nbytes
    present2 = None
    if update:
        present2 = bytes(buf[pos : pos + nbytes])
        pos += nbytes
    return RowsHeader(table_id, width, present, present2, pos)
