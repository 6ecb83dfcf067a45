"""Positions in a source's change log: ordered, serialisable values.

Every kind carries a ``kind`` tag so that a stored position (metadata store,
target checkpoint) is read back as the kind it was; positions of different kinds
never meet in one task, and comparing them raises ``TypeError``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

_FILE_NUMBER = re.compile(r"\.(\d+)$")


class BinlogPosition(BaseModel):
    """A point in a server's binlog: file + offset, and the GTID set at that point.

    Meaning: every transaction committed before this point is *included* in what was
    read at this point; a reader started here yields only transactions after it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["binlog"] = "binlog"
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


#: ``tx`` of a position that covers every transaction of its commit version.
ALL_OF_VERSION = (1 << 63) - 1


class TriggerLogPosition(BaseModel):
    """A point in an OceanBase trigger change log: (commit version, transaction id).

    ``scn`` is the commit version (``ORA_ROWSCN``, nanoseconds of the global
    timestamp service), equal for every row of one transaction; ``tx`` orders the
    transactions that share a commit version. Meaning: every transaction ordered at
    or before ``(scn, tx)`` is *included*; a reader started here yields only later
    ones. ``tx = ALL_OF_VERSION`` includes every transaction of version ``scn``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["trigger"] = "trigger"
    scn: int
    tx: int = ALL_OF_VERSION

    def __str__(self) -> str:
        tx = "" if self.tx == ALL_OF_VERSION else f" tx {self.tx}"
        return f"commit version {self.scn}{tx}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TriggerLogPosition):
            return NotImplemented
        return (self.scn, self.tx) < (other.scn, other.tx)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, TriggerLogPosition):
            return NotImplemented
        return (self.scn, self.tx) <= (other.scn, other.tx)


Position = BinlogPosition | TriggerLogPosition

_ADAPTER: TypeAdapter[Position] = TypeAdapter(
    Annotated[BinlogPosition | TriggerLogPosition, Field(discriminator="kind")]
)


def position_from(data: dict[str, Any] | str) -> Position:
    """A position from its ``model_dump()`` dict or JSON text (older stored binlog
    positions have no ``kind``)."""
    fields = json.loads(data) if isinstance(data, str) else data
    if "kind" not in fields:
        return BinlogPosition(**fields)
    return _ADAPTER.validate_python(fields)
