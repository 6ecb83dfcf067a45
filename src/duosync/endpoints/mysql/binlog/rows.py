"""Row images -> Python values, with a decoder generated per table map.

Why generated code: a general decoder spends most of its time deciding, per column
of every row, what the column is. Here that is decided once per table map. We
write the source of one Python function that decodes every row image of a rows
event for that table: fixed-width columns are read at constant offsets (runs of
integers and floats with one precompiled ``struct`` call), variable-width values
inline, and only the rarer types (DECIMAL, temporal, SET) call a small helper.
Rows without NULLs take a straight path; a row with a NULL takes a second path
that checks each nullable column's bit. The generated text only ever contains our
own identifiers and integer constants taken from the table map; names, labels
and codecs are passed in as function defaults, never spliced into the source.

Values follow the conventions of ``duosync.core.events``.
"""

from __future__ import annotations

import codecs
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from duosync.endpoints.mysql.binlog import events as ev
from duosync.errors import FatalError

Row = tuple[Any, ...]
DecodeRows = Callable[[bytes, int, int], list[Row]]


@dataclass(frozen=True, slots=True)
class RowDecoder:
    """Decodes the row images of one table's rows events (for one present-bitmap)."""

    database: str
    table: str
    columns: tuple[str, ...]  # names of the columns in each decoded row
    decode: DecodeRows  # (packet, first row offset, end offset) -> rows


# -- character sets ---------------------------------------------------------------------

_LATIN1_ERRORS = "duosync-latin1"


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # MySQL's latin1 is cp1252 except that the 5 bytes cp1252 leaves undefined map
    # to the C1 controls of the same number, which is what latin-1 does.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_LATIN1_ERRORS, _latin1_fallback)

_PLAIN_CODECS = {
    **dict.fromkeys(("utf8mb4", "utf8mb3", "utf8"), "utf-8"), "eucjpms": "euc-jp",
    "ascii": "ascii", "latin2": "iso8859-2", "latin5": "iso8859-9", "latin7": "iso8859-13",
    "greek": "iso8859-7", "hebrew": "iso8859-8", "cp1250": "cp1250", "cp1251": "cp1251",
    "cp1256": "cp1256", "cp1257": "cp1257", "cp850": "cp850", "cp852": "cp852",
    "cp866": "cp866", "koi8r": "koi8-r", "koi8u": "koi8-u", "macroman": "mac-roman",
    "macce": "mac-latin2", "ucs2": "utf-16-be", "utf16": "utf-16-be", "utf16le": "utf-16-le",
    "utf32": "utf-32-be", "gbk": "gbk", "gb2312": "gb2312", "gb18030": "gb18030",
    "big5": "big5", "sjis": "shift_jis", "cp932": "cp932", "ujis": "euc-jp",
    "euckr": "euc-kr", "tis620": "tis-620",
}  # fmt: skip
#: MySQL character set -> (Python codec, error handler)
_CODECS: dict[str, tuple[str, str]] = {
    **{name: (codec, "strict") for name, codec in _PLAIN_CODECS.items()},
    "latin1": ("cp1252", _LATIN1_ERRORS),
}
BINARY_COLLATION = 63


def query_codecs(charsets: dict[int, str]) -> dict[int, str]:
    """Collation id -> Python codec, for the text of QUERY events."""
    return {cid: _CODECS[name][0] for cid, name in charsets.items() if name in _CODECS}


