"""Row-level comparison of one pair: which keys are missing, extra or different.

Used for a chunk whose checksums differ (``diff_chunk``: both sides' rows of the
chunk as key -> digest) and for a list of keys (``compare_keys``: the recheck while
a sync runs, and rows that may sit in different chunks on the two sides). A digest
difference alone does not make a row different: the rows' normalised values are
read and compared column by column (``normalize.values_equal``), so a JSON document
printed differently by the two servers is not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymysql.connections import Connection

from duosync.core.copying import Chunk
from duosync.verify.normalize import values_equal
from duosync.verify.pairs import TablePair
from duosync.verify.rows import Key, SideReader


@dataclass
class Diff:
    """Rows of one pair that differ. Digests are kept so that the same key found
    missing in one chunk and extra in another (keys ordered differently by the two
    sides) can be recognised as one row."""

    missing: dict[Key, str] = field(default_factory=dict)  # key -> source digest
    extra: dict[Key, str] = field(default_factory=dict)  # key -> target digest
    #: key -> target names of the columns that differ
    different: dict[Key, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.different)


@dataclass(frozen=True)
class Readers:
    """A pair's two sides with one connection each (one worker thread)."""

    pair: TablePair
    source: SideReader
    target: SideReader
    src: Connection[Any]
    tgt: Connection[Any]


def _classify(readers: Readers, src: dict[Key, str], tgt: dict[Key, str]) -> Diff:
    diff = Diff(
        missing={k: d for k, d in src.items() if k not in tgt},
        extra={k: d for k, d in tgt.items() if k not in src},
    )
    candidates = [k for k, d in src.items() if k in tgt and tgt[k] != d]
    if candidates:
        _detail(readers, candidates, diff)
    return diff


def _detail(readers: Readers, keys: Sequence[Key], diff: Diff) -> None:
    """Compare the rows of *keys* value by value; record those that really differ."""
    src = readers.source.values_of(readers.src, keys)
    tgt = readers.target.values_of(readers.tgt, keys)
    pair = readers.pair
    for key in keys:
        a, b = src.get(key), tgt.get(key)
        if a is None or b is None:
            # the row went away between two reads (a live source): say what is now
            if a is not None:
                diff.missing[key] = ""
            elif b is not None:
                diff.extra[key] = ""
            continue
        columns = tuple(
            t.name
            for s, t, x, y in zip(pair.source.columns, pair.target.columns, a, b, strict=True)
            if not values_equal(s, x, y)
        )
        if columns:
            diff.different[key] = columns


def diff_chunk(readers: Readers, chunk: Chunk) -> tuple[Diff, int]:
    """The differing rows of one chunk, and how many rows both sides returned."""
    src = readers.source.digests_in_range(readers.src, chunk.lower, chunk.upper)
    tgt = readers.target.digests_in_range(readers.tgt, chunk.lower, chunk.upper)
    return _classify(readers, src, tgt), len(src) + len(tgt)


def compare_keys(readers: Readers, keys: Sequence[Key]) -> Diff:
    """The differing rows among *keys*, each looked up on both sides."""
    if not keys:
        return Diff()
    src = readers.source.digests_of(readers.src, keys)
    tgt = readers.target.digests_of(readers.tgt, keys)
    return _classify(readers, src, tgt)
