"""Where a task's change stream starts, and "now" on its source.

A MySQL/MariaDB source gives binlog positions; an OceanBase source has no binlog,
so a task's first start installs trigger capture there and starts at the log
position of that install (``endpoints.oceanbase.capture``).
"""

from __future__ import annotations

from collections.abc import Sequence

from duosync.config import Flavor
from duosync.core.catalog import Table
from duosync.core.positions import Position
from duosync.endpoints import open_inspector
from duosync.endpoints.mysql.connection import connect, driver_errors
from duosync.endpoints.mysql.position import current_position, first_binlog_position
from duosync.endpoints.oceanbase import capture
from duosync.errors import DuosyncError
from duosync.spec import MigrationType, TaskSpec
from duosync.sync import checkpoint
from duosync.sync.loopguard import MARKER_TABLE


def start_position(spec: TaskSpec, tables: Sequence[Table], *, markers: bool = False) -> Position:
    """Where incremental sync of a first run starts: the source's binlog position
    now (or its oldest, for ``incremental_start``); on OceanBase, the trigger log's
    position once this task's capture is installed. With *markers* (two-way sync)
    the capture also records the loop-guard marker table, so the reader can drop
    what the opposite task wrote."""
    if spec.source.flavor is Flavor.OCEANBASE:
        try:
            captured = list(tables)
            if markers:
                # First: a transaction whose rows are captured then has its marker
                # captured too (the marker row is written last in it).
                captured.insert(0, _marker_table(spec))
            return capture.install(spec.source, spec.name, captured)
        except DuosyncError as exc:
            exc.task = spec.name
            raise
    conn = connect(spec.source)
    try:
        with driver_errors(spec.source):
            if spec.options.incremental_start is not None and MigrationType.FULL not in spec.types:
                return first_binlog_position(conn)
            return current_position(conn, spec.source.flavor.value)
    finally:
        conn.close()


def position_now(spec: TaskSpec) -> Position:
    """A position after every source transaction committed before the call."""
    if spec.source.flavor is Flavor.OCEANBASE:
        return capture.now(spec.source, spec.name)
    conn = connect(spec.source)
    try:
        with driver_errors(spec.source):
            return current_position(conn, spec.source.flavor.value)
    finally:
        conn.close()


def _marker_table(spec: TaskSpec) -> Table:
    conn = connect(spec.source)
    try:
        with driver_errors(spec.source), conn.cursor() as cur:
            checkpoint.ensure_table(cur)
    finally:
        conn.close()
    with open_inspector(spec.source) as insp:
        return insp.catalog([MARKER_TABLE[0]]).database(MARKER_TABLE[0]).table(MARKER_TABLE[1])
