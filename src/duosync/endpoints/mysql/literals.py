"""Rows rendered as SQL literals by the source server itself.

The full migration's hot loop is "read a row, escape every value, write it into an
INSERT". Done in Python that costs microseconds per value and holds the GIL, so
parallel threads do not help. Instead the source renders each row as the text of a
``VALUES`` tuple (``QUOTE()``, ``HEX()``) and concatenates a whole chunk with
``GROUP_CONCAT``: Python receives one value per chunk and forwards it unchanged.

Every value keeps its exact text: numbers as the server prints them (FLOAT widened
to DOUBLE first, whose text round-trips the float), strings converted to utf8mb4
and quoted, binary strings, BIT and spatial values as hex, and NULL as the keyword.
Each piece is converted to the ``binary`` character set so that columns with
different collations never meet in one ``CONCAT`` (which the server may refuse).

The resulting text uses backslash escapes, so the target session must not run with
``NO_BACKSLASH_ESCAPES`` (``sessions.text_connect`` removes it).
"""

from __future__ import annotations

from collections.abc import Sequence

from duosync.core.catalog import Table
from duosync.endpoints.mysql.dialect import quote_ident
from duosync.endpoints.mysql.types import SPATIAL_TYPES

_NUMERIC = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "double"}
)
_BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})


def value_expr(table: Table, name: str) -> str:
    """SQL (on the source) giving the literal text of column *name*, never NULL."""
    col = table.column(name)
    q = quote_ident(name)
    dt = col.data_type
    if dt in _NUMERIC:
        return f"IFNULL({q},'NULL')"
    if dt == "float":
        return f"IFNULL(CAST({q} AS DOUBLE),'NULL')"
    if dt == "bit":
        # BIT's value as an unsigned integer; inserting the number sets the same bits.
        return f"IFNULL({q}+0,'NULL')"
    if dt in _BINARY or dt in SPATIAL_TYPES or col.charset == "binary":
        # Hex keeps zero bytes and invalid utf8 out of the statement text; X'' is
        # the empty string.
        return f"IF({q} IS NULL,'NULL',CONCAT('X''',HEX({q}),''''))"
    if col.charset is not None:
        return f"CONVERT(QUOTE(CONVERT({q} USING utf8mb4)) USING binary)"
    # Temporal types, YEAR, JSON (MySQL): their text in the session (time zone +00:00).
    return f"QUOTE({q})"


def row_expr(table: Table, names: Sequence[str]) -> str:
    """SQL giving one row as ``(v1,v2,...)`` in the binary character set."""
    values = ",".join(value_expr(table, n) for n in names)
    return f"CONVERT(CONCAT('(',CONCAT_WS(',',{values}),')') USING binary)"
