"""The sandbox's ZooKeeper and PostgreSQL servers: they serve, keep their data across
a kill -9 and a restart, and go away without a trace with ``down --purge``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.retry import KazooRetry

from duosync.sandbox import POSTGRES, ZOOKEEPER, Sandbox, ServerSpec, zookeeper_command
from tests.faults import port_accepts
from tests.servers import ZooKeeperServer, reachable_tmpdir

pytestmark = pytest.mark.integration


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.1)


def _client(zookeeper: ZooKeeperServer, session_timeout: float = 10.0) -> KazooClient:
    # Retry connecting for ever, quickly: the server comes back within seconds.
    retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=0.5)
    client = KazooClient(hosts=zookeeper.hosts, timeout=session_timeout, connection_retry=retry)
    client.start(timeout=15)
    return client


def _path(name: str) -> str:
    return f"/duosync-test/{name}-{uuid.uuid4().hex[:8]}"


def test_zookeeper_serves_znodes(zookeeper: ZooKeeperServer) -> None:
    assert zookeeper.url == f"zk://{zookeeper.hosts}"
    assert zookeeper_command(_port(zookeeper.url), "ruok") == "imok"
    client = _client(zookeeper)
    try:
        path = _path("serves")
        client.create(path, b"hello", makepath=True)
        data, stat = client.get(path)
        assert data == b"hello"
        assert stat.version == 0
    finally:
        client.stop()
        client.close()


def test_zookeeper_keeps_znodes_across_kill9_and_restart(zookeeper: ZooKeeperServer) -> None:
    path = _path("durable")
    client = _client(zookeeper)
    try:
        client.create(path, b"kept", makepath=True)
    finally:
        client.stop()
        client.close()
    old_pid = zookeeper.kill9()
    try:
        assert not port_accepts(_port(zookeeper.url))
    finally:
        zookeeper.restart()
    new_pid = zookeeper.box.load().servers[zookeeper.name].pid
    assert new_pid is not None and new_pid != old_pid
    client = _client(zookeeper)
    try:
        assert client.get(path)[0] == b"kept"
    finally:
        client.stop()
        client.close()


def test_zookeeper_client_with_short_session_reconnects_after_restart(
    zookeeper: ZooKeeperServer,
) -> None:
    # tickTime=500 lets the server grant 2 s sessions (2 to 20 ticks: 1 s to 10 s).
    client = _client(zookeeper, session_timeout=2.0)
    states: list[KazooState] = []
    client.add_listener(states.append)
    try:
        path = _path("reconnect")
        client.create(path, b"before", makepath=True)
        zookeeper.kill9()
        try:
            _wait_for("the client notices the server is gone", lambda: not client.connected)
        finally:
            zookeeper.restart()
        _wait_for("the client reconnects", lambda: client.connected)
        assert KazooState.SUSPENDED in states
        # The old session may have expired while the server was down: a new one then.
        client.set(path, b"after")
        assert client.get(path)[0] == b"after"
    finally:
        client.stop()
        client.close()


def test_postgres_serves_logical_wal(postgres: str) -> None:
    assert postgres.startswith("postgresql://postgres@127.0.0.1:")
    assert postgres.endswith("/postgres")
    with psycopg.connect(postgres, connect_timeout=10) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
        assert row == ("logical",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        conn.execute("CREATE TABLE IF NOT EXISTS sandbox_probe (id int PRIMARY KEY)")
        conn.execute("DROP TABLE sandbox_probe")


@pytest.mark.parametrize("spec", [ZOOKEEPER, POSTGRES], ids=lambda s: s.flavor)
def test_up_status_down_purge(spec: ServerSpec) -> None:
    """A private sandbox of its own: stopping it takes no server from another test."""
    with reachable_tmpdir(f"lifecycle-{spec.flavor}") as directory:
        box = Sandbox(directory, specs=[spec])
        try:
            started = time.monotonic()
            box.up(timeout=60)
            print(f"{spec.name} served {time.monotonic() - started:.2f}s after up")
            (status,) = box.status()
            assert status.name == spec.name and status.serving and status.pid is not None
            server = box.load().servers[spec.name]
            # The pid is ours only because the server's command line names its data dir.
            cmdline = Path(f"/proc/{status.pid}/cmdline").read_bytes().replace(b"\0", b" ")
            assert server.datadir.encode() in cmdline
            assert box.up(timeout=60)[0].pid == status.pid  # `up` twice is harmless
        finally:
            assert box.down(purge=True) in ([spec.name], [])
        assert not port_accepts(server.port)
        assert not Path(server.datadir).exists()
        assert box.status() == []


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _duosync(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        check=False,
    )


def test_cli_sandbox_up_with_zookeeper_and_postgres(tmp_path: Path) -> None:
    with reachable_tmpdir("cli") as directory:
        box = str(directory / "box")
        urls: dict[str, str] = {}
        try:
            up = _duosync(
                "sandbox", "up", "--zookeeper", "--postgres", "--no-oceanbase", "--dir", box,
                home=tmp_path,
            )  # fmt: skip
            assert up.returncode == 0, up.stderr
            for line in up.stdout.splitlines():
                name, url = line.split()
                urls[name] = url
            assert set(urls) == {"mariadb1", "mariadb2", "zookeeper1", "postgres1"}
            assert urls["zookeeper1"].startswith("zk://127.0.0.1:")
            assert urls["postgres1"].startswith("postgresql://postgres@127.0.0.1:")
            with psycopg.connect(urls["postgres1"], connect_timeout=10) as conn:
                assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
            assert zookeeper_command(_port(urls["zookeeper1"]), "ruok") == "imok"

            status = _duosync("sandbox", "status", "--dir", box, home=tmp_path)
            assert status.returncode == 0, status.stderr
            for name in urls:
                line = next(x for x in status.stdout.splitlines() if x.startswith(name))
                assert "serving" in line, status.stdout
        finally:
            down = _duosync("sandbox", "down", "--purge", "--dir", box, home=tmp_path)
        assert down.returncode == 0, down.stderr
        assert "zookeeper1" in down.stdout and "postgres1" in down.stdout
        for url in urls.values():
            assert not port_accepts(_port(url))
        assert not Path(box, "postgres1").exists() and not Path(box, "zookeeper1").exists()
