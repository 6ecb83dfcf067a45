"""PostgreSQL identifier and literal quoting: the one helper for each.

Literals appear only in DDL (CHECK members, defaults), which takes no bound
parameters; they are written for ``standard_conforming_strings = on`` (the default
since PostgreSQL 9.1, and what our sessions set), where a backslash is an ordinary
character and a quote is doubled.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """``"name"``, with embedded double quotes doubled (case is kept as written)."""
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} holds a NUL character")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def quote_literal(value: str) -> str:
    """``'value'`` for a standard-conforming session (quotes doubled, nothing else)."""
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"
