"""The small set of interfaces every endpoint package offers (DESIGN.md section 2).

Only ``Inspector`` exists so far; ``SnapshotReader``, ``ChangeStream`` and
``Applier`` join it as the migration and sync phases land.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from duosync.core.catalog import Catalog, ServerInfo


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
