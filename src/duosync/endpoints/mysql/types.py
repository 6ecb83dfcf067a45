"""Parsing the bits of MySQL type and default text that information_schema leaves raw."""

from __future__ import annotations

import re

from duosync.core.catalog import ColumnDefault, DefaultKind

TEMPORAL_FSP_TYPES = frozenset({"time", "datetime", "timestamp"})
SPATIAL_TYPES = frozenset(
    {
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)
#: other spellings servers use for a type, to the one the model uses
TYPE_SYNONYMS = {"geomcollection": "geometrycollection"}
_PARENS = re.compile(r"^\w+\((\d+)(?:,(\d+))?\)")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# Expressions a server may show as a default without quoting it as a literal.
_EXPR_DEFAULT = re.compile(
    r"^(current_timestamp|now|localtime|localtimestamp|curdate|curtime|utc_timestamp)"
    r"(\(\d*\))?$",
    re.IGNORECASE,
)
# The synonyms of CURRENT_TIMESTAMP (and only those: CURDATE() is midnight, not now).
_NOW = re.compile(r"^(current_timestamp|now|localtime|localtimestamp)(\(\d*\))?$", re.IGNORECASE)


def split_quoted_list(text: str) -> tuple[str, ...]:
    """Members of ``enum('a','b''c')`` / ``set(...)`` as the server stores them.

    information_schema writes each member as a SQL string literal: a quote is
    doubled and a backslash is escaped, so both escapes are undone here.
    """
    start, end = text.find("("), text.rfind(")")
    body = text[start + 1 : end]
    values: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != "'":
            i += 1
            continue
        i += 1
        buf: list[str] = []
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body):
                buf.append(body[i + 1])
                i += 2
            elif ch == "'" and i + 1 < len(body) and body[i + 1] == "'":
                buf.append("'")
                i += 2
            elif ch == "'":
                i += 1
                break
            else:
                buf.append(ch)
                i += 1
        values.append("".join(buf))
    return tuple(values)


def split_unescaped_list(text: str) -> tuple[str, ...]:
    """Members of ``enum('a','it's')`` as OceanBase writes them: quoted but *not* escaped.

    OceanBase 4.3 prints members verbatim between quotes, so the only safe separator
    is the three characters ``','``; a member that itself contains ``','`` cannot be
    told apart (and is split). No escaping to undo.
    """
    start, end = text.find("('"), text.rfind("')")
    if start < 0 or end < start:
        return ()
    return tuple(text[start + 2 : end].split("','"))


def strip_outer_parens(expr: str) -> str:
    """``((a + 1))`` -> ``a + 1``: servers differ in how many they add around an expression."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, ch in enumerate(expr):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0 and i != len(expr) - 1:
                    return expr  # the first '(' closes before the end: not one outer pair
        expr = expr[1:-1].strip()
    return expr


def canonical_now(expr: str, fsp: int | None = None) -> str | None:
    """``current_timestamp(6)``, ``now()``, ... as ``CURRENT_TIMESTAMP(6)``; None if *expr*
    is not such a function. Without a precision in the text, *fsp* (the column's) is used:
    OceanBase shows ``CURRENT_TIMESTAMP`` for a DATETIME(6) column that really defaults
    to ``CURRENT_TIMESTAMP(6)``; MariaDB always writes the precision it applies."""
    m = _NOW.match(expr.strip())
    if not m:
        return None
    digits = (m.group(2) or "").strip("()")
    precision = int(digits) if digits else (fsp or 0) if m.group(2) is None else 0
    return f"CURRENT_TIMESTAMP({precision})" if precision else "CURRENT_TIMESTAMP"


def float_precision(column_type: str) -> tuple[int | None, int | None]:
    """``float(7,3)`` gives (7, 3); a bare ``float`` has no declared precision."""
    m = _PARENS.match(column_type)
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)


def unquote_literal(text: str) -> str:
    """The value of a single-quoted SQL literal such as ``'it''s'``."""
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0", "Z": "\x1a"}.get(nxt, nxt))
            i += 2
        elif ch == "'" and i + 1 < len(body) and body[i + 1] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def mariadb_default(raw: str | None) -> ColumnDefault | None:
    """MariaDB (10.2.7+) shows defaults as SQL text.

    E.g. ``'text'``, ``12``, ``NULL``, ``current_timestamp()``, ``b'101'``.
    """
    if raw is None or raw.upper() == "NULL":
        return None
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        return ColumnDefault(kind=DefaultKind.LITERAL, value=unquote_literal(raw))
    if _NUMBER.match(raw):
        return ColumnDefault(kind=DefaultKind.LITERAL, value=raw)
    now = canonical_now(raw)
    if now is not None:
        return ColumnDefault(kind=DefaultKind.EXPRESSION, value=now)
    # b'101' bit literals and any other expression stay SQL text.
    return ColumnDefault(kind=DefaultKind.EXPRESSION, value=raw)


def mysql_default(
    raw: str | None, extra: str, data_type: str, fsp: int | None = None
) -> ColumnDefault | None:
    """MySQL and OceanBase show the default's value unquoted; expressions are flagged
    by ``DEFAULT_GENERATED`` in EXTRA (MySQL 8) or recognisable by name."""
    if raw is None:
        return None
    if data_type in ("datetime", "timestamp"):
        now = canonical_now(raw, fsp)
        if now is not None:
            return ColumnDefault(kind=DefaultKind.EXPRESSION, value=now)
    if "default_generated" in extra.lower() or (
        data_type in ("datetime", "timestamp", "date", "time") and _EXPR_DEFAULT.match(raw)
    ):
        return ColumnDefault(kind=DefaultKind.EXPRESSION, value=raw)
    if data_type == "bit" and raw.lower().startswith("b'"):
        return ColumnDefault(kind=DefaultKind.EXPRESSION, value=raw)
    return ColumnDefault(kind=DefaultKind.LITERAL, value=raw)
