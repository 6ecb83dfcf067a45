"""MySQL-family SQL text helpers: the one place identifiers are quoted.

OceanBase in MySQL mode and MariaDB share these rules, so their endpoint modules
import from here instead of keeping copies.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote one identifier (database, table, column, index) with backticks.

    A backtick inside the name is doubled, which is the only escape MySQL has for
    identifiers; NUL cannot appear in an identifier at all, so we refuse it rather
    than send something the server would truncate.
    """
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, table: str) -> str:
    """``db``.``table`` with both parts quoted."""
    return f"{quote_ident(database)}.{quote_ident(table)}"


def quote_literal(value: str) -> str:
    """A string literal for DDL text only (ENUM members, defaults, comments).

    DDL cannot take bound parameters, so this is the one place a value becomes SQL
    text; DML always binds. Backslash and quote are escaped for the default
    sql_mode (without NO_BACKSLASH_ESCAPES), which is what our sessions use.
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "''").replace("\x00", "\\0") + "'"
