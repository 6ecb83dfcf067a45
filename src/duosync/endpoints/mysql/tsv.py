"""Rows rendered as ``LOAD DATA`` text by the source server, and the statement that loads them.

The sibling of ``literals`` for targets that load faster than they parse
INSERTs (MariaDB and MySQL: ``chunk_sink`` decides). The source renders each row as one
line of tab-separated fields and a chunk as lines joined by ``GROUP_CONCAT``; Python
forwards the text untouched to ``LOAD DATA LOCAL INFILE``
(``endpoints.mysql.local_infile``).

The format is LOAD DATA's default: fields end with a tab, lines with a newline,
backslash escapes (``\\t``, ``\\n``, ``\\\\``) and ``\\N`` for NULL. Values keep their exact
text, as in ``literals``: numbers as the server prints them (FLOAT widened
to DOUBLE), strings converted to utf8mb4 with the three special characters escaped
(the statement says ``CHARACTER SET utf8mb4``), temporal values in the session's
text (time zone +00:00). Binary strings and spatial values cross as hex and BIT as
its unsigned number; the statement turns them back with ``UNHEX`` and ``CAST``
into the column (text loaded into BIT or binary columns would be taken as bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

from duosync.core.catalog import Table
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.types import SPATIAL_TYPES

_NUMERIC = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "double"}
)
_BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
#: types whose text never holds a tab, a newline or a backslash
_PLAIN = frozenset({"date", "datetime", "timestamp", "time", "year"})

#: the name the statement gives its file; the server must ask for exactly this one
TOKEN = "duosync-chunk"


def _is_hex(table: Table, name: str) -> bool:
    col = table.column(name)
    return col.data_type in _BINARY or col.data_type in SPATIAL_TYPES or col.charset == "binary"


def field_expr(table: Table, name: str) -> str:
    """SQL (on the source) giving column *name*'s field text, ``\\N`` for NULL."""
    col = table.column(name)
    q = quote_ident(name)
    dt = col.data_type
    if dt in _NUMERIC:
        text = q
    elif dt == "float":
        text = f"CAST({q} AS DOUBLE)"
    elif dt == "bit":
        text = f"{q}+0"
    elif _is_hex(table, name):
        text = f"HEX({q})"
    elif dt in _PLAIN:
        text = q
    else:
        # Text, ENUM, SET, JSON: the special characters escaped
        text = escaped_text(q, _ESCAPES)
    return f"IFNULL({text},'\\\\N')"


#: (character, its escape) as SQL string literals, the backslash first
_ESCAPES = (("\\\\", "\\\\\\\\"), ("\\t", "\\\\t"), ("\\n", "\\\\n"))


def escaped_text(column: str, escapes: Sequence[tuple[str, str]]) -> str:
    """SQL giving text column *column* in utf8mb4 with each character of *escapes*
    replaced by its escape, in the binary character set (so that columns of
    different collations never meet in one CONCAT)."""
    text = f"CONVERT({column} USING utf8mb4)"
    for char, escaped in escapes:
        text = f"REPLACE({text},'{char}','{escaped}')"
    return f"CONVERT({text} USING binary)"


def tab_separated(fields: Sequence[str]) -> str:
    """SQL joining field expressions (never NULL) into one line, binary character set."""
    return f"CONVERT(CONCAT_WS('\\t',{','.join(fields)}) USING binary)"


def line_expr(table: Table, names: Sequence[str]) -> str:
    """SQL giving one row as a line (without its newline) in the binary character set."""
    return tab_separated([field_expr(table, n) for n in names])


def load_statement(
    source: Table, target_database: str, target_table: str, columns: Sequence[tuple[str, str]]
) -> str:
    """``LOAD DATA LOCAL INFILE`` of lines rendered by ``line_expr`` into the target table.

    *columns* pairs each source column (whose type chose the rendering) with the
    target column it loads."""
    fields: list[str] = []
    sets: list[str] = []
    for i, (src, dst) in enumerate(columns):
        col = source.column(src)
        if col.data_type == "bit":
            fields.append(f"@v{i}")
            sets.append(f"{quote_ident(dst)} = CAST(@v{i} AS UNSIGNED)")
        elif _is_hex(source, src):
            fields.append(f"@v{i}")
            sets.append(f"{quote_ident(dst)} = UNHEX(@v{i})")
        else:
            fields.append(quote_ident(dst))
    statement = (
        f"LOAD DATA LOCAL INFILE '{TOKEN}' INTO TABLE {qualified(target_database, target_table)}"
        " CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'"
        f" LINES TERMINATED BY '\\n' ({', '.join(fields)})"
    )
    return statement + (f" SET {', '.join(sets)}" if sets else "")
