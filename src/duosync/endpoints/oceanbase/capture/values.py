"""How a trigger writes a column's value into the change log, and how it is read back.

A trigger cannot serialise a row generically, so every column gets an expression
chosen by its type, evaluated in the *writer's* session (whatever its time zone and
character set). Each row image is a ``JSON_ARRAY`` of these, in the column order of
the capture version (``capture.log``). The text keeps the value exactly:

- integers, YEAR, BIT (``+0``) as JSON numbers (64-bit, signed or unsigned, exact);
- DECIMAL, DOUBLE, DATE, TIME, DATETIME, JSON as the server's text (DOUBLE text
  round-trips); FLOAT widened to DOUBLE first, whose text round-trips the float;
- TIMESTAMP as ``UNIX_TIMESTAMP()``: the writer's session may run in any time zone,
  the epoch does not depend on it;
- character types (ENUM and SET by label) converted to utf8mb4;
- binary strings and spatial values as hex.

Decoding gives the values of ``core.events`` (TIMESTAMP as UTC text).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from duosync.core.catalog import Column
from duosync.endpoints.mysql.dialect import quote_ident
from duosync.endpoints.mysql.types import SPATIAL_TYPES

Decoder = Callable[[Any], Any]

_INTEGER = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"})
_TEXT_AS_IS = frozenset({"decimal", "date", "time", "datetime", "json"})
_BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
_CHARACTER = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnsupportedColumn(ValueError):
    """A column type trigger capture cannot record exactly."""


def value_expr(col: Column, row: str) -> str:
    """SQL inside a trigger for the value of *col* in ``NEW`` or ``OLD`` (*row*)."""
    ref = f"{row}.{quote_ident(col.name)}"
    dt = col.data_type
    if dt in _INTEGER:
        return ref
    if dt == "bit":
        return f"{ref}+0"
    if dt in _BINARY or dt in SPATIAL_TYPES or (dt in _CHARACTER and col.charset == "binary"):
        return f"HEX({ref})"
    if dt == "float":
        return f"CAST(CAST({ref} AS DOUBLE) AS CHAR)"
    if dt == "double":
        return f"CAST({ref} AS CHAR)"
    if dt == "timestamp":
        return f"CAST(UNIX_TIMESTAMP({ref}) AS CHAR)"
    if dt in _TEXT_AS_IS:
        return f"CAST({ref} AS CHAR)"
    if dt in _CHARACTER:
        return f"CONVERT({ref} USING utf8mb4)"
    raise UnsupportedColumn(
        f"column {col.name} has type {col.column_type}, which capture cannot record"
    )


def decoder(col: Column) -> Decoder:
    """Turns one decoded JSON value of *col* into the event value (None stays None)."""
    dt = col.data_type
    if dt in _INTEGER or dt == "bit":
        return _int
    if dt in _BINARY or dt in SPATIAL_TYPES or (dt in _CHARACTER and col.charset == "binary"):
        return _hex
    if dt in ("float", "double"):
        return _float
    if dt == "timestamp":
        return _timestamp(col.fsp or 0)
    return _text


def _int(v: Any) -> Any:
    return None if v is None else int(v)


def _hex(v: Any) -> Any:
    return None if v is None else bytes.fromhex(v)


def _float(v: Any) -> Any:
    return None if v is None else float(v)


def _text(v: Any) -> Any:
    return None if v is None else str(v)


def _timestamp(fsp: int) -> Decoder:
    def decode(v: Any) -> Any:
        if v is None:
            return None
        epoch = Decimal(v)
        if epoch == 0:  # the zero TIMESTAMP (1970-01-01 00:00:00 UTC is out of range)
            return "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")
        seconds = int(epoch)
        micros = int((epoch - seconds) * 1_000_000)
        moment = _EPOCH + timedelta(seconds=seconds, microseconds=micros)
        text = moment.strftime("%Y-%m-%d %H:%M:%S")
        return f"{text}.{micros // 10 ** (6 - fsp):0{fsp}d}" if fsp else text

    return decode
