"""Which change stream feeds a task: the source's binlog, or OceanBase's trigger log.

The kind of the start position decides, and it was chosen when the task first
started (``service.phases.migration``): a MySQL/MariaDB source gives binlog positions, an
OceanBase source trigger-log positions.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from duosync.core.interfaces import ChangeStream
from duosync.core.positions import Position
from duosync.endpoints import open_change_stream, open_inspector
from duosync.spec import TaskSpec
from duosync.sync.loopguard import is_marker_table
from duosync.sync.mapping import Mapper


def replica_server_id(task: str) -> int:
    """A server id for our binlog connection, stable per task, away from the small
    ids servers usually have (two dumps with one id make the server drop one)."""
    return 0x40000000 | (zlib.crc32(task.encode()) & 0x3FFFFFFF)


def open_stream(
    spec: TaskSpec,
    start: Position,
    mapper: Mapper,
    say: Callable[[str], None],
    *,
    markers: bool = False,
    ddl: bool = True,
    fragment_rows: int | None = None,
) -> ChangeStream:
    """The source's change stream from *start*, yielding rows of the selected tables,
    plus (with *markers*) the loop-guard marker rows: the trigger log holds them only
    when capture was installed for a two-way sync (``service.phases.positions``). Without
    *ddl* (a reverse task), an OceanBase source reads no rows back around a schema
    change (``capture.schema_watch``). With *fragment_rows*, a larger transaction
    comes in ``Fragment``s of about that many rows."""

    def wanted(database: str, table: str) -> bool:
        return mapper.selected(database, table) or (markers and is_marker_table(database, table))

    def databases() -> list[str]:
        with open_inspector(spec.source) as insp:
            # Watched for new tables that a database or rule selection matches.
            return spec.select.candidate_databases(insp.list_databases())

    return open_change_stream(
        spec.source,
        start,
        consumer=spec.name,
        server_id=replica_server_id(spec.name),
        tables=wanted,
        databases=databases,
        say=say,
        ddl=ddl,
        fragment_rows=fragment_rows,
    )
