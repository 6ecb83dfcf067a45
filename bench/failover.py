"""Cluster failover under load: kill -9 a node, time until its tasks commit elsewhere.

Three ``duosync serve --cluster`` nodes (n1..n3, one ZooKeeper, a MariaDB database
as their shared metadata store) run ``--tasks`` MariaDB -> MariaDB tasks (schema,
full, incremental; round_robin placement, so they spread), created and started
through the REST API, with writer threads committing small random transactions on
every source (``--rate`` tx/s in total). Then ``--kills`` times: a node that runs
at least one task is killed with SIGKILL (every third kill, and the last one if
needed, is the leader; the others rotate), and for each of its tasks the clock
runs from the kill to the first transaction committed on the task's target under
a newer epoch than the killed run's: read off the target's
``oms.duosync_checkpoint`` every 20 ms, never the tool's counters. The node is then
started again (same name, port and home) and the cluster must settle (every task
run by the node its assignment names, and committing under that epoch) before the
next kill. At the end the writers stop and every task's target must hold exactly
its source's rows, or the bench fails (exit status 1).

    .venv/bin/duosync sandbox up --dir /tmp/benchbox --no-oceanbase --zookeeper
    .venv/bin/python bench/failover.py --sandbox /tmp/benchbox   # or omit --sandbox

Printed: one line per kill, p50 and p99 (nearest rank) of all task failover times,
the session timeout, Otter's documented default for comparison, and as the last
line ``failover_p99_s=X.X``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import httpx
import pymysql
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from sandbox_urls import port_of

from duosync.errors import DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, ZOOKEEPER, Sandbox

HOST = "127.0.0.1"
TOKEN = "bench-failover-token-0123456789"
SERVERS = ("mariadb1", "mariadb2")
ZK_ROOT = "/bench-failover"
STORE_DB = "bench_failover_store"
NODES = ("n1", "n2", "n3")
KEYS = 400  # rows per source table: small, so the full copy takes no time
POLL = 0.02  # seconds between reads of the targets' checkpoints during a failover
FAILOVER_TIMEOUT = 90.0
SETTLE_TIMEOUT = 120.0
# Otter (alibaba/otter) ships otter.zookeeper.sessionTimeout = 60000 in the
# otter.properties of its manager and node (older releases: 90000); its nodes are
# ephemeral znodes, so a dead node is noticed only when that session expires.
OTTER_SESSION_TIMEOUT_S = 60.0

Row = tuple[Any, ...]
# a string: pymysql's Connection is generic only in its stubs, not at run time
Conn: TypeAlias = "pymysql.connections.Connection[Any]"


class BenchError(Exception):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- databases ------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDef:
    name: str
    source: str  # sandbox server name
    target: str
    db: str  # the same name on both sides


def task_defs(count: int) -> list[TaskDef]:
    # Alternate directions, so both servers are sources and targets alike.
    out = []
    for i in range(1, count + 1):
        source, target = SERVERS if i % 2 else SERVERS[::-1]
        out.append(TaskDef(f"fo{i}", source, target, f"bench_failover_{i}"))
    return out


def connect(port: int, db: str | None = None) -> Conn:
    # autocommit: every SELECT sees what was committed up to now
    return pymysql.connect(
        host=HOST,
        port=port,
        user="root",
        database=db,
        autocommit=True,
        connect_timeout=10,
        init_command="SET time_zone = '+00:00'",
    )


def query(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(sql, tuple(args))
        return list(cur.fetchall())


def run_sql(port: int, statements: Sequence[str], db: str | None = None) -> None:
    conn = connect(port, db)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def forget_oms_rows(port: int, tasks: Sequence[str]) -> None:
    """Delete the bench tasks' rows in the server's shared ``oms`` tables (other
    tasks' rows stay: ``oms`` belongs to every task that targets the server)."""
    conn = connect(port)
    try:
        present = {
            str(r[0])
            for r in query(
                conn,
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'oms'",
            )
        }
        marks = ", ".join(["%s"] * len(tasks))
        for table in ("duosync_checkpoint", "duosync_conflict"):
            if table in present:
                query(conn, f"DELETE FROM oms.{table} WHERE task IN ({marks})", tasks)
    finally:
        conn.close()


def drop_all(ports: dict[str, int], tasks: Sequence[TaskDef]) -> None:
    for t in tasks:
        for side in (t.source, t.target):
            run_sql(ports[side], [f"DROP DATABASE IF EXISTS `{t.db}`"])
    for port in ports.values():
        forget_oms_rows(port, [t.name for t in tasks])
    run_sql(ports[SERVERS[0]], [f"DROP DATABASE IF EXISTS `{STORE_DB}`"])


def prepare(ports: dict[str, int], tasks: Sequence[TaskDef]) -> None:
    drop_all(ports, tasks)
    run_sql(ports[SERVERS[0]], [f"CREATE DATABASE `{STORE_DB}`"])
    for t in tasks:
        run_sql(
            ports[t.source],
            [
                f"CREATE DATABASE `{t.db}`",
                f"CREATE TABLE `{t.db}`.t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))",
                f"INSERT INTO `{t.db}`.t SELECT seq, 0, 'seed' FROM `{t.db}`.seq_1_to_{KEYS}",
            ],
        )


def clear_zookeeper(hosts: str) -> None:
    """Remove the bench's znodes: a rerun must not find last run's assignments."""
    zk = KazooClient(hosts=hosts, timeout=5.0)
    zk.start(timeout=15.0)
    try:
        with contextlib.suppress(NoNodeError):
            zk.delete(ZK_ROOT, recursive=True)
    finally:
        zk.stop()
        zk.close()


# -- the load ---------------------------------------------------------------------------


@dataclass
class Writers:
    """One thread per task source: small random transactions (1-3 of UPDATE,
    REPLACE, DELETE, INSERT IGNORE on random keys) at *rate* tx/s in total."""

    ports: dict[str, int]
    tasks: Sequence[TaskDef]
    rate: float
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.done = [0] * len(self.tasks)
        for i, t in enumerate(self.tasks):
            th = threading.Thread(target=self._write, args=(i, t), name=f"writer-{t.name}")
            th.daemon = True
            th.start()
            self.threads.append(th)

    def _write(self, index: int, t: TaskDef) -> None:
        rng = random.Random(t.name)
        interval = len(self.tasks) / self.rate
        conn: Conn | None = None
        due = time.monotonic()
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.ports[t.source], t.db)
                self._transaction(conn, rng)
                self.done[index] += 1
            except pymysql.MySQLError as exc:
                self.errors.append(f"{t.name}: {exc}")
                conn = None
            # a steady pace: a late transaction is not made up for by a burst
            due = max(due + interval, time.monotonic())
            self.stop.wait(max(0.0, due - time.monotonic()))
        if conn is not None:
            conn.close()

    @staticmethod
    def _transaction(conn: Conn, rng: random.Random) -> None:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            for _ in range(rng.randint(1, 3)):
                key, op = rng.randint(1, KEYS), rng.random()
                if op < 0.5:
                    cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (key,))
                elif op < 0.7:
                    cur.execute("REPLACE INTO t VALUES (%s, %s, 'r')", (key, rng.randint(0, 9)))
                elif op < 0.85:
                    cur.execute("DELETE FROM t WHERE id = %s", (key,))
                else:
                    cur.execute("INSERT IGNORE INTO t VALUES (%s, 0, 'i')", (key,))
            cur.execute("COMMIT")

    def finish(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(30)
        if not self.stopped:
            self.stopped = time.monotonic()

    @property
    def rate_seen(self) -> float:
        return sum(self.done) / max(1e-9, (self.stopped or time.monotonic()) - self.started)


# -- the nodes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One ``duosync serve`` node; its output appended to *log* across restarts."""

    name: str
    cluster: str
    store: str
    home: Path
    log: Path
    session_timeout: float
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    client: httpx.Client | None = None

    def api(self) -> httpx.Client:
        if self.client is None:
            self.client = httpx.Client(
                base_url=f"http://{HOST}:{self.port}",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30.0,
            )
        return self.client

    def mark(self, what: str) -> None:
        # lines of ours in the node's log, to find a kill's aftermath in it
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.log.open("a") as out:
            out.write(f"=== bench {stamp} ({time.time():.3f}): {what}\n")

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.mark("start")
        env = {**os.environ, "DUOSYNC_API_TOKEN": TOKEN}
        with self.log.open("ab") as out:
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
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--cluster",
                    self.cluster,
                    "--node",
                    self.name,
                    "--session-timeout",
                    str(self.session_timeout),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_answering(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.api().get("/api/v1/cluster").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"node {self.name} exited; see {self.log}")
            if time.monotonic() > deadline:
                raise BenchError(f"node {self.name} did not answer in {timeout:.0f} s")
            time.sleep(0.2)

    def kill9(self) -> tuple[float, float]:
        """SIGKILL the node; (time.time(), time.monotonic()) just before the signal."""
        assert self.proc is not None
        wall, mono = time.time(), time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        self.mark(f"kill -9 at {wall:.3f}")
        return wall, mono

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.client is not None:
            self.client.close()
            self.client = None


@dataclass
class Cluster:
    nodes: dict[str, Node]
    tasks: Sequence[TaskDef]
    #: one polling connection per server (the targets' checkpoints)
    conns: dict[str, Conn]

    def call(self, method: str, path: str, json: Any = None) -> Any:
        """The API of the first live node that answers (any node answers for all)."""
        last: Exception | None = None
        for node in self.nodes.values():
            if node.proc is None:
                continue
            try:
                got = node.api().request(method, path, json=json)
            except httpx.TransportError as exc:
                last = exc
                continue
            if got.status_code // 100 != 2:
                raise BenchError(f"{method} {path}: {got.status_code} {got.text[:300]}")
            return got.json()
        raise BenchError(f"{method} {path}: no node answers ({last})")

    def status(self) -> dict[str, Any]:
        got: dict[str, Any] = self.call("GET", "/api/v1/cluster")
        return got

    def checkpoint(self, t: TaskDef, sql: str, args: Sequence[Any] = ()) -> Row:
        rows = query(self.conns[t.target], sql, (t.name, *args))
        return rows[0] if rows else (None,)

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)  # all at once: they stop in parallel
        for node in self.nodes.values():
            node.stop()


