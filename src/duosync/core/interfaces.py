"""The small set of interfaces every endpoint package offers (DESIGN.md section 2).

``Inspector`` and ``ChangeStream`` are protocols here; the snapshot reader and the
applier exist once (MySQL-family SQL serves every family so far) and join this
module when a second family needs its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from duosync.core.catalog import Catalog, ServerInfo
from duosync.core.events import Fragment, Heartbeat, Transaction
from duosync.core.positions import Position


class Inspector(Protocol):
    """Reads an endpoint's catalog into the neutral model.

    Contract: read-only (never changes the server); one connection, used from one
    thread; every method may raise ``DuosyncError`` subclasses naming the endpoint.
    ``catalog`` takes a consistent look per call, but DDL running concurrently on the
    server may make tables appear or vanish between two calls.
    """

    def server_info(self) -> ServerInfo:
        """Flavour, version and the settings change capture depends on."""
        ...

    def list_databases(self) -> list[str]:
        """User databases, without system schemas and without our own ``oms`` database."""
        ...

    def catalog(self, databases: Sequence[str] | None = None) -> Catalog:
        """The catalog of *databases* (default: every user database).

        A named database that does not exist raises ``ConfigError``.
        """
        ...

    def close(self) -> None: ...


class ChangeStream(Protocol):
    """Committed source transactions, whole and in commit order, from a position.

    Contract: ``read(stop)`` yields ``Transaction``s strictly after the start
    position and ``Heartbeat``s while idle, returning soon after *stop* is set and
    never mid-transaction; a stream given a fragment size yields a large
    transaction's rows first as ``Fragment``s (the contract of ``Fragment``);
    ``position`` is where the next ``read`` would start (the
    last item yielded). ``confirm(p)`` may be called from any thread once every
    change up to ``p`` is durably applied (a log the source keeps for us may then be
    trimmed). One reader thread.
    """

    @property
    def position(self) -> Position: ...

    def read(self, stop: threading.Event) -> Iterator[Transaction | Heartbeat | Fragment]: ...

    def confirm(self, position: Position) -> None: ...

    def close(self) -> None: ...
