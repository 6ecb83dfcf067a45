"""Positions in a source's change log: ordered, serialisable values."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_FILE_NUMBER = re.compile(r"\.(\d+)$")


class BinlogPosition(BaseModel):
    """A point in a server's binlog: file + offset, and the GTID set at that point.

    Meaning: every transaction committed before this point is *included* in what was
    read at this point; a reader started here yields only transactions after it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    offset: int
    gtid: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.offset}" + (f" (gtid {self.gtid})" if self.gtid else "")

    def order_key(self) -> tuple[str, int, int]:
        """Sort key within one server's binlog: file (by its sequence number), offset."""
        m = _FILE_NUMBER.search(self.file)
        base = self.file[: m.start()] if m else self.file
        return (base, int(m.group(1)) if m else 0, self.offset)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, BinlogPosition):
            return NotImplemented
        return self.order_key() < other.order_key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, BinlogPosition):
            return NotImplemented
        return self.order_key() <= other.order_key()
