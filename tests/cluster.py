"""Cluster nodes as test processes: ``duosync serve --cluster`` started, killed (-9),
paused (SIGSTOP) and resumed, and their API and ZooKeeper state read back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TOKEN = "cluster-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One ``duosync serve`` node of a test cluster."""

    name: str
    cluster: str
    store: str
    home: Path
    labels: tuple[str, ...] = ()
    session_timeout: float = 3.0
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.name}.log"

    def start(self, wait: bool = True) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DUOSYNC_API_TOKEN": TOKEN}
        labels = [arg for label in self.labels for arg in ("--label", label)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child's, closed below
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "duosync.cli",
                    "--home",
                    str(self.home),
                    "--store",
                    self.store,
                    "serve",
                    "--port",
                    str(self.port),
                    "--cluster",
                    self.cluster,
                    "--node",
                    self.name,
                    "--session-timeout",
                    str(self.session_timeout),
                    *labels,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        if wait:
            self.wait_answering()

    def wait_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.api as api:
            while True:
                try:
                    if api.get("/api/v1/cluster").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.proc is not None and self.proc.poll() is None, (
                    f"node {self.name} exited: {self.tail()}"
                )
                assert time.monotonic() < deadline, f"node {self.name} did not answer"
                time.sleep(0.2)

    def kill9(self) -> float:
        """SIGKILL the node; time.monotonic() of the kill."""
        assert self.proc is not None
        at = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        return at

    def pause(self) -> float:
        assert self.proc is not None
        at = time.monotonic()
        self.proc.send_signal(signal.SIGSTOP)
        return at

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def metric(self, name: str) -> float:
        with self.api as api:
            text = api.get("/metrics").text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"node {self.name}: no metric {name}")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.2) -> Any:
    """Poll *check* until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (httpx.HTTPError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {last!r})"
        time.sleep(every)
