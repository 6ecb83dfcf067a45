"""The replication connection: one ``COM_BINLOG_DUMP`` session on a PyMySQL connection.

We speak the replica side of the protocol ourselves because what a binlog reader
needs from it is small: a few session variables, one command, then a stream of
packets each holding one event. PyMySQL has no public API for this, so the
command is sent with its internal ``_execute_command`` (as python-mysql-replication
does), and the event packets are then read straight off the connection's buffered
socket file (``_rfile``): PyMySQL's own ``_read_packet`` builds a packet object
and checks the sequence per packet, which cost a tenth of the reader's time on an
OLTP stream (one packet per event, ten events per small transaction). Those two
attributes are the whole surface we depend on; the connection is used for
nothing else once the dump runs.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pymysql

from duosync.config import Endpoint
from duosync.core.positions import BinlogPosition
from duosync.endpoints.mysql.connection import Connection, connect, query_all, translate
from duosync.errors import ConfigError, DuosyncError, FatalError, RetriableError

COM_BINLOG_DUMP = 0x12
#: server error: the requested position is in no binlog (purged, or never existed)
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236
#: MARIA_SLAVE_CAPABILITY_GTID: we understand GTID events. Below 4, MariaDB replaces
#: GTID events with dummy events (and 10.6.12 mishandles that with file+offset).
MARIADB_SLAVE_CAPABILITY = 4
_DUMP = struct.Struct("<IHI")  # position, flags, server id; then the file name
_MAX_HEARTBEAT_SECONDS = 4294967  # the server's limit for the period
#: MariaDB ER_SLAVE_SAME_ID: a dump with our server id is still connected (the
#: reader of a node that was paused or cut off, which the server drops soon)
ER_SLAVE_SAME_ID = 4052
#: a packet of this length continues in the next one (payloads over 16 MB)
_MAX_PACKET = 0xFFFFFF
#: CR_SERVER_LOST, what PyMySQL raises for a connection lost mid-read
_LOST = 2013

PURGED_HINT = (
    "run the task's full migration again (a new task, or reset this one) "
    "to start from a fresh position"
)


class ReplicationConnection:
    """A binlog dump from one position; read with ``read_packet`` until closed.

    Not thread-safe: one reader thread. The server knows this reader by
    ``server_id``, which must be unique among the replicas of that server: a second
    dump with the same id makes the server drop the first.
    """

    def __init__(self, endpoint: Endpoint, *, server_id: int, heartbeat_seconds: float) -> None:
        if not 1 <= server_id <= 0xFFFFFFFF:
            raise ConfigError(f"binlog reader server_id {server_id} must be 1..4294967295")
        if not heartbeat_seconds > 0:
            raise ConfigError(f"heartbeat_seconds must be > 0, not {heartbeat_seconds}")
        self.endpoint = endpoint
        self.server_id = server_id
        self.heartbeat_seconds = min(heartbeat_seconds, _MAX_HEARTBEAT_SECONDS)
        self._conn: Connection[Any] | None = None
        self._rfile: Any = None
        self.mariadb = False
        #: the checksum setting at connect: events before the first
        #: FORMAT_DESCRIPTION (the fake rotate) follow it
        self.checksum = False
        #: collation id -> character set name, as this server defines them
        self.charsets: dict[int, str] = {}

    def open(self, start: BinlogPosition) -> None:
        # No read ever waits longer than a few heartbeats: the server sends one
        # whenever it is idle, so silence this long means the connection is dead.
        read_timeout = max(10.0, 4 * self.heartbeat_seconds)
        conn = connect(self.endpoint, read_timeout=read_timeout)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@global.binlog_checksum")
                row = cur.fetchone()
                assert row is not None
                self.mariadb = "mariadb" in str(row[0]).lower()
                self.checksum = str(row[1]).upper() != "NONE"
                # Tell the server we can check its checksums, or it refuses to dump a
                # checksummed binlog; the value must equal the server's setting.
                cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
                cur.execute("SET @mariadb_slave_capability = %s", (MARIADB_SLAVE_CAPABILITY,))
                cur.execute(
                    "SET @master_heartbeat_period = %s",
                    (int(self.heartbeat_seconds * 1_000_000_000),),
                )
            self.charsets = _server_charsets(conn, self.mariadb)
            payload = _DUMP.pack(start.offset, 0, self.server_id) + start.file.encode()
            raw: Any = conn  # PyMySQL internals, see the module docstring
            raw._execute_command(COM_BINLOG_DUMP, payload)
            # set once: every read then waits at most this long
            raw._sock.settimeout(read_timeout)
            # Our own buffered file over the socket, with a larger buffer than
            # PyMySQL's (8 KB: a dump at 200k rows/s made ~10k reads a second).
            # PyMySQL's file holds nothing at this point: every answer before the
            # dump was read whole, and the server sends nothing unasked.
            self._rfile = raw._sock.makefile("rb", buffering=_READ_BUFFER)
        except pymysql.err.MySQLError as exc:
            conn.close()
            raise self.error(exc, start) from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def read_packet(self, file: str, offset: int) -> bytes | None:
        """The next event packet (``0x00`` + event), or None at the end of a
        non-blocking dump. *file* and *offset* (where we are) only name errors."""
        rfile = self._rfile
        if self._conn is None or rfile is None:
            raise FatalError("binlog connection is closed", endpoint=self.endpoint.display)
        try:
            data = _payload(rfile)
            if not data:
                raise pymysql.err.OperationalError(_LOST, "empty packet in the binlog dump")
            while len(data) % _MAX_PACKET == 0:  # continued in the next packet
                more = _payload(rfile)
                data += more
                if len(more) < _MAX_PACKET:
                    break
            if data[0] == 0xFF:  # an error packet: the server ends the dump
                pymysql.err.raise_mysql_exception(data)
        except OSError as exc:  # a timeout, a reset: as PyMySQL reports them
            here = BinlogPosition(file=file, offset=offset)
            lost = pymysql.err.OperationalError(_LOST, f"Lost connection to the server ({exc})")
            raise self.error(lost, here) from None
        except pymysql.err.MySQLError as exc:
            here = BinlogPosition(file=file, offset=offset)
            raise self.error(exc, here) from None
        if data[0] == 0xFE and len(data) < 9:  # EOF packet
            return None
        return data

    def error(self, exc: BaseException, position: BinlogPosition) -> DuosyncError:
        code = exc.args[0] if isinstance(exc, pymysql.err.MySQLError) and exc.args else None
        if code == ER_MASTER_FATAL_ERROR_READING_BINLOG:
            text = translate(exc, self.endpoint).message
            return FatalError(
                f"cannot read the binlog from {position.file}:{position.offset}: "
                f"the binlog was purged or the position is invalid ({text})",
                endpoint=self.endpoint.display,
                position=str(position),
                hint=PURGED_HINT,
            )
        if code == ER_SLAVE_SAME_ID:
            text = translate(exc, self.endpoint).message
            return RetriableError(
                f"cannot read the binlog yet: the task's previous reader is still connected"
                f" ({text})",
                endpoint=self.endpoint.display,
                position=str(position),
            )
        err = translate(exc, self.endpoint, action="read the binlog")
        err.position = str(position)
        return err

    def close(self) -> None:
        conn, self._conn = self._conn, None
        rfile, self._rfile = self._rfile, None
        if rfile is not None:
            with contextlib.suppress(OSError):
                rfile.close()
        if conn is not None:
            # Closing sends COM_QUIT, which a server in the middle of a dump may not
            # read; we only care that the socket is gone.
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                conn.close()


#: bytes of the dump read from the socket at a time
_READ_BUFFER = 256 << 10


def _payload(rfile: Any) -> bytes:
    """One packet's payload from *rfile* (its 4-byte header: length, sequence)."""
    header = rfile.read(4)
    if len(header) == 4:
        length = header[0] | header[1] << 8 | header[2] << 16
        data: bytes = rfile.read(length)
        if len(data) == length:
            return data
    raise pymysql.err.OperationalError(_LOST, "Lost connection to MySQL server during query")


def _server_charsets(conn: Connection[Any], mariadb: bool) -> dict[int, str]:
    """Collation id -> character set name, from the server itself: MariaDB and MySQL
    number some collations differently, and the client library knows only one."""
    rows = query_all(conn, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
    found = {int(r["ID"]): str(r["CHARACTER_SET_NAME"]) for r in rows if r["ID"] is not None}
    if mariadb:
        # MariaDB 10.10+ lists collations shared by several character sets
        # (uca1400) here with their full per-charset ids.
        try:
            more = query_all(
                conn,
                "SELECT ID, CHARACTER_SET_NAME "
                "FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
            )
        except pymysql.err.MySQLError:
            more = []
        for r in more:
            if r.get("ID") is not None:
                found.setdefault(int(r["ID"]), str(r["CHARACTER_SET_NAME"]))
    return found