# -- tasks and settling -----------------------------------------------------------------


def spec(t: TaskDef, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "name": t.name,
        "source": f"mariadb://root@{HOST}:{ports[t.source]}",
        "target": f"mariadb://root@{HOST}:{ports[t.target]}",
        "types": ["schema", "full", "incremental"],
        "select": {"databases": [t.db]},
        "options": {
            "write_concurrency": 2,
            "heartbeat_seconds": 1,
            "placement": {"strategy": "round_robin"},
        },
    }


def start_tasks(c: Cluster, ports: dict[str, int]) -> None:
    for t in c.tasks:
        c.call("POST", "/api/v1/tasks", json=spec(t, ports))
        c.call("POST", f"/api/v1/tasks/{t.name}/start")
    deadline = time.monotonic() + 180
    while True:
        states = {t.name: c.call("GET", f"/api/v1/tasks/{t.name}") for t in c.tasks}
        failed = [f"{n}: {s.get('error')}" for n, s in states.items() if s["state"] == "failed"]
        if failed:
            raise BenchError("tasks failed: " + "; ".join(failed))
        if all(s["state"] == "incremental_monitoring" for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"tasks not in incremental sync: {states}")
        time.sleep(0.5)


def settled_view(c: Cluster) -> dict[str, tuple[str, int]] | None:
    """task -> (node, epoch) if the cluster is settled: every node registered, every
    task listed by exactly the node its assignment names, and committing there: the
    target's checkpoint rows all carry that assignment's epoch and moved within the
    last 3 s (a run that is listed but has not fenced yet is not settled)."""
    status = c.status()
    if {n["name"] for n in status["nodes"]} != set(c.nodes):
        return None
    listed: dict[str, list[str]] = {}
    for n in status["nodes"]:
        for task in n["tasks"]:
            listed.setdefault(task, []).append(n["name"])
    out: dict[str, tuple[str, int]] = {}
    for t in c.tasks:
        a = status["assignments"].get(t.name)
        if a is None or listed.get(t.name) != [a["node"]]:
            return None
        low, high, newest = c.checkpoint(
            t,
            "SELECT MIN(epoch), MAX(epoch), MAX(applied_at) FROM oms.duosync_checkpoint"
            " WHERE task = %s",
        )
        if low != a["epoch"] or high != a["epoch"] or newest is None:
            return None
        if float(newest) < time.time() - 3.0:
            return None
        out[t.name] = (str(a["node"]), int(a["epoch"]))
    return out


