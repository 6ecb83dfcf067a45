"""Key-range chunks in MySQL-family SQL: the condition that selects one range, and
the boundaries found by walking the key index (``core.copying`` defines a chunk).

Boundaries are real key values found ``chunk_rows`` index entries apart, so chunks
hold about the same number of rows however sparse the keys are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymysql.connections import Connection

from duosync.core.copying import Chunk, Key
from duosync.endpoints.mysql.dialect import qualified, quote_ident


def range_condition(
    columns: Sequence[str], lower: Key | None, upper: Key | None
) -> tuple[str, list[Any]]:
    """SQL (with %s placeholders) and its arguments for ``lower < key <= upper``.

    Row-value comparisons are written out (``a > x OR (a = x AND b > y)``) because
    not every server turns ``(a, b) > (x, y)`` into an index range.
    """
    parts: list[str] = []
    args: list[Any] = []
    if lower is not None:
        sql, a = _compare(columns, lower, ">")
        parts.append(sql)
        args.extend(a)
    if upper is not None:
        sql, a = _compare(columns, upper, "<=")
        parts.append(sql)
        args.extend(a)
    return (" AND ".join(parts) if parts else "1=1"), args


def _compare(columns: Sequence[str], values: Key, op: str) -> tuple[str, list[Any]]:
    strict = op[0]  # '>' or '<'
    ors: list[str] = []
    args: list[Any] = []
    for i, col in enumerate(columns):
        eqs = [f"{quote_ident(c)} = %s" for c in columns[:i]]
        last = i == len(columns) - 1
        cmp = op if last else strict
        ors.append("(" + " AND ".join([*eqs, f"{quote_ident(col)} {cmp} %s"]) + ")")
        args.extend(values[: i + 1])
    return "(" + " OR ".join(ors) + ")", args


def plan_chunks(
    conn: Connection[Any], database: str, table: str, key: Sequence[str], chunk_rows: int
) -> list[Chunk]:
    """Boundaries for *table* over *key*, found by walking the key index."""
    if not key:
        return [Chunk(0, None, None)]
    cols = ", ".join(quote_ident(c) for c in key)
    boundaries: list[Key] = []
    last: Key | None = None
    with conn.cursor() as cur:
        while True:
            cond, args = range_condition(key, last, None)
            cur.execute(
                f"SELECT {cols} FROM {qualified(database, table)} WHERE {cond}"
                f" ORDER BY {cols} LIMIT 1 OFFSET %s",
                [*args, chunk_rows - 1],
            )
            row = cur.fetchone()
            if row is None:
                break
            last = tuple(row)
            boundaries.append(last)
    chunks: list[Chunk] = []
    lower: Key | None = None
    for i, b in enumerate(boundaries):
        chunks.append(Chunk(i, lower, b))
        lower = b
    chunks.append(Chunk(len(boundaries), lower, None))
    return chunks
