"""Each kind of transient fault, provoked on a real server, comes out of the
endpoint boundary as a ``RetriableError`` naming the endpoint (the task runner
retries those): a lock wait timeout, a deadlock, a killed connection, a read-only
server, a statement that outlives its read timeout. A refused value is a
``DataError``; a syntax error is fatal, never retried."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import connect, driver_errors
from duosync.errors import DataError, FatalError, RetriableError
from tests.helpers import admin_connection, run_sql

pytestmark = pytest.mark.integration


@pytest.fixture(params=["mariadb", "oceanbase"])
def server(request: pytest.FixtureRequest, mariadb2: Endpoint, oceanbase: Endpoint) -> Endpoint:
    return mariadb2 if request.param == "mariadb" else oceanbase


@pytest.fixture
def table(server: Endpoint, fresh_database: Callable[..., str]) -> Iterator[str]:
    db = fresh_database(server)
    run_sql(
        server,
        ["CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 0), (2, 0)"],
        db,
    )
    yield f"`{db}`.`t`"


def _ours(endpoint: Endpoint, statements: list[str], args: Any = None) -> None:
    """*statements* on a duosync connection, errors translated at the boundary."""
    conn = connect(endpoint)
    try:
        with driver_errors(endpoint), conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql, args)
    finally:
        conn.close()


def test_lock_wait_timeout_is_retriable(server: Endpoint, table: str) -> None:
    holder = admin_connection(server)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")
        timeout = (
            "SET SESSION ob_trx_lock_timeout = 1000000"
            if server.flavor.value == "oceanbase"
            else "SET SESSION innodb_lock_wait_timeout = 1"
        )
        with pytest.raises(RetriableError) as caught:
            _ours(server, [timeout, "BEGIN", f"UPDATE {table} SET v = 2 WHERE id = 1"])
        assert caught.value.endpoint == server.display
    finally:
        holder.rollback()
        holder.close()


def test_deadlock_victim_on_our_side_is_retriable(
    mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """A lock cycle in which InnoDB rolls our transaction back: it picks the one
    that changed fewer rows, and the other one changed a hundred."""
    db = fresh_database(mariadb2)
    run_sql(
        mariadb2,
        ["CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 0), (2, 0)"],
        db,
    )
    other = admin_connection(mariadb2, db)
    conn = connect(mariadb2, database=db)
    try:
        with other.cursor() as oc:
            oc.execute("BEGIN")
            oc.execute("UPDATE t SET v = 1 WHERE id = 1 OR id > 100")
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE t SET v = 2 WHERE id = 2")

        def wait_for_two() -> None:
            try:
                with other.cursor() as oc:
                    oc.execute("UPDATE t SET v = 1 WHERE id = 2")
            except pymysql.err.MySQLError:
                pass

        waiter = threading.Thread(target=wait_for_two)
        waiter.start()
        threading.Event().wait(1.0)  # let it block on row 2
        with pytest.raises(RetriableError) as caught, driver_errors(mariadb2), conn.cursor() as cur:
            cur.execute("UPDATE t SET v = 2 WHERE id = 1")
        assert "1213" in str(caught.value)
        conn.rollback()
        waiter.join(30)
        other.rollback()
    finally:
        other.close()
        conn.close()


def test_a_killed_connection_is_retriable(server: Endpoint) -> None:
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            row = cur.fetchone()
            assert row is not None
        run_sql(server, [f"KILL {int(row[0])}"])
        with pytest.raises(RetriableError) as caught, driver_errors(server), conn.cursor() as cur:
            cur.execute("SELECT 1")
        assert caught.value.endpoint == server.display
    finally:
        with contextlib.suppress(pymysql.err.Error):
            conn.close()


def test_a_read_only_server_is_retriable(
    mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """A target in read-only mode (a replica promoted late, a failover under way)."""
    db = fresh_database(mariadb2)
    run_sql(mariadb2, ["CREATE TABLE t (id INT PRIMARY KEY)"], db)
    user = "duosync_ro_probe"
    run_sql(
        mariadb2,
        [
            f"DROP USER IF EXISTS '{user}'@'%'",
            f"CREATE USER '{user}'@'%'",
            f"GRANT INSERT, SELECT ON `{db}`.* TO '{user}'@'%'",
        ],
    )
    writer = Endpoint.from_url(f"mariadb://{user}@{mariadb2.host}:{mariadb2.port}")
    run_sql(mariadb2, ["SET GLOBAL read_only = 1"])
    try:
        with pytest.raises(RetriableError) as caught:
            _ours(writer, [f"INSERT INTO `{db}`.t VALUES (1)"])
        assert "read-only" in str(caught.value)
    finally:
        run_sql(mariadb2, ["SET GLOBAL read_only = 0", f"DROP USER IF EXISTS '{user}'@'%'"])


def test_a_statement_past_its_read_timeout_is_retriable(server: Endpoint) -> None:
    """What a half-open link looks like from our side: no answer at all."""
    conn = connect(server, read_timeout=1)
    try:
        sleep = "SELECT SLEEP(5)"
        with pytest.raises(RetriableError) as caught, driver_errors(server), conn.cursor() as cur:
            cur.execute(sleep)
        assert "2013" in str(caught.value)
    finally:
        with contextlib.suppress(pymysql.err.Error):
            conn.close()


def test_refused_value_is_data_error_and_syntax_is_fatal(server: Endpoint, table: str) -> None:
    with pytest.raises(DataError):
        _ours(
            server,
            [
                "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'",
                f"INSERT INTO {table} VALUES (NULL, 1)",
            ],
        )
    with pytest.raises(FatalError):
        _ours(server, [f"INSERT INTO {table} VALUE SS (3, 1)"])