# -- value helpers (fixed-width types that are not plain integers) -------------------------

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def decimal_decoder(precision: int, scale: int) -> tuple[Callable[[bytes, int], str], int]:
    """A (decoder, byte size) pair for DECIMAL(precision, scale) in binlog format.

    The format stores 9 decimal digits per 4 big-endian bytes (fewer bytes for a
    leading/trailing partial group), with the sign bit flipped so that the bytes
    sort like the numbers, and every bit inverted for negative numbers.
    """
    intg = precision - scale
    layout_int = ([(_DIG2BYTES[intg % 9], 10 ** (intg % 9))] if intg % 9 else []) + [(4, 10**9)] * (
        intg // 9
    )
    layout_frac = [(4, 10**9)] * (scale // 9) + (
        [(_DIG2BYTES[scale % 9], 10 ** (scale % 9))] if scale % 9 else []
    )
    size = sum(n for n, _ in layout_int + layout_frac)
    sign = 1 << (8 * size - 1)
    flip = ((1 << (8 * size)) - 1) ^ sign
    ifb = int.from_bytes

    def decode(buf: bytes, pos: int) -> str:
        raw = ifb(buf[pos : pos + size], "big")
        neg = not raw & sign
        b = (raw ^ (flip if neg else sign)).to_bytes(size, "big")
        p, whole, frac = 0, 0, 0
        for n, mul in layout_int:
            whole = whole * mul + ifb(b[p : p + n], "big")
            p += n
        for n, mul in layout_frac:
            frac = frac * mul + ifb(b[p : p + n], "big")
            p += n
        text = f"{whole}.{frac:0{scale}d}" if scale else str(whole)
        return "-" + text if neg and (whole or frac) else text

    return decode, size


def _frac_size(fsp: int) -> int:
    return (fsp + 1) // 2


def _frac_text(buf: bytes, pos: int, fsp: int) -> str:
    """Fraction stored in (fsp+1)/2 big-endian bytes, as '.' + fsp digits."""
    n = _frac_size(fsp)
    units = int.from_bytes(buf[pos : pos + n], "big")
    micro = units * (10000, 100, 1)[n - 1]
    return f".{micro // 10 ** (6 - fsp):0{fsp}d}"


def time2_decoder(fsp: int) -> Callable[[bytes, int], str]:
    n = _frac_size(fsp)
    width, offset, shift = 3 + n, 0x800000 << (8 * n), 8 * n
    unit = (1, 10000, 100, 1)[n]

    def decode(buf: bytes, pos: int) -> str:
        # Integer part and fraction as one signed number: for negative times the
        # fraction is stored "borrowed" from the integer part, which is exactly
        # what reading both as one big-endian integer undoes.
        packed = int.from_bytes(buf[pos : pos + width], "big") - offset
        sign = "-" if packed < 0 else ""
        packed = abs(packed)
        hms, frac = packed >> shift, packed & ((1 << shift) - 1)
        text = f"{sign}{hms >> 12 & 0x3FF:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}"
        return f"{text}.{frac * unit // 10 ** (6 - fsp):0{fsp}d}" if fsp else text

    return decode


def datetime2_decoder(fsp: int) -> Callable[[bytes, int], str]:
    def decode(buf: bytes, pos: int) -> str:
        packed = int.from_bytes(buf[pos : pos + 5], "big") - 0x8000000000
        ymd, hms = packed >> 17, packed & 0x1FFFF
        year, month = divmod(ymd >> 5, 13)
        text = (
            f"{year:04d}-{month:02d}-{ymd & 31:02d} "
            f"{hms >> 12:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}"
        )
        return text + _frac_text(buf, pos + 5, fsp) if fsp else text

    return decode


def timestamp2_decoder(fsp: int) -> Callable[[bytes, int], str]:
    def decode(buf: bytes, pos: int) -> str:
        seconds = int.from_bytes(buf[pos : pos + 4], "big")
        frac = _frac_text(buf, pos + 4, fsp) if fsp else ""
        return _utc_text(seconds) + frac

    return decode


def _utc_text(seconds: int) -> str:
    if seconds == 0:
        return "0000-00-00 00:00:00"
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


def date_value(buf: bytes, pos: int) -> str:
    v = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    return f"{v >> 9:04d}-{v >> 5 & 15:02d}-{v & 31:02d}"


def time_value(buf: bytes, pos: int) -> str:  # pre-5.6 TIME: HHMMSS as an integer
    v = int.from_bytes(buf[pos : pos + 3], "little", signed=True)
    sign, v = ("-" if v < 0 else ""), abs(v)
    return f"{sign}{v // 10000:02d}:{v // 100 % 100:02d}:{v % 100:02d}"


