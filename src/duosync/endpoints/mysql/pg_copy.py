"""Rows rendered by a MySQL-family source as PostgreSQL ``COPY`` text.

The sibling of ``literals`` and ``tsv`` for a PostgreSQL target (its types are
``endpoints.postgres.types``): each row is one line of tab-separated fields, a chunk
is lines joined by ``GROUP_CONCAT``, and Python forwards the text to ``COPY ...
FROM STDIN`` untouched. In COPY's text format a backslash, tab, newline and
carriage return in a value are written ``\\\\``, ``\\t``, ``\\n``, ``\\r``, and NULL
is ``\\N``. Values keep their exact text: numbers as the server prints them (FLOAT
widened to DOUBLE), strings converted to utf8mb4, temporal values in the session's
text (UTC; TIME's text is also what ``interval`` reads), binary strings and spatial
values as bytea hex (``\\x0a0b``, its backslash escaped), BIT as its string of bits.
"""

from __future__ import annotations

from collections.abc import Sequence

from duosync.core.catalog import Table
from duosync.endpoints.mysql.dialect import quote_ident
from duosync.endpoints.mysql.tsv import escaped_text, tab_separated
from duosync.endpoints.mysql.types import SPATIAL_TYPES

_NUMERIC = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "double", "year"}
)
_BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
_PLAIN = frozenset({"date", "datetime", "timestamp", "time"})
#: (character, its COPY escape) as SQL string literals, the backslash first
_ESCAPES = (("\\\\", "\\\\\\\\"), ("\\t", "\\\\t"), ("\\n", "\\\\n"), ("\\r", "\\\\r"))


def field_expr(table: Table, name: str) -> str:
    """SQL (on the source) giving column *name*'s COPY field, ``\\N`` for NULL."""
    col = table.column(name)
    q = quote_ident(name)
    dt = col.data_type
    if dt in _NUMERIC or dt in _PLAIN:
        text = q
    elif dt == "float":
        text = f"CAST({q} AS DOUBLE)"
    elif dt == "bit":
        text = f"LPAD(BIN({q}+0),{col.length or 1},'0')"
    elif dt in _BINARY or dt in SPATIAL_TYPES or col.charset == "binary":
        text = f"CONCAT('\\\\\\\\x',HEX({q}))"
    else:
        text = escaped_text(q, _ESCAPES)
    return f"IFNULL({text},'\\\\N')"


def line_expr(table: Table, names: Sequence[str]) -> str:
    """SQL giving one row as a COPY line (without its newline), binary character set."""
    return tab_separated([field_expr(table, n) for n in names])