def wait_settled(c: Cluster, timeout: float = SETTLE_TIMEOUT) -> dict[str, tuple[str, int]]:
    """The settled view once it held unchanged for a second: a node that just came
    back may be about to receive a rebalanced task (the leader's next tick)."""
    deadline = time.monotonic() + timeout
    first: dict[str, tuple[str, int]] | None = None
    since = 0.0
    while True:
        try:
            view = settled_view(c)
        except (BenchError, httpx.HTTPError):
            view = None  # a node that answers 503 while it registers again, say
        if view is None or view != first:
            first, since = view, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return view
        if time.monotonic() > deadline:
            raise BenchError(f"the cluster did not settle in {timeout:.0f} s: {c.status()}")
        time.sleep(0.25)


# -- kills ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    number: int
    node: str
    leader: bool
    #: task -> seconds from the kill to its first commit under a newer epoch
    took: dict[str, float]
    #: task -> seconds from the kill to the leader's new assignment, and its node
    moved: dict[str, float]
    to: dict[str, str]

    def line(self) -> str:
        names = sorted(self.took)
        role = " (leader)" if self.leader else ""
        times = ", ".join(f"{self.took[t]:.1f} s" for t in names)
        detail = ", ".join(
            f"{t}->{self.to.get(t, '?')} {self.moved.get(t, math.nan):.1f} s" for t in names
        )
        return (
            f"kill {self.number}: {self.node}{role} tasks {','.join(names)}: {times}"
            f"  (reassigned: {detail})"
        )


