"""REST API under concurrent clients: ``duosync serve`` while two tasks run.

A real ``duosync serve`` subprocess (fresh ``--home``, ``DUOSYNC_API_TOKEN``) runs
two tasks between the sandbox MariaDB servers, both started through the API:

- ``bench-api-inc``: schema + full + incremental, mariadb1 -> mariadb2, a small
  table with a steady writer on the source, so it is really syncing;
- ``bench-api-full``: schema + full + incremental, mariadb2 -> mariadb1, a larger
  table copied at a limited rate, so its full migration runs during the load.

Then ``--clients`` threads (one ``httpx.Client`` each) cycle for ``--seconds`` over
``GET /api/v1/tasks``, ``/api/v1/tasks/NAME``, ``.../progress``, ``.../prechecks``
and ``/metrics``. Every 2xx body is checked too (the task's name, the metrics'
``duosync_task_phase``). Traffic goes to 127.0.0.1 only.

    .venv/bin/duosync sandbox up --dir /tmp/benchbox --no-oceanbase
    .venv/bin/python bench/api_load.py --sandbox /tmp/benchbox [--seconds 60] [--clients 16]

Printed: requests/s, p50 and p99 latency (ms), non-2xx answers by status and
exceptions by type; the last line is ``errors=N`` (non-2xx answers, exceptions,
wrong bodies and server-side tracebacks). Exit status 0 when N is 0.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql
from sandbox_urls import port_of

from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, Sandbox

HOST = "127.0.0.1"
TOKEN = "bench-api-load-token-0123456789"
SERVERS = ("mariadb1", "mariadb2")
INC_TASK, FULL_TASK = "bench-api-inc", "bench-api-full"
TASKS = (INC_TASK, FULL_TASK)
# (task, source server, source db, target server, target db)
LAYOUT = (
    (INC_TASK, "mariadb1", "bench_api_src", "mariadb2", "bench_api_dst"),
    (FULL_TASK, "mariadb2", "bench_api_src2", "mariadb1", "bench_api_dst2"),
)
INC_ROWS = 1_000
FULL_RATE = 2_000  # rows/s of the second task's copy
API_TIMEOUT = 30.0


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- databases ---------------------------------------------------------------------------


def _conn(port: int, db: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host=HOST,
        port=port,
        user="root",
        database=db,
        autocommit=True,
        connect_timeout=10,
        init_command="SET time_zone = '+00:00'",
    )


def _run(port: int, statements: Sequence[str], db: str | None = None) -> None:
    conn = _conn(port, db)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def _count(port: int, table: str) -> int:
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def _forget_checkpoints(port: int) -> None:
    """Delete the bench tasks' rows in the target's oms tables (a rerun starts over)."""
    conn = _conn(port)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = 'oms' AND TABLE_NAME = 'duosync_checkpoint'"
            )
            row = cur.fetchone()
            if row and row[0]:
                cur.execute(
                    "DELETE FROM oms.duosync_checkpoint WHERE task IN (%s, %s)", tuple(TASKS)
                )
    finally:
        conn.close()


def drop_databases(ports: dict[str, int]) -> None:
    for _task, src, src_db, dst, dst_db in LAYOUT:
        _run(ports[src], [f"DROP DATABASE IF EXISTS `{src_db}`"])
        _run(ports[dst], [f"DROP DATABASE IF EXISTS `{dst_db}`"])
    for port in ports.values():
        _forget_checkpoints(port)


def prepare(ports: dict[str, int], full_rows: int) -> None:
    drop_databases(ports)
    for task, src, src_db, _dst, _dst_db in LAYOUT:
        rows = INC_ROWS if task == INC_TASK else full_rows
        _run(
            ports[src],
            [
                f"CREATE DATABASE `{src_db}`",
                f"CREATE TABLE `{src_db}`.t (id INT PRIMARY KEY, v INT NOT NULL,"
                " note VARCHAR(64) NOT NULL)",
                f"INSERT INTO `{src_db}`.t SELECT seq, seq, MD5(seq)"
                f" FROM `{src_db}`.seq_1_to_{rows}",
            ],
        )


class Writer(threading.Thread):
    """Steady small transactions on the incremental task's source (an INSERT and an
    UPDATE every ~50 ms) until stopped, or until *deadline*."""

    def __init__(self, port: int, db: str, deadline: float) -> None:
        super().__init__(name="writer", daemon=True)
        self.port, self.db, self.deadline = port, db, deadline
        self.stop = threading.Event()
        self.transactions = 0
        self.error: str | None = None

    def run(self) -> None:
        rng = random.Random(11)
        next_id = INC_ROWS + 1
        try:
            conn = _conn(self.port, self.db)
        except pymysql.MySQLError as exc:
            self.error = str(exc)
            return
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set() and time.monotonic() < self.deadline:
                    cur.execute("BEGIN")
                    cur.execute("INSERT INTO t VALUES (%s, %s, %s)", (next_id, next_id, "w"))
                    cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (rng.randint(1, INC_ROWS),))
                    cur.execute("COMMIT")
                    next_id += 1
                    self.transactions += 1
                    self.stop.wait(0.05)
        except pymysql.MySQLError as exc:
            self.error = str(exc)
        finally:
            conn.close()


# -- the service ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Service:
    """``duosync serve`` in a subprocess, its output in *log*."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.port = _free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = self.client(timeout=60.0)

    def client(self, timeout: float = API_TIMEOUT) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=timeout,
        )

    def start(self) -> None:
        env = {**os.environ, "DUOSYNC_API_TOKEN": TOKEN}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "duosync.cli",
                    "--home",
                    str(self.home),
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.api.get("/api/v1/tasks").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"duosync serve exited ({self.proc.returncode}); see {self.log}")
            if time.monotonic() > deadline:
                raise BenchError(f"duosync serve did not answer in 60 s; see {self.log}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            self.api.close()
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        self.api.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        got = self.api.request(method, path, **kwargs)
        if got.status_code // 100 != 2:
            raise BenchError(f"{method} {path}: {got.status_code} {got.text[:300]}")
        return got.json()

    def state(self, name: str) -> str:
        return str(self.call("GET", f"/api/v1/tasks/{name}")["state"])

    def wait_state(self, name: str, wanted: set[str], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            task = self.call("GET", f"/api/v1/tasks/{name}")
            if task["state"] in wanted:
                return str(task["state"])
            if task["state"] == "failed":
                raise BenchError(f"task {name} failed: {task['error']}")
            if time.monotonic() > deadline:
                raise BenchError(f"task {name} stayed {task['state']} for {timeout:.0f} s")
            time.sleep(0.3)

    def server_errors(self) -> tuple[int, int]:
        """(ASGI exceptions, tracebacks) in the service's log so far."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count("Exception in ASGI application"), text.count("Traceback (most recent")


def create_tasks(service: Service, urls: dict[str, str]) -> None:
    for task, src, src_db, dst, dst_db in LAYOUT:
        options: dict[str, Any] = {"chunk_rows": 1000}
        if task == FULL_TASK:
            options["rate_rows_per_second"] = FULL_RATE
        spec = {
            "name": task,
            "source": urls[src],
            "target": urls[dst],
            "types": ["schema", "full", "incremental"],
            "select": {"databases": [src_db]},
            "rename": {"databases": {src_db: dst_db}},
            "options": options,
        }
        service.call("POST", "/api/v1/tasks", json=spec)


def release_tasks(service: Service) -> list[str]:
    """Pause what runs, then release every bench task (best effort, bounded); what
    went wrong."""
    problems = []
    for name in TASKS:
        try:
            state = service.state(name)
            if state not in {"not_started", "paused", "failed", "completed", "released"}:
                t0 = time.monotonic()
                service.call("POST", f"/api/v1/tasks/{name}/pause")
                state = service.wait_state(name, {"paused", "failed", "completed"}, timeout=90)
                say(f"cleanup: {name} {state} after {time.monotonic() - t0:.1f}s")
            if state != "released":
                service.call("POST", f"/api/v1/tasks/{name}/release")
        except (BenchError, httpx.HTTPError) as exc:
            problems.append(f"task {name}: {exc}")
            say(f"cleanup: task {name}: {exc}")
    return problems


# -- the load ------------------------------------------------------------------------------


Check = Callable[[Any], bool]


def _names(body: Any) -> set[str]:
    if not isinstance(body, list):
        return set()
    return {str(t.get("name")) for t in body if isinstance(t, dict)}


def requests_to_make() -> list[tuple[str, str, Check]]:
    """(kind, path, check of the JSON or text body) for every request of a cycle."""
    out: list[tuple[str, str, Check]] = [
        ("list", "/api/v1/tasks", lambda b: set(TASKS) <= _names(b)),
        ("metrics", "/metrics", lambda b: isinstance(b, str) and "duosync_task_phase{" in b),
    ]
    for name in TASKS:

        def named(b: Any, name: str = name) -> bool:
            return isinstance(b, dict) and b.get("name") == name and "state" in b

        def checks(b: Any) -> bool:
            return isinstance(b, list) and all(isinstance(c, dict) and "name" in c for c in b)

        out += [
            ("show", f"/api/v1/tasks/{name}", named),
            ("progress", f"/api/v1/tasks/{name}/progress", named),
            ("prechecks", f"/api/v1/tasks/{name}/prechecks", checks),
        ]
    return out


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    bad_bodies: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.exceptions.update(other.exceptions)
        self.bad_bodies.update(other.bad_bodies)
        self.by_kind.update(other.by_kind)
        self.samples += other.samples[: max(0, 10 - len(self.samples))]


def client_loop(service: Service, index: int, deadline: float, tally: Tally) -> None:
    cycle = requests_to_make()
    i = index  # staggered: the clients do not all ask the same thing at once
    with service.client() as client:
        while time.monotonic() < deadline:
            kind, path, check = cycle[i % len(cycle)]
            i += 1
            t0 = time.perf_counter()
            try:
                got = client.get(path)
            except httpx.HTTPError as exc:
                tally.exceptions[type(exc).__name__] += 1
                if len(tally.samples) < 10:
                    tally.samples.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
            tally.latencies.append(time.perf_counter() - t0)
            tally.by_kind[kind] += 1
            tally.statuses[got.status_code] += 1
            if got.status_code // 100 != 2:
                if len(tally.samples) < 10:
                    tally.samples.append(f"{path}: {got.status_code} {got.text[:200]}")
                continue
            try:
                body: Any = got.text if kind == "metrics" else got.json()
                right = check(body)
            except ValueError:  # not JSON
                right = False
            if not right:
                tally.bad_bodies[kind] += 1
                if len(tally.samples) < 10:
                    tally.samples.append(f"{path}: unexpected body {got.text[:200]}")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def load(service: Service, clients: int, seconds: float) -> tuple[Tally, float]:
    tallies = [Tally() for _ in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop, args=(service, i, deadline, tallies[i]), name=f"client-{i}"
        )
        for i in range(clients)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        # a request in flight at the deadline ends within its timeout
        t.join(max(0.0, deadline - time.monotonic()) + API_TIMEOUT + 5)
    elapsed = time.monotonic() - t0
    hung = [t.name for t in threads if t.is_alive()]
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    if hung:
        total.exceptions["client-thread-hung"] += len(hung)
    return total, elapsed


# -- running -----------------------------------------------------------------------------


def run(urls: dict[str, str], args: argparse.Namespace) -> int:
    ports = {name: port_of(urls[name]) for name in SERVERS}
    urls = {name: f"mariadb://root@{HOST}:{ports[name]}" for name in SERVERS}
    work = Path(tempfile.mkdtemp(prefix="duosync-bench-api-"))
    service = Service(work / "home", work / "serve.log")
    writer: Writer | None = None
    problems: list[str] = []
    failed = False
    try:
        say(f"preparing {', '.join(f'{s}.{d}' for _t, s, d, _x, _y in LAYOUT)}")
        # the second task's copy lasts about the load's length (it ends in incremental)
        full_rows = args.full_rows or int(FULL_RATE * (args.seconds + 10))
        prepare(ports, full_rows)
        say(f"starting duosync serve on {service.base_url} (log {service.log})")
        service.start()
        create_tasks(service, urls)
        service.call("POST", f"/api/v1/tasks/{INC_TASK}/start")
        service.wait_state(INC_TASK, {"incremental_running", "incremental_monitoring"})
        writer = Writer(ports["mariadb1"], LAYOUT[0][2], time.monotonic() + args.seconds + 120)
        writer.start()
        service.call("POST", f"/api/v1/tasks/{FULL_TASK}/start")
        say(f"{INC_TASK} syncing, {FULL_TASK} started; {args.clients} clients for {args.seconds}s")

        tally, elapsed = load(service, args.clients, args.seconds)

        asgi, tracebacks = service.server_errors()
        states = {name: service.state(name) for name in TASKS} if service.alive() else {}
        writer.stop.set()
        writer.join(30)
        # the incremental task really synced: the writer's rows arrive on the target
        src_table, dst_table = f"`{LAYOUT[0][2]}`.t", f"`{LAYOUT[0][4]}`.t"
        wanted = _count(ports["mariadb1"], src_table)
        caught_up = False
        deadline = time.monotonic() + 60
        while service.alive() and time.monotonic() < deadline:
            if _count(ports["mariadb2"], dst_table) == wanted:
                caught_up = True
                break
            time.sleep(0.5)
    except BaseException:
        failed = True
        raise
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(30)
        if service.alive():
            problems = release_tasks(service)
        service.stop()
        try:
            drop_databases(ports)
        except pymysql.MySQLError as exc:
            problems.append(str(exc))
            say(f"cleanup: {exc}")
        if failed:  # no figures: keep serve's log if it says something, else leave nothing
            if service.log.exists() and service.log.stat().st_size:
                say(f"serve log kept: {service.log}")
            else:
                shutil.rmtree(work, ignore_errors=True)

    requests = len(tally.latencies)
    non_2xx = {s: n for s, n in sorted(tally.statuses.items()) if s // 100 != 2}
    print(f"clients={args.clients} seconds={elapsed:.1f} requests={requests}")
    print("requests by kind: " + ", ".join(f"{k}={n}" for k, n in sorted(tally.by_kind.items())))
    print(f"requests/s={requests / elapsed:.1f}")
    print(f"p50_ms={percentile(tally.latencies, 0.50) * 1000:.1f}")
    print(f"p99_ms={percentile(tally.latencies, 0.99) * 1000:.1f}")
    print("non-2xx by status: " + (", ".join(f"{s}={n}" for s, n in non_2xx.items()) or "none"))
    print(
        "exceptions by type: "
        + (", ".join(f"{k}={n}" for k, n in sorted(tally.exceptions.items())) or "none")
    )
    print(
        "wrong bodies: "
        + (", ".join(f"{k}={n}" for k, n in sorted(tally.bad_bodies.items())) or "none")
    )
    print(f"serve log: {asgi} ASGI exceptions, {tracebacks} tracebacks")
    print("task states after the load: " + ", ".join(f"{k}={v}" for k, v in states.items()))
    extra = f" (writer: {writer.error})" if writer is not None and writer.error else ""
    print(
        f"{INC_TASK}: {writer.transactions if writer else 0} source transactions,"
        f" target {'caught up' if caught_up else 'NOT caught up'}{extra}"
    )
    for sample in tally.samples:
        print(f"  e.g. {sample}")
    for problem in problems:
        print(f"cleanup problem (not counted): {problem}")
    errors = (
        sum(non_2xx.values())
        + sum(tally.exceptions.values())
        + sum(tally.bad_bodies.values())
        + asgi
    )
    if not service.log.exists() or (errors == 0 and not problems):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"serve log kept: {service.log}")
    print(f"errors={errors}")
    return 0 if errors == 0 else 1


def reused_sandbox_urls(directory: Path) -> dict[str, str]:
    # status(), not up(): servers we started here would be left running by nobody.
    statuses = {s.name: s for s in Sandbox(directory).status()}
    missing = [n for n in SERVERS if not (n in statuses and statuses[n].serving)]
    if missing:
        raise BenchError(
            f"sandbox {directory}: {', '.join(missing)} not serving"
            f" (run: .venv/bin/duosync sandbox up --dir {directory} --no-oceanbase)"
        )
    return {name: s.url for name, s in statuses.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument(
        "--full-rows",
        type=int,
        help=f"rows the second task copies at {FULL_RATE} rows/s (default: the load's length)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds: 1 to 3600")
    if not 1 <= args.clients <= 256:
        parser.error("--clients: 1 to 256")
    if args.full_rows is not None and args.full_rows < 1000:
        parser.error("--full-rows: at least 1000")
    directory: Path | None = None
    box: Sandbox | None = None
    try:
        if args.sandbox is not None:
            urls = reused_sandbox_urls(args.sandbox)
        else:
            directory = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
            box = Sandbox(directory, [s for s in DEFAULT_SERVERS if s.name in SERVERS])
            say(f"starting a sandbox in {directory}")
            urls = {s.name: s.url for s in box.up()}
        return run(urls, args)
    except (BenchError, DuosyncError, pymysql.MySQLError, httpx.HTTPError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if box is not None:
            box.down(purge=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
