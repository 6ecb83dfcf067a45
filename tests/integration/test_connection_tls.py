"""Connections use TLS exactly when the server offers it (PyMySQL's default), with
one SSL context per process, and follow a server that starts or stops offering it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymysql.connections import Connection
from pymysql.constants import CLIENT

from duosync.config import Endpoint
from duosync.endpoints.mysql import connection
from duosync.sandbox import ServerSpec
from tests.servers import server_sandbox

pytestmark = pytest.mark.integration

#: a MariaDB of its own that offers TLS (the shared sandbox servers do not)
TLS_MARIADB = ServerSpec("mariadb_tls", "mariadb", 21, tls=True)


@pytest.fixture(scope="module")
def tls_mariadb() -> Iterator[Endpoint]:
    with server_sandbox(TLS_MARIADB) as box:
        (status,) = box.status()
        yield Endpoint.from_url(status.url)


def _cipher(conn: Connection[Any]) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    return "" if row is None else str(row[1])


def _offers_tls(endpoint: Endpoint) -> bool:
    conn = connection.connect(endpoint)
    try:
        return bool(conn.server_capabilities & CLIENT.SSL)  # type: ignore[attr-defined]
    finally:
        conn.close()


def test_a_server_offering_tls_gets_it_on_every_connection_from_one_context(
    tls_mariadb: Endpoint,
) -> None:
    assert _offers_tls(tls_mariadb)
    conns = [connection.connect(tls_mariadb) for _ in range(3)]
    try:
        assert all(_cipher(c) for c in conns), "a connection went in plain text"
        # after the first greeting every connection shares the process's context
        contexts = {id(c.ctx) for c in conns[1:]}  # type: ignore[attr-defined]
        assert contexts == {id(connection._context())}
    finally:
        for c in conns:
            c.close()


def test_a_server_that_started_offering_tls_gets_it(tls_mariadb: Endpoint) -> None:
    # What the process last saw of the server: no TLS (it was reconfigured since).
    connection._OFFERS_TLS[(tls_mariadb.host, tls_mariadb.port)] = False
    conn = connection.connect(tls_mariadb)
    try:
        assert _cipher(conn), "TLS is offered now, yet the connection is plain text"
    finally:
        conn.close()
    assert connection._OFFERS_TLS[(tls_mariadb.host, tls_mariadb.port)] is True


def test_a_server_that_stopped_offering_tls_still_connects(mariadb1: Endpoint) -> None:
    assert not _offers_tls(mariadb1), "the shared sandbox MariaDB offers no TLS"
    # What the process last saw of the server: TLS (it was reconfigured since).
    connection._OFFERS_TLS[(mariadb1.host, mariadb1.port)] = True
    conn = connection.connect(mariadb1)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
    assert connection._OFFERS_TLS[(mariadb1.host, mariadb1.port)] is False