def choose_victim(
    number: int, kills: int, leader: str | None, view: dict[str, tuple[str, int]], past: list[Kill]
) -> str:
    """The leader on kills 1, 4, 7, ... (and on the last, if it was killed less than
    twice), else the node with tasks killed least often (then longest ago). A leader
    round missed (the leader ran no task) is made up at the next kill."""
    busy = sorted({node for node, _epoch in view.values()})
    due = max(math.ceil(number / 3), 2 if number == kills else 0)
    if sum(k.leader for k in past) < due and leader in busy:
        return leader
    others = [n for n in busy if n != leader] or busy

    def rank(name: str) -> tuple[int, int, str]:
        times = [k.number for k in past if k.node == name]
        return (len(times), max(times, default=0), name)

    return min(others, key=rank)


def time_failover(
    c: Cluster, victim: str, view: dict[str, tuple[str, int]]
) -> tuple[float, dict[str, float]]:
    """Kill *victim*; the kill's time.time(), and for each of its tasks the seconds
    until its target shows a commit under a newer epoch than the killed run's."""
    mine = [t for t in c.tasks if view[t.name][0] == victim]
    wall, mono = c.nodes[victim].kill9()
    sql_last = "SELECT MAX(epoch), MAX(applied_at) FROM oms.duosync_checkpoint WHERE task = %s"
    old: dict[str, int] = {}
    since: dict[str, float] = {}
    for t in mine:
        epoch, applied = c.checkpoint(t, sql_last)
        old[t.name] = max(view[t.name][1], int(epoch or 0))
        # A fence moves only the epoch; advance() stamps applied_at in the very
        # transaction of the rows it covers (a partition without rows in a batch
        # commits nothing, and idle checkpoints come only after 5 s without rows).
        # So a newer epoch *and* a newer applied_at is a commit of rows by the new
        # owner. "Newer" than what the target holds now, not only than the kill's
        # stamp: a COMMIT the dying node had already sent can land just after the
        # stamp, and once fenced its row would look like a new owner's commit.
        since[t.name] = max(wall, float(applied or 0.0))
    took: dict[str, float] = {}
    deadline = mono + FAILOVER_TIMEOUT
    sql_new = "SELECT MAX(applied_at) FROM oms.duosync_checkpoint WHERE task = %s AND epoch > %s"
    while len(took) < len(mine):
        for t in mine:
            if t.name in took:
                continue
            (applied,) = c.checkpoint(t, sql_new, (old[t.name],))
            if applied is not None and float(applied) > since[t.name]:
                took[t.name] = time.monotonic() - mono
        if time.monotonic() > deadline:
            waiting = sorted({t.name for t in mine} - set(took))
            raise BenchError(
                f"{', '.join(waiting)}: no commit elsewhere"
                f" {FAILOVER_TIMEOUT:.0f} s after killing {victim}"
            )
        time.sleep(POLL)
    return wall, took


