"""``LOAD DATA LOCAL INFILE`` fed from memory.

A full copy's chunk is tab-separated text rendered by the source server
(``endpoints.mysql.tsv``). Loading it costs the target far less CPU than parsing the same
rows as an INSERT's VALUES list: MariaDB spent 2.7 s of a 1M-row copy's 4 s in the
INSERT parser and the row-by-row expression evaluation behind it.

PyMySQL's own LOCAL support opens whatever file name the server asks for, which
would both need the chunk written to disk and let a hostile server read any file
of ours. Here the statement names a token, the server's request must name that
same token, and the bytes sent are the chunk in memory and nothing else.

What the server answers is returned, not judged: with LOCAL a value the column
refuses becomes a warning (and the value is cut or zeroed), and a duplicate key
skips the row, because the server cannot stop the client mid-stream. The caller
must treat any warning or a row count other than the lines sent as a failed load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymysql import err
from pymysql.connections import Connection
from pymysql.constants import COMMAND, CR
from pymysql.protocol import LoadLocalPacketWrapper, OKPacketWrapper

#: bytes per protocol packet of the data stream (the server takes up to 16 MB each;
#: larger packets only cost a larger copy in ``write_packet``)
_PACKET = 1 << 20


@dataclass(frozen=True)
class LoadResult:
    """The server's answer to one load: rows written, and warnings raised."""

    rows: int
    warnings: int
    #: the server's summary, e.g. ``Records: 3  Deleted: 0  Skipped: 0  Warnings: 0``
    message: str


def load_local(
    conn: Connection[Any], statement: str, token: str, data: Sequence[bytes]
) -> LoadResult:
    """Run *statement* (a ``LOAD DATA LOCAL INFILE '<token>' ...``); the file is
    the pieces of *data* one after the other.

    The connection must have been opened with ``local_infile=True``. Driver errors
    are PyMySQL's, as for any statement (``connection.translate`` classifies them).
    """
    # PyMySQL's packet layer is not in its type stubs (nor its public API: the
    # releases taken are capped in pyproject.toml for this and the binlog reader)
    raw: Any = conn
    raw._execute_command(COMMAND.COM_QUERY, statement)
    first = raw._read_packet()  # an error packet raises here
    if not first.is_load_local_packet():
        if first.is_ok_packet():
            ok = OKPacketWrapper(first)
            return LoadResult(ok.affected_rows, ok.warning_count, _text(ok.message))
        raise err.OperationalError(CR.CR_COMMANDS_OUT_OF_SYNC, "unexpected answer to LOAD DATA")
    requested = _text(LoadLocalPacketWrapper(first).filename)
    try:
        if requested == token:
            for piece in data:
                view = memoryview(piece)
                for offset in range(0, len(view), _PACKET):
                    raw.write_packet(bytes(view[offset : offset + _PACKET]))
    finally:
        raw.write_packet(b"")  # end of file, also after a refused request
    answer = raw._read_packet()
    if requested != token:
        # The server loaded an empty file; its answer is read so the link stays usable.
        raise err.OperationalError(
            CR.CR_COMMANDS_OUT_OF_SYNC,
            f"the server asked for local file {requested!r}, not the one named",
        )
    if not answer.is_ok_packet():
        raise err.OperationalError(CR.CR_COMMANDS_OUT_OF_SYNC, "Commands Out of Sync")
    ok = OKPacketWrapper(answer)
    return LoadResult(ok.affected_rows, ok.warning_count, _text(ok.message))


def _text(message: Any) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    # an OK packet's message is a length-prefixed string: its first byte is the length
    return text[text.find("Records") :] if "Records" in text else text
