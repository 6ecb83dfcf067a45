"""What the benches read from a sandbox server's URL."""

from __future__ import annotations

from urllib.parse import urlsplit


def port_of(url: str) -> int:
    """The port of a sandbox URL (``flavor://user@host:port[/database]``).

    urlsplit, not a split at the last colon: a PostgreSQL sandbox URL names a
    database after the port.
    """
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in sandbox URL {url}")
    return port
