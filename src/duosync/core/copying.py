"""The full copy's neutral model: key-range chunks, the jobs that copy them, and
rows in transit between a snapshot reader and a chunk sink (``core.interfaces``).

A chunk is the half-open key range ``(lower, upper]`` over the table's row
identity (primary key, else a NOT NULL unique key), in the key's order; the first
chunk has no lower bound and the last no upper bound, so rows inserted beyond the
last key while we copy are still inside a chunk. A table without any row identity
is one chunk with no bounds (a full scan).

Rows cross as text the source server rendered in a *form* the target takes
(``ChunkForm``), never as Python values, except in ``ROWS`` form (the ``ignore``
mode, which compares rows with the target's).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from duosync.core.catalog import Table

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Chunk:
    index: int
    lower: Key | None  # exclusive; None = from the start
    upper: Key | None  # inclusive; None = to the end


# Key values cross into the metadata store as JSON; bytes need a tag to survive.
def encode_key(key: Key | None) -> list[Any] | None:
    if key is None:
        return None
    return [{"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v for v in key]


def decode_key(data: list[Any] | None) -> Key | None:
    if data is None:
        return None
    return tuple(base64.b64decode(v["b64"]) if isinstance(v, dict) else v for v in data)


class ChunkForm(StrEnum):
    """How a chunk's rows travel from source to target."""

    #: MySQL ``VALUES`` lists, ``(v1,v2),(v3,v4)``, for a multi-row INSERT
    MYSQL_VALUES = "mysql_values"
    #: ``LOAD DATA`` lines: tab-separated fields, backslash escapes, ``\N`` for NULL
    MYSQL_LOAD_LINES = "mysql_load_lines"
    #: PostgreSQL ``COPY`` text: tab-separated fields, backslash escapes, ``\N`` for
    #: NULL, bytea as ``\x`` hex
    PG_COPY_TEXT = "pg_copy_text"
    #: the server's text of each value (bytes for binary types), as Python tuples
    ROWS = "rows"


@dataclass(frozen=True)
class CopyJob:
    """One table to copy: source and target names, columns, key and filter."""

    source: Table
    target: Table
    #: (source column, target column) pairs, generated columns excluded
    columns: tuple[tuple[str, str], ...]
    #: row identity on the source side and its target names (empty: full scan)
    key: tuple[str, ...]
    target_key: tuple[str, ...]
    where: str | None
    chunks: tuple[Chunk, ...]
    ignore_existing: bool
    #: chunks planned by an earlier run that did not record them done: their range
    #: may hold rows that run wrote, so ``stop`` mode empties it first
    resumed: frozenset[int] = frozenset()

    @property
    def name(self) -> str:
        return self.source.qualified


@dataclass(frozen=True)
class Rendered:
    """Rows rendered by the source as one piece of text, and how many rows it holds."""

    text: bytes
    rows: int


@dataclass
class ChunkData:
    """A chunk's rows as read: pieces of rendered text, or text rows (``ROWS``)."""

    form: ChunkForm
    rows: int
    nbytes: int
    #: each piece fits one statement (or one load) of the target
    pieces: list[Rendered] = field(default_factory=list)
    typed: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class KeyedRow:
    """One source row of a chunk rendered alone, with its key values (to name it)."""

    key: Key
    text: bytes


@dataclass
class ChunkResult:
    job: CopyJob
    chunk: Chunk
    rows: int
    nbytes: int
    #: ``ignore`` mode: (key values, what happened) of target rows kept
    conflicts: list[tuple[list[Any], str]] = field(default_factory=list)


class FormRefused(Exception):
    """The sink could not take the chunk in its form without changing a value (a
    load raised warnings, say) and rolled back: write it again in form *instead*."""

    def __init__(self, message: str, instead: ChunkForm) -> None:
        super().__init__(message)
        self.instead = instead