def datetime_value(buf: bytes, pos: int) -> str:  # pre-5.6 DATETIME: YYYYMMDDhhmmss
    d, t = divmod(int.from_bytes(buf[pos : pos + 8], "little"), 1000000)
    return (
        f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d} "
        f"{t // 10000:02d}:{t // 100 % 100:02d}:{t % 100:02d}"
    )


def timestamp_value(buf: bytes, pos: int) -> str:  # pre-5.6 TIMESTAMP
    return _utc_text(int.from_bytes(buf[pos : pos + 4], "little"))


def set_labels(bits: int, labels: tuple[str, ...]) -> str:
    return ",".join([label for k, label in enumerate(labels) if bits >> k & 1])


# -- code generation ------------------------------------------------------------------------

#: struct codes of the integer and float types: (signed, unsigned)
_STRUCT_CODES = {
    ev.T_TINY: ("b", "B"),
    ev.T_SHORT: ("h", "H"),
    ev.T_LONG: ("i", "I"),
    ev.T_LONGLONG: ("q", "Q"),
    ev.T_FLOAT: ("f", "f"),
    ev.T_DOUBLE: ("d", "d"),
    ev.T_YEAR: ("B", "B"),
}
_FIXED_HELPERS: dict[int, tuple[Callable[[bytes, int], str], int]] = {
    ev.T_DATE: (date_value, 3),
    ev.T_TIME: (time_value, 3),
    ev.T_DATETIME: (datetime_value, 8),
    ev.T_TIMESTAMP: (timestamp_value, 4),
}
_LENGTH_PREFIXED = frozenset({ev.T_VARCHAR, ev.T_VAR_STRING, ev.T_STRING, ev.T_BLOB, ev.T_GEOMETRY})


