"""Reading one side of a pair: chunk checksums, row digests, rows by key.

Every query runs on a ``sessions.text_connect`` connection (UTC session, results as
the server's text or bytes) and returns at most one chunk's rows, or one batch of
keys: nothing here reads a whole table.

A key is the tuple of its columns' literal texts as the server renders them
(``normalize.key_literal_sql``); equal keys are equal byte for byte on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pymysql.connections import Connection

from duosync.config import Flavor
from duosync.core.copying import Key as Bound
from duosync.endpoints.mysql.dialect import qualified
from duosync.endpoints.mysql.literals import row_expr
from duosync.endpoints.mysql.ranges import range_condition
from duosync.verify.normalize import (
    any_key_sql,
    checksum_sql,
    key_literal_sql,
    row_hash_sql,
    value_sql,
)
from duosync.verify.pairs import Side

Key = tuple[str, ...]

#: keys per lookup statement: long OR lists cost the optimizer more than round trips
LOOKUP_BATCH = 200


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        # surrogateescape: any byte survives the trip back into a statement
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def batches(items: Sequence[Key], size: int = LOOKUP_BATCH) -> Iterator[Sequence[Key]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class Checksum:
    rows: int
    digest: str


class SideReader:
    """The SQL of one side, prepared once per pair."""

    def __init__(self, side: Side, peer: Flavor) -> None:
        self.side = side
        self.table = qualified(side.table.database, side.table.name)
        self.keys = ", ".join(key_literal_sql(side.table, side.key)) if side.key else ""
        self.digest = row_hash_sql(side.columns, side.flavor, peer)
        self.checksum_list = checksum_sql(side.columns, side.flavor, peer)
        self.values = ", ".join(value_sql(c, side.flavor, peer) for c in side.columns)

    def _range(self, lower: Bound | None, upper: Bound | None) -> tuple[str, list[Any]]:
        cond, args = range_condition(self.side.key, lower, upper) if self.side.key else ("1=1", [])
        if self.side.where:
            # the filter is user text: a '%' in it is not a placeholder
            cond = f"({cond}) AND ({self.side.where.replace('%', '%%')})"
        return cond, args

    def _by_keys(self, keys: Sequence[Key]) -> str:
        cond = any_key_sql(self.side.table, self.side.key, keys)
        if self.side.where:
            cond = f"{cond} AND ({self.side.where})"
        return cond

    def checksum(self, conn: Connection[Any], lower: Bound | None, upper: Bound | None) -> Checksum:
        cond, args = self._range(lower, upper)
        with conn.cursor() as cur:
            cur.execute(f"SELECT {self.checksum_list} FROM {self.table} WHERE {cond}", args)
            row = cur.fetchone()
        if row is None:
            return Checksum(0, "0")
        return Checksum(int(row[0]), _text(row[1]) if row[1] is not None else "0")

    def digests_in_range(
        self, conn: Connection[Any], lower: Bound | None, upper: Bound | None
    ) -> dict[Key, str]:
        """Every row of the chunk as key -> row digest (one chunk at most)."""
        cond, args = self._range(lower, upper)
        width = len(self.side.key)
        with conn.cursor() as cur:
            cur.execute(f"SELECT {self.keys}, {self.digest} FROM {self.table} WHERE {cond}", args)
            return {tuple(_text(v) for v in r[:width]): _text(r[width]) for r in cur.fetchall()}

    def digests_of(self, conn: Connection[Any], keys: Sequence[Key]) -> dict[Key, str]:
        """Digests of the rows with these keys (that pass the filter) that exist."""
        out: dict[Key, str] = {}
        width = len(self.side.key)
        with conn.cursor() as cur:
            for batch in batches(keys):
                # no bound arguments: literals and filter are used as they are
                cur.execute(
                    f"SELECT {self.keys}, {self.digest} FROM {self.table}"
                    f" WHERE {self._by_keys(batch)}"
                )
                for r in cur.fetchall():
                    out[tuple(_text(v) for v in r[:width])] = _text(r[width])
        return out

    def values_of(self, conn: Connection[Any], keys: Sequence[Key]) -> dict[Key, tuple[Any, ...]]:
        """Normalised column values of the rows with these keys."""
        out: dict[Key, tuple[Any, ...]] = {}
        width = len(self.side.key)
        with conn.cursor() as cur:
            for batch in batches(keys):
                cur.execute(
                    f"SELECT {self.keys}, {self.values} FROM {self.table}"
                    f" WHERE {self._by_keys(batch)}"
                )
                for r in cur.fetchall():
                    out[tuple(_text(v) for v in r[:width])] = tuple(r[width:])
        return out

    def insert_values_of(self, conn: Connection[Any], keys: Sequence[Key]) -> dict[Key, bytes]:
        """The rows with these keys as INSERT ``VALUES`` tuples rendered by this server
        (``endpoints.mysql.literals.row_expr``), in ``side.columns`` order."""
        row = row_expr(self.side.table, [c.name for c in self.side.columns])
        out: dict[Key, bytes] = {}
        width = len(self.side.key)
        with conn.cursor() as cur:
            for batch in batches(keys):
                cur.execute(
                    f"SELECT {self.keys}, {row} FROM {self.table} WHERE {self._by_keys(batch)}"
                )
                for r in cur.fetchall():
                    out[tuple(_text(v) for v in r[:width])] = bytes(r[width])
        return out
