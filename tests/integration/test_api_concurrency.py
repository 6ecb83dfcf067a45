"""The REST API under concurrent clients, over a real HTTP server (uvicorn in a
thread, so requests are served on its pool of threads as ``duosync serve`` does):
list, show, progress, pre-checks and /metrics asked at once from many threads while
a task is started, copies, syncs, is paused and resumed. No answer may be a 5xx (the
metadata store used to be shared across threads), and every body must be right."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from duosync.api.app import create_app
from duosync.config import Endpoint
from duosync.service.runtime.states import State
from tests.helpers import query, run_sql

pytestmark = pytest.mark.integration

TOKEN = "concurrency-token-0123456789abcdef"
THREADS = 12
REQUESTS = 25  # per thread and burst
RUN, IDLE = "conc-run", "conc-idle"
STATES = {s.value for s in State}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The app (and its supervisor, through the lifespan) behind a real uvicorn."""
    port = _free_port()
    app = create_app(tmp_path / "duosync.db", TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "uvicorn exited"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


@dataclass
class Seen:
    """What the clients got: every problem, and the states the running task showed."""

    answers: int = 0
    problems: list[str] = field(default_factory=list)
    states: set[str] = field(default_factory=set)
    prechecks: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrong(self, what: str) -> None:
        with self.lock:
            self.problems.append(what)


def _check(seen: Seen, path: str, got: httpx.Response) -> None:
    """One answer: 200, and a body that says the right thing."""
    if got.status_code != 200:
        seen.wrong(f"GET {path}: {got.status_code} {got.text[:300]}")
        return
    if path == "/metrics":
        text = got.text
        if "# TYPE duosync_task_phase gauge" not in text or f'task="{RUN}"' not in text:
            seen.wrong(f"GET /metrics: no duosync_task_phase for {RUN}: {text[:300]}")
        # exactly one phase is 1 per task
        ones = [
            line
            for line in text.splitlines()
            if line.startswith("duosync_task_phase{") and f'task="{RUN}"' in line
            if line.endswith(" 1.0")
        ]
        if len(ones) != 1:
            seen.wrong(f"GET /metrics: {len(ones)} phases at 1 for {RUN}")
        return
    body: Any = got.json()
    if path == "/api/v1/tasks":
        names = [t["name"] for t in body]
        if sorted(names) != sorted([RUN, IDLE]):
            seen.wrong(f"GET {path}: names {names}")
        return
    name = path.split("/")[4]
    if path.endswith("/prechecks"):
        if not isinstance(body, list) or (name == IDLE and body):
            seen.wrong(f"GET {path}: {body!r:.300}")
        elif name == RUN:
            with seen.lock:
                seen.prechecks.update(c["name"] for c in body)
        return
    # show and progress
    if body.get("name") != name or body.get("state") not in STATES:
        seen.wrong(f"GET {path}: {body!r:.300}")
        return
    if path.endswith("/progress") and "phase" not in body:
        seen.wrong(f"GET {path}: no phase: {body!r:.300}")
    if name == RUN:
        with seen.lock:
            seen.states.add(body["state"])
    elif body["state"] != "not_started":
        seen.wrong(f"GET {path}: the idle task is {body['state']}")


def _paths() -> list[str]:
    paths = ["/api/v1/tasks", "/metrics"]
    for name in (RUN, IDLE):
        paths += [f"/api/v1/tasks/{name}{end}" for end in ("", "/progress", "/prechecks")]
    return paths


def _burst(base_url: str, seen: Seen, action: Callable[[], None]) -> None:
    """THREADS clients, REQUESTS each, while *action* runs in this thread."""
    paths = _paths()
    go = threading.Barrier(THREADS + 1, timeout=30)

    def client(index: int) -> None:
        with _client(base_url) as api:
            go.wait()
            for i in range(REQUESTS):
                path = paths[(index + i) % len(paths)]
                try:
                    got = api.get(path)
                except httpx.HTTPError as exc:
                    seen.wrong(f"GET {path}: {type(exc).__name__}: {exc}")
                    continue
                with seen.lock:
                    seen.answers += 1
                _check(seen, path, got)
                time.sleep(0.02)  # spread over the action's time, not all up front

    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    go.wait()
    try:
        action()
    finally:
        for t in threads:
            t.join(60)
    assert not [t for t in threads if t.is_alive()], "a client thread hung"


def _wait_state(api: httpx.Client, name: str, wanted: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        task = api.get(f"/api/v1/tasks/{name}").json()
        if task["state"] in wanted:
            return str(task["state"])
        assert task["state"] != "failed", task["error"]
        assert time.monotonic() < deadline, f"{name} stayed {task['state']}"
        time.sleep(0.1)


def test_concurrent_reads_while_a_task_starts_runs_and_pauses(
    base_url: str,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)",
            "INSERT INTO t SELECT seq, seq FROM seq_1_to_4000",
        ],
        database=src,
    )
    source = f"mariadb://root@{mariadb1.host}:{mariadb1.port}"
    target = f"mariadb://root@{mariadb2.host}:{mariadb2.port}"
    spec = {
        "source": source,
        "target": target,
        "types": ["schema", "full", "incremental"],
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
        # a copy of ~2 s, in 8 chunks: the first burst sees it under way
        "options": {"chunk_rows": 500, "rate_rows_per_second": 2000},
    }
    seen = Seen()
    try:
        _life(base_url, seen, spec, mariadb1, mariadb2, src, dst)
    finally:  # the target's oms outlives the test database: a rerun starts afresh
        tables = query(
            mariadb2,
            "SELECT COUNT(*) FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = 'duosync_checkpoint'",
        )
        if tables == [(1,)]:
            run_sql(mariadb2, [f"DELETE FROM oms.duosync_checkpoint WHERE task = '{RUN}'"])