class _Source:
    """The text and the namespace of one generated function."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, object] = {}

    def bind(self, prefix: str, value: object) -> str:
        name = f"_{prefix}{len(self.names)}"
        self.names[name] = value
        return name


class _Gen:
    """Builds the decode function for one table map and columns-present bitmap."""

    def __init__(self, table: ev.TableMap, present: list[int], charsets: dict[int, str]) -> None:
        self.table = table
        self.present = present
        self.charsets = charsets
        self.src = _Source()

    def fail(self, column: ev.Column, what: str) -> FatalError:
        return FatalError(
            f"column {column.name}: {what}", table=f"{self.table.database}.{self.table.table}"
        )

    def codec(self, column: ev.Column) -> tuple[str, str] | None:
        """(codec, errors) of a text column, None for a binary one."""
        if column.collation is None or column.collation == BINARY_COLLATION:
            return None
        name = self.charsets.get(column.collation)
        if name is None:
            raise self.fail(column, f"unknown collation id {column.collation}")
        if name == "binary":
            return None
        if name not in _CODECS:
            raise self.fail(column, f"character set {name} is not supported")
        return _CODECS[name]

    # Each emitter appends code that sets `var` from the value at `at`; fixed-width
    # emitters return their width (the caller advances `pos`), variable-width ones
    # advance `pos` themselves and return None.

    def fixed(self, c: ev.Column, var: str, at: str) -> int | None:
        t, out, src = c.type, self.src.lines, self.src
        if t in _STRUCT_CODES:
            code = _STRUCT_CODES[t][c.unsigned]
            s = struct.Struct("<" + code)
            out.append(f"{var} = {src.bind('S', s.unpack_from)}(buf, {at})[0]")
            if t == ev.T_YEAR:
                out.append(f"if {var}: {var} += 1900")
            return s.size
        if t == ev.T_INT24:
            signed = "False" if c.unsigned else "True"
            out.append(f"{var} = _ifb(buf[{at}:{at} + 3], 'little', signed={signed})")
            return 3
        if t == ev.T_NEWDECIMAL:
            fn, size = decimal_decoder(c.size, c.scale)
            out.append(f"{var} = {src.bind('D', fn)}(buf, {at})")
            return size
        if t == ev.T_BIT:
            n = (c.size + 7) // 8
            out.append(f"{var} = _ifb(buf[{at}:{at} + {n}], 'big')")
            return n
        if t in (ev.T_TIME2, ev.T_DATETIME2, ev.T_TIMESTAMP2):
            if not 0 <= c.size <= 6:
                raise self.fail(c, f"bad fractional seconds precision {c.size}")
            maker, base = {
                ev.T_TIME2: (time2_decoder, 3),
                ev.T_DATETIME2: (datetime2_decoder, 5),
                ev.T_TIMESTAMP2: (timestamp2_decoder, 4),
            }[t]
            out.append(f"{var} = {src.bind('T', maker(c.size))}(buf, {at})")
            return base + _frac_size(c.size)
        if t in _FIXED_HELPERS:
            fn, size = _FIXED_HELPERS[t]
            out.append(f"{var} = {src.bind('T', fn)}(buf, {at})")
            return size
        if t in (ev.T_ENUM, ev.T_SET):
            return self.enum_set(c, var, at)
        return None

    def enum_set(self, c: ev.Column, var: str, at: str) -> int:
        if c.labels is None:
            raise self.fail(c, "ENUM/SET members missing (binlog_row_metadata must be FULL)")
        codec = self.codec(c) or ("utf-8", "strict")
        labels = tuple(m.decode(*codec) for m in c.labels)
        if c.size not in (1, 2, 3, 4, 8):
            raise self.fail(c, f"bad ENUM/SET storage size {c.size}")
        number = f"_ifb(buf[{at}:{at} + {c.size}], 'little')" if c.size > 1 else f"buf[{at}]"
        if c.type == ev.T_ENUM:
            # index 0 is the empty string a server stores for an invalid value
            self.src.lines.append(f"{var} = {self.src.bind('L', ('', *labels))}[{number}]")
        else:
            fn = self.src.bind("F", set_labels)
            self.src.lines.append(f"{var} = {fn}({number}, {self.src.bind('L', labels)})")
        return c.size

    def variable(self, c: ev.Column, var: str) -> None:
        t, out = c.type, self.src.lines
        if t == ev.T_JSON:
            raise self.fail(c, "MySQL JSON columns not supported yet")
        if t in (ev.T_BLOB_COMPRESSED, ev.T_VARCHAR_COMPRESSED):
            raise self.fail(c, "MariaDB COMPRESSED columns not supported yet")
        if t not in _LENGTH_PREFIXED:
            raise self.fail(c, f"column type {t} is not supported")
        if t in (ev.T_BLOB, ev.T_GEOMETRY):
            prefix = c.size
            if not 1 <= prefix <= 4:
                raise self.fail(c, f"bad BLOB length size {prefix}")
        else:
            prefix = 1 if c.size < 256 else 2
        length = (
            "buf[pos]"
            if prefix == 1
            else "buf[pos] | buf[pos + 1] << 8"
            if prefix == 2
            else f"_ifb(buf[pos:pos + {prefix}], 'little')"
        )
        out.append(f"n = {length}")
        value = f"buf[pos + {prefix}:pos + {prefix} + n]"
        codec = None if t == ev.T_GEOMETRY else self.codec(c)
        if codec is None:
            out.append(f"{var} = {value}")
            if t == ev.T_STRING:
                # BINARY(n) is stored without its trailing zero bytes; the server
                # pads them back when it reads the column, so do we.
                out.append(f"if n < {c.size}: {var} += bytes({c.size} - n)")
        elif codec == ("utf-8", "strict"):
            out.append(f"{var} = {value}.decode()")
        else:
            name, errors = self.src.bind("C", codec[0]), self.src.bind("E", codec[1])
            out.append(f"{var} = {value}.decode({name}, {errors})")
        out.append(f"pos += {prefix} + n")

    def straight(self, indent: str) -> list[str]:
        """Code for a row without NULLs: fixed columns at constant offsets."""
        lines: list[str] = []
        offset = 0
        run: list[tuple[str, str, bool]] = []  # (var, struct code, is_year) pending

        def flush_run() -> None:
            nonlocal offset
            if not run:
                return
            s = struct.Struct("<" + "".join(code for _, code, _ in run))
            at = f"pos + {offset}" if offset else "pos"
            names = ", ".join(var for var, _, _ in run)
            lines.append(f"{names}, = {self.src.bind('S', s.unpack_from)}(buf, {at})")
            lines.extend(f"if {var}: {var} += 1900" for var, _, year in run if year)
            offset += s.size
            run.clear()

        for i in self.present:
            c, var = self.table.columns[i], f"v{i}"
            if c.type in _STRUCT_CODES:
                run.append((var, _STRUCT_CODES[c.type][c.unsigned], c.type == ev.T_YEAR))
                continue
            flush_run()
            self.src.lines = []
            width = self.fixed(c, var, f"pos + {offset}" if offset else "pos")
            if width is not None:
                offset += width
            else:
                if offset:
                    lines.append(f"pos += {offset}")
                    offset = 0
                self.src.lines = []
                self.variable(c, var)
            lines.extend(self.src.lines)
        flush_run()
        if offset:
            lines.append(f"pos += {offset}")
        return [indent + line for line in lines]

    def checked(self, indent: str) -> list[str]:
        """Code for a row with some NULL: one column at a time, nullable ones tested."""
        lines: list[str] = []
        for bit, i in enumerate(self.present):
            c, var = self.table.columns[i], f"v{i}"
            self.src.lines = []
            width = self.fixed(c, var, "pos")
            if width is not None:
                self.src.lines.append(f"pos += {width}")
            else:
                self.src.lines = []
                self.variable(c, var)
            if c.nullable:
                lines.append(f"if nulls & {1 << bit}:")
                lines.append(f"    {var} = None")
                lines.append("else:")
                lines.extend("    " + line for line in self.src.lines)
            else:
                lines.extend(self.src.lines)
        return [indent + line for line in lines]

    def build(self) -> DecodeRows:
        nbytes = (len(self.present) + 7) // 8
        null_mask = sum(
            1 << bit for bit, i in enumerate(self.present) if self.table.columns[i].nullable
        )
        straight, checked = self.straight("            "), self.checked("            ")
        nulls = "buf[pos]" if nbytes == 1 else f"_ifb(buf[pos:pos + {nbytes}], 'little')"
        body = [
            "def decode_rows(buf, pos, end{defaults}):",
            "    rows = []",
            "    append = rows.append",
            "    while pos < end:",
            f"        nulls = {nulls}",
            f"        pos += {nbytes}",
        ]
        if null_mask:
            body += [f"        if nulls & {null_mask}:", *checked, "        else:", *straight]
        else:
            body += [line[4:] for line in straight]
        names = ", ".join(f"v{i}" for i in self.present)
        body += [
            f"        append(({names},))",
            "    if pos != end:",
            "        raise _Overrun(pos, end)",
        ]
        body.append("    return rows")
        namespace = dict(self.src.names, _ifb=int.from_bytes, _Overrun=RowsOverrun)
        defaults = "".join(f", {name}={name}" for name in namespace)
        text = "\n".join(body).replace("{defaults}", defaults)
        code = compile(text, f"<rows {self.table.database}.{self.table.table}>", "exec")
        scope: dict[str, Any] = dict(namespace)
        exec(code, scope)  # our own generated text; see the module docstring
        fn: DecodeRows = scope["decode_rows"]
        return fn


class RowsOverrun(ValueError):
    """Decoding did not end exactly at the end of the rows event: a table map that
    does not describe the rows (or a corrupt event)."""

    def __init__(self, pos: int, end: int) -> None:
        super().__init__(f"row images end at offset {pos}, the event at {end}")


def present_columns(present: bytes, width: int) -> list[int]:
    bits = int.from_bytes(present, "little")
    return [i for i in range(width) if bits >> i & 1]


def build_decoder(table: ev.TableMap, present: bytes, charsets: dict[int, str]) -> RowDecoder:
    """A decoder for *table*'s rows events whose columns-present bitmap is *present*.

    Raises ``FatalError`` naming the table and column for a type it cannot decode.
    """
    columns = present_columns(present, len(table.columns))
    gen = _Gen(table, columns, charsets)
    fn = gen.build()
    names = tuple(table.columns[i].name for i in columns)
    return RowDecoder(table.database, table.table, names, fn)
