"""Session fixtures: one sandbox (2 MariaDB + 1 OceanBase) per test run.

The sandbox is started once, in a temporary directory, the first time a test asks
for a server, and stopped (data purged) at the end of the run. Every test works in
databases named after itself (``fresh_database``), so tests never see each other's
objects. Set ``DUOSYNC_TEST_SANDBOX`` to the directory of an already running
sandbox (``duosync sandbox up --dir D``) to reuse it across runs while developing;
it is then left running.

ZooKeeper (``zookeeper``) and PostgreSQL (``postgres``) run in sandboxes of their own,
started only when a test asks for them (see ``tests/servers.py``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from duosync.config import Endpoint, Flavor
from duosync.sandbox import POSTGRES, ZOOKEEPER, Sandbox, ServerStatus
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.spec import TaskSpec
from tests.helpers import admin_connection, run_sql
from tests.servers import ZooKeeperServer, server_sandbox


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
    # A reused sandbox (DUOSYNC_TEST_SANDBOX) may also hold ZooKeeper or PostgreSQL,
    # which are not endpoints (yet): their own fixtures serve them.
    flavors = {f.value for f in Flavor}
    return {s.name: Endpoint.from_url(s.url) for s in statuses if s.flavor in flavors}


@pytest.fixture(scope="session")
def mariadb1(sandbox_servers: dict[str, Endpoint]) -> Endpoint:
    return sandbox_servers["mariadb1"]


@pytest.fixture(scope="session")
def mariadb2(sandbox_servers: dict[str, Endpoint]) -> Endpoint:
    return sandbox_servers["mariadb2"]


@pytest.fixture(scope="session")
def oceanbase(sandbox_servers: dict[str, Endpoint]) -> Endpoint:
    return sandbox_servers["oceanbase1"]


@pytest.fixture(scope="session")
def zookeeper_box() -> Iterator[Sandbox]:
    """A sandbox with only ZooKeeper in it, up; purged at the end of the run."""
    with server_sandbox(ZOOKEEPER) as box:
        yield box


@pytest.fixture(scope="session")
def zookeeper(zookeeper_box: Sandbox) -> ZooKeeperServer:
    """The session's ZooKeeper server (``hosts``, ``url``, ``kill9()``, ``restart()``)."""
    return ZooKeeperServer.of(zookeeper_box)


@pytest.fixture(scope="session")
def postgres_box() -> Iterator[Sandbox]:
    """A sandbox with only PostgreSQL (wal_level=logical) in it; purged at the end."""
    with server_sandbox(POSTGRES) as box:
        yield box


@pytest.fixture(scope="session")
def postgres(postgres_box: Sandbox) -> str:
    """The session's PostgreSQL URL, postgresql://postgres@127.0.0.1:PORT/postgres."""
    return postgres_box.load().servers[POSTGRES.name].url


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


@pytest.fixture
def syncing(tmp_path: Path) -> Iterator[Callable[[TaskSpec], None]]:
    """Run a task's migration (with incremental) in a thread until the test ends."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    specs: list[TaskSpec] = []

    def start(spec: TaskSpec) -> None:
        specs.append(spec)

        def run() -> None:
            try:
                with MetadataStore.in_home(tmp_path / "sync-home") as store:
                    run_spec(spec, store, lambda _line: None, stop)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for t in threads:
        t.join(timeout=60)
    for spec in specs:  # the task's checkpoints on the target would outlive the test
        conn = admin_connection(spec.target)
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM oms.duosync_checkpoint WHERE task = %s", (spec.name,))
        finally:
            conn.close()
    assert not errors, errors
