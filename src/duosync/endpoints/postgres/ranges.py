"""A chunk's key range (``core.copying``) as a PostgreSQL condition with bound values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duosync.core.copying import Key
from duosync.endpoints.postgres.dialect import quote_ident


def range_condition(
    columns: Sequence[str], lower: Key | None, upper: Key | None
) -> tuple[str, list[Any]]:
    """SQL (``%s`` placeholders, psycopg's) and its values for ``lower < key <= upper``.

    PostgreSQL compares row values natively and uses the index for them."""
    parts: list[str] = []
    args: list[Any] = []
    cols = ", ".join(quote_ident(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    if lower is not None:
        parts.append(f"ROW({cols}) > ROW({marks})")
        args.extend(lower)
    if upper is not None:
        parts.append(f"ROW({cols}) <= ROW({marks})")
        args.extend(upper)
    return (" AND ".join(parts) if parts else "TRUE"), args
