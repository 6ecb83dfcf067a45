"""Connection failures give a clear error that names the endpoint, never the password."""

from __future__ import annotations

import socket

import pytest

from duosync.config import Endpoint
from duosync.endpoints import open_inspector
from duosync.errors import ConfigError, RetriableError
from duosync.service.phases.inspection import inspect_endpoint
from tests.helpers import run_sql

pytestmark = pytest.mark.integration

WRONG = "Wr0ng-Secret-42"
RIGHT = "R1ght-Secret-17"


def _user_with_password(endpoint: Endpoint, user: str) -> Endpoint:
    run_sql(
        endpoint,
        [
            f"DROP USER IF EXISTS '{user}'@'%'",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{RIGHT}'",
            f"GRANT SELECT ON *.* TO '{user}'@'%'",
        ],
    )
    return Endpoint.from_url(f"{endpoint.flavor}://{user}:{RIGHT}@{endpoint.host}:{endpoint.port}")


@pytest.mark.parametrize("server", ["mariadb1", "oceanbase1"])
def test_wrong_password(server: str, sandbox_servers: dict[str, Endpoint]) -> None:
    good = _user_with_password(sandbox_servers[server], "pw_user")
    # The right password works...
    assert inspect_endpoint(good).server.flavor == good.flavor.value
    # ...a wrong one is a configuration error naming the endpoint, not the password.
    bad = Endpoint.from_url(f"{good.flavor}://pw_user:{WRONG}@{good.host}:{good.port}")
    with pytest.raises(ConfigError) as err:
        open_inspector(bad)
    text = str(err.value)
    assert bad.display in text
    assert "Access denied" in text and "password" in (err.value.hint or "")
    assert WRONG not in text and WRONG not in repr(err.value)


def test_server_down_is_retriable_and_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    endpoint = Endpoint.from_url(f"mariadb://someone:{WRONG}@127.0.0.1:{port}?connect_timeout=3")
    with pytest.raises(RetriableError) as err:
        open_inspector(endpoint)
    text = str(err.value)
    assert f"mariadb://someone@127.0.0.1:{port}" in text
    assert "server running" in text
    assert WRONG not in text


def test_password_from_environment(
    sandbox_servers: dict[str, Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _user_with_password(sandbox_servers["mariadb1"], "env_user")
    monkeypatch.setenv("DUOSYNC_TEST_PW", RIGHT)
    via_env = Endpoint.from_url(
        f"mariadb://env_user@{good.host}:{good.port}?password_env=DUOSYNC_TEST_PW"
    )
    assert inspect_endpoint(via_env).server.flavor == "mariadb"
    monkeypatch.delenv("DUOSYNC_TEST_PW")
    with pytest.raises(ConfigError) as err:
        open_inspector(via_env)
    assert "DUOSYNC_TEST_PW" in str(err.value) and via_env.display in str(err.value)


def test_scheme_must_match_server_family(oceanbase: Endpoint, mariadb1: Endpoint) -> None:
    wrong = Endpoint.from_url(f"mariadb://root@{oceanbase.host}:{oceanbase.port}")
    with pytest.raises(ConfigError) as err:
        open_inspector(wrong)
    assert "server is oceanbase" in str(err.value)
    # mysql:// for a MariaDB server is fine: the server says what it is.
    as_mysql = Endpoint.from_url(f"mysql://root@{mariadb1.host}:{mariadb1.port}")
    assert inspect_endpoint(as_mysql).server.flavor == "mariadb"
