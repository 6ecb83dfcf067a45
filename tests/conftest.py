"""Session fixtures: one sandbox (2 MariaDB + 1 OceanBase) per test run.

The sandbox is started once, in a temporary directory, the first time a test asks
for a server, and stopped (data purged) at the end of the run. Every test works in
databases named after itself (``fresh_database``), so tests never see each other's
objects. Set ``DUOSYNC_TEST_SANDBOX`` to the directory of an already running
sandbox (``duosync sandbox up --dir D``) to reuse it across runs while developing;
it is then left running.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from duosync.config import Endpoint
from duosync.sandbox import Sandbox, ServerStatus
from tests.helpers import run_sql


@pytest.fixture(scope="session")
def sandbox_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The session's sandbox, its servers up."""
    reuse = os.environ.get("DUOSYNC_TEST_SANDBOX")
    box = Sandbox(Path(reuse) if reuse else tmp_path_factory.mktemp("sandbox"))
    box.up(timeout=240)
    try:
        yield box
    finally:
        if not reuse:
            box.down(purge=True)


@pytest.fixture(scope="session")
def sandbox_servers(sandbox_box: Sandbox) -> dict[str, Endpoint]:
    statuses: list[ServerStatus] = sandbox_box.status()
    return {s.name: Endpoint.from_url(s.url) for s in statuses}


@pytest.fixture(scope="session")
def mariadb1(sandbox_servers: dict[str, Endpoint]) -> Endpoint:
    return sandbox_servers["mariadb1"]


@pytest.fixture(scope="session")
def mariadb2(sandbox_servers: dict[str, Endpoint]) -> Endpoint:
    return sandbox_servers["mariadb2"]


@pytest.fixture(scope="session")
def oceanbase(sandbox_servers: dict[str, Endpoint]) -> Endpoint:
    return sandbox_servers["oceanbase1"]


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Make an empty database named after the test on an endpoint; dropped afterwards."""
    created: list[tuple[Endpoint, str]] = []

    def make(endpoint: Endpoint, suffix: str = "") -> str:
        base = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
        name = f"t_{base}{'_' + suffix if suffix else ''}"
        run_sql(endpoint, [f"DROP DATABASE IF EXISTS `{name}`", f"CREATE DATABASE `{name}`"])
        created.append((endpoint, name))
        return name

    yield make
    for endpoint, name in created:
        run_sql(endpoint, [f"DROP DATABASE IF EXISTS `{name}`"])