def _life(
    base_url: str,
    seen: Seen,
    spec: dict[str, Any],
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    src: str,
    dst: str,
) -> None:
    with _client(base_url) as api:
        for name in (RUN, IDLE):
            created = api.post("/api/v1/tasks", json={**spec, "name": name})
            assert created.status_code == 201, created.text

        # 1. reads from 12 threads while the task is started, pre-checked and copied
        def start() -> None:
            started = api.post(f"/api/v1/tasks/{RUN}/start")
            assert started.status_code == 200, started.text

        _burst(base_url, seen, start)
        _wait_state(api, RUN, {"incremental_running", "incremental_monitoring"})

        # 2. ... while it syncs rows written on the source, is paused and resumed
        def pause_and_resume() -> None:
            run_sql(mariadb1, ["UPDATE t SET v = -v WHERE id <= 200"], database=src)
            paused = api.post(f"/api/v1/tasks/{RUN}/pause")
            assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
            resumed = api.post(f"/api/v1/tasks/{RUN}/resume")
            assert resumed.status_code == 200, resumed.text

        _burst(base_url, seen, pause_and_resume)

        assert seen.problems == [], "\n".join(seen.problems[:20])
        assert seen.answers == 2 * THREADS * REQUESTS
        # the reads really overlapped the task's life, not just its record
        assert seen.states & {"prechecking", "schema_migration", "full_migration"}, seen.states
        assert seen.states & {"incremental_running", "incremental_monitoring"}, seen.states
        assert {"source.connectivity", "source.binlog"} <= seen.prechecks, seen.prechecks

        _wait_state(api, RUN, {"incremental_monitoring"})
        deadline = time.monotonic() + 30
        count = f"SELECT COUNT(*), SUM(v < 0) FROM {dst}.t"
        while query(mariadb2, count) != [(4000, 200)]:
            assert time.monotonic() < deadline, f"no convergence: {query(mariadb2, count)}"
            time.sleep(0.2)
        metrics = api.get("/metrics").text
        assert f'duosync_task_phase{{phase="incremental_monitoring",task="{RUN}"}} 1.0' in metrics
        assert f'duosync_task_phase{{phase="not_started",task="{IDLE}"}} 1.0' in metrics

        paused = api.post(f"/api/v1/tasks/{RUN}/pause")
        assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
        for name in (RUN, IDLE):
            released = api.post(f"/api/v1/tasks/{name}/release")
            assert released.status_code == 200 and released.json()["state"] == "released"
