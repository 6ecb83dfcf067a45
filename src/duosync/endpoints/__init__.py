"""Endpoint packages, one per database family, and the factory that picks one.

The URL scheme says what the user expects; the server says what it is. They must
agree on OceanBase versus the rest (the capture method and dialect differ), while
``mysql://`` for a MariaDB server (or the reverse) is accepted: the server wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from duosync.config import Endpoint, Flavor
from duosync.endpoints.mysql.connection import connect, driver_errors, query_all, translate
from duosync.endpoints.mysql.inspector import MariaDBInspector, MySQLInspector
from duosync.endpoints.oceanbase.inspector import OceanBaseInspector
from duosync.errors import ConfigError, DuosyncError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from duosync.core.catalog import Table
    from duosync.core.checks import CheckResult
    from duosync.core.interfaces import ChangeStream, ChunkSink, SchemaSink, SnapshotReader
    from duosync.core.positions import Position


def detect_flavor(version_string: str, version_comment: str) -> Flavor:
    """Which family a server belongs to, from ``VERSION()`` and ``@@version_comment``."""
    text = f"{version_string} {version_comment}".lower()
    if "oceanbase" in text:
        return Flavor.OCEANBASE
    if "mariadb" in text:
        return Flavor.MARIADB
    return Flavor.MYSQL


def open_inspector(endpoint: Endpoint) -> MySQLInspector:
    """Connect to *endpoint* and return the inspector for the family it really is."""
    if endpoint.flavor is Flavor.POSTGRESQL:
        raise ConfigError(
            f"{endpoint.display}: inspecting a PostgreSQL endpoint is not supported yet"
            " (it can be the target of schema and full migration)",
            endpoint=endpoint.display,
        )
    conn = connect(endpoint)
    try:
        with driver_errors(endpoint):
            row = query_all(conn, "SELECT VERSION() AS v, @@version_comment AS c")[0]
        flavor = detect_flavor(str(row["v"]), str(row["c"]))
        if (flavor is Flavor.OCEANBASE) != (endpoint.flavor is Flavor.OCEANBASE):
            raise ConfigError(
                f"the URL says {endpoint.flavor.value} but the server is {flavor.value}"
                f" ({row['v']})",
                endpoint=endpoint.display,
                hint=f"use a {flavor.value}:// URL for this server",
            )
    except BaseException:
        conn.close()
        raise
    cls = {
        Flavor.OCEANBASE: OceanBaseInspector,
        Flavor.MARIADB: MariaDBInspector,
        Flavor.MYSQL: MySQLInspector,
    }[flavor]
    return cls(endpoint, conn)


def escaped_driver_error(
    exc: BaseException, endpoints: tuple[Endpoint, ...]
) -> DuosyncError | None:
    """A driver exception that got past the endpoint boundary untranslated (a bug:
    every driver call should translate its errors), classified as it would have
    been; None for anything that is not a driver error. The endpoint is not known
    here: the first of *endpoints* whose host:port the message names, else none."""
    import pymysql  # the one driver of the MySQL family

    if not isinstance(exc, pymysql.err.MySQLError | ConnectionError | TimeoutError):
        return None
    text = str(exc)
    for endpoint in endpoints:
        if f"{endpoint.host}:{endpoint.port}" in text or f"'{endpoint.host}'" in text:
            return translate(exc, endpoint)
    error = translate(exc, endpoints[0]) if endpoints else None
    if error is not None:
        error.endpoint = None  # unknown: do not name the wrong one
    return error


def open_snapshot_reader(endpoint: Endpoint) -> SnapshotReader:
    """A full copy's reader of *endpoint* (one connection; ``SnapshotReader``)."""
    from duosync.endpoints.mysql.snapshot import MySQLSnapshotReader  # every family so far

    return MySQLSnapshotReader(endpoint)


def open_chunk_sink(endpoint: Endpoint) -> ChunkSink:
    """A full copy's writer to *endpoint* (one connection; ``ChunkSink``)."""
    if endpoint.flavor is Flavor.POSTGRESQL:
        from duosync.endpoints.postgres.chunk_sink import PostgresChunkSink
        from duosync.endpoints.postgres.connection import conninfo

        return PostgresChunkSink(conninfo(endpoint), endpoint.display)
    from duosync.endpoints.mysql.chunk_sink import MySQLChunkSink

    return MySQLChunkSink(endpoint)


def open_schema_sink(endpoint: Endpoint) -> SchemaSink:
    """The schema phase's writer to a PostgreSQL *endpoint* (``SchemaSink``)."""
    if endpoint.flavor is not Flavor.POSTGRESQL:
        raise ConfigError(
            f"{endpoint.display}: a schema sink is for PostgreSQL targets",
            endpoint=endpoint.display,
        )
    from duosync.endpoints.postgres.schema import PostgresSchemaSink

    return PostgresSchemaSink(endpoint)


def target_checks(
    endpoint: Endpoint, tables: Sequence[tuple[str, str]], own: frozenset[tuple[str, str]]
) -> list[CheckResult]:
    """The ``target.*`` pre-check items of a PostgreSQL *endpoint* for *tables*."""
    from duosync.endpoints.postgres.prechecks import target_checks as checks

    return checks(endpoint, tables, own)


def check_row_filters(
    endpoint: Endpoint, task: str, filters: Mapping[str, str], tables: Sequence[Table]
) -> None:
    """Each row filter of *task* names one of *tables* and is valid on *endpoint*
    (the source); ``ConfigError`` naming the first that is not."""
    from duosync.endpoints.mysql.filter_check import check_row_filters as check

    check(endpoint, task, filters, tables)


def open_change_stream(
    endpoint: Endpoint,
    start: Position,
    *,
    consumer: str,
    server_id: int,
    tables: Callable[[str, str], bool],
    databases: Callable[[], Sequence[str]],
    say: Callable[[str], None],
    ddl: bool = True,
    fragment_rows: int | None = None,
) -> ChangeStream:
    """The change stream of source *endpoint* from *start*: its binlog for a binlog
    position (read as replica *server_id*), else OceanBase's trigger log (read as
    *consumer*, watching *databases* for new selected tables). *tables* says which
    tables' rows are yielded (``core.interfaces.ChangeStream``)."""
    from duosync.core.positions import BinlogPosition

    if isinstance(start, BinlogPosition):
        from duosync.endpoints.mysql.binlog import BinlogStream

        return BinlogStream(
            endpoint, start, server_id=server_id, tables=tables, fragment_rows=fragment_rows
        )
    from duosync.endpoints.oceanbase.capture import TriggerLogStream

    return TriggerLogStream(
        endpoint,
        start,
        consumer=consumer,
        tables=tables,
        databases=list(databases()),
        say=say,
        ddl=ddl,
        fragment_rows=fragment_rows,
    )