def one_kill(c: Cluster, number: int, kills: int, past: list[Kill]) -> Kill:
    view = wait_settled(c)
    leader = c.status()["leader"]
    leader = None if leader is None else str(leader)
    # chosen from the settled view, whose tasks and epochs are what gets measured
    victim = choose_victim(number, kills, leader, view, past)
    was_leader = leader == victim
    kill_wall, took = time_failover(c, victim, view)
    after = c.status()["assignments"]
    moved = {t: float(after[t]["at"]) - kill_wall for t in took if t in after}
    to = {t: str(after[t]["node"]) for t in took if t in after}
    node = c.nodes[victim]
    node.start()
    node.wait_answering()
    return Kill(number, victim, was_leader, took, moved, to)


# -- convergence ------------------------------------------------------------------------


def converge(ports: dict[str, int], tasks: Sequence[TaskDef], timeout: float = 120.0) -> list[str]:
    """Wait for every target to hold its source's rows; the tasks that never did."""
    conns = {name: connect(port) for name, port in ports.items()}
    try:
        pending = list(tasks)
        deadline = time.monotonic() + timeout
        diffs: dict[str, int] = {}
        while pending and time.monotonic() < deadline:
            for t in list(pending):
                sql = f"SELECT id, v, note FROM `{t.db}`.t ORDER BY id"
                src, dst = query(conns[t.source], sql), query(conns[t.target], sql)
                if src == dst:
                    pending.remove(t)
                else:
                    diffs[t.name] = len(set(src) ^ set(dst))
            time.sleep(0.5)
        return [f"{t.name}: {diffs.get(t.name, '?')} rows differ" for t in pending]
    finally:
        for conn in conns.values():
            conn.close()


# -- running ------------------------------------------------------------------------------


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def report(kills: list[Kill], writers: Writers, session_timeout: float) -> float:
    times = [s for k in kills for s in k.took.values()]
    for k in kills:
        print(k.line())
    p50, p99 = nearest_rank(times, 0.50), nearest_rank(times, 0.99)
    leaders = sum(k.leader for k in kills)
    print(f"{len(times)} task failovers over {len(kills)} kills ({leaders} of the leader)")
    print(f"p50={p50:.1f} s p99={p99:.1f} s (nearest rank; kill -9 -> first commit elsewhere)")
    print(f"session timeout: {session_timeout:.1f} s")
    print(
        f"writers: {sum(writers.done)} transactions, {writers.rate_seen:.0f} tx/s,"
        f" {len(writers.errors)} errors; every target holds its source's rows"
    )
    print(
        f"Otter (documented default, not measured here): otter.zookeeper.sessionTimeout ="
        f" {OTTER_SESSION_TIMEOUT_S:.0f} s before a node counts as dead;"
        f" p99 / that = {p99 / OTTER_SESSION_TIMEOUT_S:.2f}"
    )
    return p99


