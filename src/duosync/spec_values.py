"""Enumerations and plain values of the task spec (``duosync.spec``): phases,
policies, sides, durations."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
)

from duosync.config import redact_url


def show_value(value: object) -> str:
    """Quote user text in a message; a URL with a password typed in the wrong place
    must still not leak it."""
    return repr(redact_url(str(value)))


class MigrationType(StrEnum):
    """A phase of the task; phases always run in this order."""

    SCHEMA = "schema"
    FULL = "full"
    INCREMENTAL = "incremental"


class NonEmptyTarget(StrEnum):
    """What full migration does when a target table already holds rows."""

    STOP = "stop"  #: refuse to start: the rows may be someone else's data
    IGNORE = "ignore"  #: go on; conflicting rows are logged, the target's are kept


class ConflictPolicy(StrEnum):
    """What incremental sync does with a change that conflicts with the target's
    rows (see ``sync.conflicts``); every conflict is recorded either way."""

    IGNORE = "ignore"  #: keep the target's row
    OVERWRITE = "overwrite"  #: the source's row wins
    #: two-way only, both sides end with the same row (``sync.convergence``): the
    #: change committed later wins, ties to the arbiter side
    LAST_WRITER_WINS = "last_writer_wins"
    #: two-way only: the side named by ``options.winner`` wins every conflict
    SITE_PRIORITY = "site_priority"

    @property
    def converging(self) -> bool:
        """Whether the policy makes both sides of a two-way sync end identical."""
        return self in (ConflictPolicy.LAST_WRITER_WINS, ConflictPolicy.SITE_PRIORITY)


class DmlKind(StrEnum):
    """A kind of row change incremental sync may carry (``options.dml``)."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class DdlKind(StrEnum):
    """A kind of schema change incremental sync may carry (``options.ddl``)."""

    CREATE = "create"  #: CREATE TABLE / INDEX (views are not synced)
    ALTER = "alter"  #: ALTER TABLE (columns, keys, options)
    DROP = "drop"  #: DROP TABLE / INDEX
    RENAME = "rename"  #: RENAME TABLE, ALTER TABLE ... RENAME
    TRUNCATE = "truncate"  #: TRUNCATE TABLE


def parse_ddl_kinds(value: Any) -> Any:
    """``options.ddl``: true (every kind, the default), false (none) or a list of
    kinds."""
    if value is True:
        return tuple(DdlKind)
    if value is False or value is None:
        return ()
    return value


class Side(StrEnum):
    """A side of a two-way sync, named as the forward task sees it."""

    SOURCE = "source"
    TARGET = "target"


class OnDataError(StrEnum):
    """What incremental sync does with a row the target refuses (a value out of
    range, a NOT NULL or foreign-key violation ...)."""

    STOP = "stop"  #: the task fails, naming the row, its table and position
    SKIP = "skip"  #: the row is recorded in the conflict log with its images; go on


#: retry_for's default: a day, so a weekend-long outage still needs no person
DEFAULT_RETRY_FOR = 24 * 3600.0
_DURATION = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: Any) -> float:
    """Seconds of a duration written as a number of seconds or as ``90s``, ``30m``,
    ``24h``, ``1h30m``, ``7d`` (units in that order)."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 15m, 24h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        match = _DURATION.match(text)
        if text and re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif not text or match is None or not any(match.groupdict().values()):
            raise ValueError(
                f"{show_value(value)} is not a duration: write e.g. 30s, 15m, 24h, 1h30m, 7d"
                " or a number of seconds"
            )
        else:
            seconds = sum(
                float(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n
            )
    else:
        raise ValueError("a duration such as 30s, 15m, 24h or a number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: seconds, written as a duration (``parse_duration``)
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=365 * 86400.0)]


class Topology(StrEnum):
    ONE_WAY = "one-way"
    #: a forward task plus a reverse task (incremental DML only) from target to source
    TWO_WAY = "two-way"


class StorageFormat(StrEnum):
    """Storage of tables created on an OceanBase (4.3+) target."""

    DEFAULT = "default"  #: whatever the tenant's settings say
    ROW = "row"
    COLUMN = "column"
    HYBRID = "hybrid"


# -- names -------------------------------------------------------------------------------

# Never selected by a wildcard and refused when named: copying the server's own
# catalogs is never what a data migration means, and `oms` holds the transaction
# marker tables two-way sync uses to drop its own changes; copying those would break
