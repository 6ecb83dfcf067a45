"""The tests' ZooKeeper and PostgreSQL servers: each in a sandbox of its own, started
the first time a test asks for it, so that killing one (``ZooKeeperServer.kill9``)
never takes a MariaDB or OceanBase server from another test.

With ``DUOSYNC_TEST_SANDBOX`` set to a sandbox started with ``--zookeeper`` /
``--postgres``, its server is used instead and left running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from duosync.sandbox import ZOOKEEPER, Sandbox, ServerSpec
from tests.faults import kill9, pinned, restart


@dataclass
class ZooKeeperServer:
    """A running sandbox ZooKeeper, with the faults the coordination tests need."""

    box: Sandbox
    name: str
    #: the kazoo ``hosts`` string, 127.0.0.1:PORT
    hosts: str
    url: str

    @classmethod
    def of(cls, box: Sandbox, name: str = ZOOKEEPER.name) -> ZooKeeperServer:
        server = box.load().servers[name]
        return cls(box=box, name=name, hosts=f"127.0.0.1:{server.port}", url=server.url)

    def kill9(self) -> int:
        """SIGKILL the server; return once its pid is gone and its port closed."""
        return kill9(self.box, self.name)

    def restart(self, timeout: float = 60.0) -> None:
        """Start it again on the same port and data dir; return once it answers
        (harmless when it is serving already)."""
        restart(self.box, timeout=timeout)


def _reused(spec: ServerSpec) -> Sandbox | None:
    """The developer's sandbox (DUOSYNC_TEST_SANDBOX) if it has this server."""
    directory = os.environ.get("DUOSYNC_TEST_SANDBOX")
    if not directory:
        return None
    box = Sandbox(Path(directory), specs=[spec])
    server = box.load().servers.get(spec.name)
    if server is None or server.flavor != spec.flavor:
        return None
    box.up(timeout=120)  # harmless when it serves; starts it again when it was stopped
    return box


@contextlib.contextmanager
def reachable_tmpdir(prefix: str) -> Iterator[Path]:
    """A fresh directory under the system temp dir that other users may enter.

    PostgreSQL refuses to run as root, so as root the sandbox runs it as the
    postgres user, who must be able to reach its data dir: pytest's own temporary
    directories are private to us (mode 0700).
    """
    directory = Path(tempfile.mkdtemp(prefix=f"duosync-{prefix}-"))
    try:
        directory.chmod(0o711)  # enter, not list
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def server_sandbox(spec: ServerSpec, timeout: float = 120.0) -> Iterator[Sandbox]:
    """A sandbox serving only *spec*, its port pinned; purged afterwards unless reused."""
    reused = _reused(spec)
    if reused is not None:
        yield pinned(reused)
        return
    with reachable_tmpdir(spec.name) as directory:
        box = Sandbox(directory, specs=[spec])
        try:
            box.up(timeout=timeout)
            yield pinned(box)
        finally:
            box.down(purge=True)