def run(urls: dict[str, str], args: argparse.Namespace, work: Path) -> int:
    ports = {name: port_of(urls[name]) for name in SERVERS}
    zk_hosts = urlsplit(urls[ZOOKEEPER.name]).netloc
    tasks = task_defs(args.tasks)
    store = f"mariadb://root@{HOST}:{ports[SERVERS[0]]}/{STORE_DB}"
    nodes = {
        name: Node(
            name,
            f"zk://{zk_hosts}{ZK_ROOT}",
            store,
            work / name,
            work / f"{name}.log",
            args.session_timeout,
        )
        for name in NODES
    }
    c = Cluster(nodes, tasks, {})
    writers = Writers(ports, tasks, args.rate)
    try:
        say(f"preparing {len(tasks)} tasks' databases; node logs in {work}")
        prepare(ports, tasks)
        clear_zookeeper(zk_hosts)
        c.conns = {name: connect(port) for name, port in ports.items()}
        for node in nodes.values():
            node.start()
        for node in nodes.values():
            node.wait_answering()
        start_tasks(c, ports)
        writers.start()
        kills: list[Kill] = []
        for number in range(1, args.kills + 1):
            kills.append(one_kill(c, number, args.kills, kills))
            say(kills[-1].line())
        wait_settled(c)
        writers.finish()
        wrong = converge(ports, tasks)
        if wrong:
            raise BenchError("source and target differ: " + "; ".join(wrong))
        p99 = report(kills, writers, args.session_timeout)
    finally:
        writers.finish()
        c.stop()
        for conn in c.conns.values():
            conn.close()
        cleanup(ports, tasks, zk_hosts)
    print(f"failover_p99_s={p99:.1f}")
    return 0


def cleanup(ports: dict[str, int], tasks: Sequence[TaskDef], zk_hosts: str) -> None:
    try:
        drop_all(ports, tasks)
        clear_zookeeper(zk_hosts)
    except (pymysql.MySQLError, KazooException) as exc:
        say(f"cleanup: {exc}")


def reused_sandbox_urls(directory: Path) -> dict[str, str]:
    # status(), not up(): servers started here would be left running by nobody
    statuses = {s.name: s for s in Sandbox(directory).status()}
    wanted = (*SERVERS, ZOOKEEPER.name)
    missing = [n for n in wanted if not (n in statuses and statuses[n].serving)]
    if missing:
        raise BenchError(
            f"sandbox {directory}: {', '.join(missing)} not serving (run: .venv/bin/duosync"
            f" sandbox up --dir {directory} --no-oceanbase --zookeeper)"
        )
    return {name: s.url for name, s in statuses.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sandbox", type=Path, help="reuse this running sandbox directory")
    parser.add_argument("--kills", type=int, default=10, help="nodes killed, one after the other")
    parser.add_argument("--tasks", type=int, default=4, help="tasks spread over the 3 nodes")
    parser.add_argument("--rate", type=float, default=200.0, help="source tx/s, all writers")
    parser.add_argument(
        "--session-timeout", type=float, default=3.0, help="the nodes' ZooKeeper session (s)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the node logs")
    args = parser.parse_args(argv)
    if args.kills < 1 or not 1 <= args.tasks <= 12 or not 10 <= args.rate <= 1000:
        parser.error("--kills: at least 1; --tasks: 1 to 12; --rate: 10 to 1000")
    # the sandbox ZooKeeper's tickTime (500 ms) allows sessions of 2 to 20 ticks
    if not 1.0 <= args.session_timeout <= 10.0:
        parser.error("--session-timeout: 1 to 10 s")
    directory: Path | None = None
    box: Sandbox | None = None
    work = Path(tempfile.mkdtemp(prefix="duosync-bench-failover-"))
    ok = False
    try:
        if args.sandbox is not None:
            urls = reused_sandbox_urls(args.sandbox)
        else:
            directory = Path(tempfile.mkdtemp(prefix="duosync-bench-sandbox-"))
            specs = [s for s in DEFAULT_SERVERS if s.name in SERVERS] + [ZOOKEEPER]
            box = Sandbox(directory, specs)
            say(f"starting a sandbox in {directory}")
            urls = {s.name: s.url for s in box.up()}
        status = run(urls, args, work)
        ok = status == 0
        return status
    except (BenchError, DuosyncError, pymysql.MySQLError, httpx.HTTPError, KazooException) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if box is not None:
            box.down(purge=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        if (ok and not args.keep_logs) or not any(work.glob("*.log")):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"node logs kept: {work}")


if __name__ == "__main__":
    sys.exit(main())
