"""``duosync serve`` as a user runs it: tasks resume after the service restarts,
whether it was stopped (SIGTERM) or killed (-9). The two sides' rows are the
oracle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from duosync.config import Endpoint
from tests.helpers import query, run_sql

pytestmark = pytest.mark.e2e

TOKEN = "serve-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )

    def start(self) -> None:
        env = {**os.environ, "DUOSYNC_API_TOKEN": TOKEN}
        log = open(self.home.parent / f"serve-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "duosync.cli",
                "--home",
                str(self.home),
                "serve",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.api.get("/api/v1/tasks").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, "duosync serve exited"
            assert time.monotonic() < deadline, "duosync serve did not answer"
            time.sleep(0.2)

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def wait_state(self, name: str, wanted: set[str], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task: dict[str, Any] = self.api.get(f"/api/v1/tasks/{name}").json()
            if task["state"] in wanted:
                return task
            assert time.monotonic() < deadline, f"{name} stayed {task['state']}: {task['error']}"
            time.sleep(0.3)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "home")
    svc.start()
    try:
        yield svc
    finally:
        if svc.proc is not None:
            for task in svc.api.get("/api/v1/tasks").json():
                if "pause" in task["actions"]:
                    svc.api.post(f"/api/v1/tasks/{task['name']}/pause")
            svc.stop(signal.SIGTERM)


def _same(src: Endpoint, a: str, dst: Endpoint, b: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = query(src, f"SELECT * FROM {a} ORDER BY id")
        if left == query(dst, f"SELECT * FROM {b} ORDER BY id"):
            return
        assert time.monotonic() < deadline, f"{b} did not converge to {a}"
        time.sleep(0.3)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_tasks_resume_after_the_service_restarts(
    service: Service,
    how: int,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(oceanbase, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
            "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000",
        ],
        database=src,
    )
    spec = {
        "name": "restart-me",
        "source": f"mariadb://root@{mariadb1.host}:{mariadb1.port}",
        "target": f"oceanbase://root@{oceanbase.host}:{oceanbase.port}",
        "types": ["schema", "full", "incremental"],
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
    }
    assert service.api.post("/api/v1/tasks", json=spec).status_code == 201
    assert service.api.post("/api/v1/tasks/restart-me/start").status_code == 200
    service.wait_state("restart-me", {"incremental_monitoring"})
    _same(mariadb1, f"{src}.t", oceanbase, f"{dst}.t")

    service.stop(how)
    # written while no service runs: the restarted one must bring them
    run_sql(
        mariadb1,
        ["UPDATE t SET v = 'changed' WHERE id <= 500", "DELETE FROM t WHERE id > 2900"],
        database=src,
    )
    service.start()
    task = service.wait_state("restart-me", {"incremental_monitoring"})
    _same(mariadb1, f"{src}.t", oceanbase, f"{dst}.t")
    assert query(oceanbase, f"SELECT COUNT(*) FROM {dst}.t WHERE v = 'changed'") == [(500,)]
    # the service restart is no phase change: no second copy, no pause
    assert [e["to"] for e in task["history"]].count("full_migration") == 1
    assert "paused" not in [e["to"] for e in task["history"]]
