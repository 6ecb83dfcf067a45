"""A cluster of three ``duosync serve`` nodes sharing six tasks (one a two-way pair)
through ZooKeeper and a MariaDB metadata store, with writers on every source.

One scenario, in steps that build on each other (each a test, run in order): the
tasks are placed; nodes are killed (-9) three times, the leader once, and every
task resumes on a live node; a node paused (SIGSTOP) until its tasks moved commits
nothing when it runs again (read off the target's binlog) and gives them up;
ZooKeeper is killed and restarted, and no node applies while it is gone; a node
that joins receives its round-robin share and no stick task; a drain empties a
node; a task with labels never runs on a node without them. At the end the sides
hold the same rows (the oracle), never the tool's counters.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest

from duosync.config import Endpoint
from tests.cluster import Node, wait_for
from tests.helpers import admin_connection, query, run_sql
from tests.servers import ZooKeeperServer

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ROOT = "/duosync-e2e"
KEYS = 400
#: c2 reads its source as a user with this password: it must appear in no znode
#: and no node log
SECRET = "Zk-S3cret-pw-0815"
EAST = ("dc=east",)


@dataclass(frozen=True)
class TaskDef:
    name: str
    source: str  # server fixture name
    target: str
    db: str
    strategy: str = "stick"
    labels: dict[str, str] = field(default_factory=dict)
    two_way: bool = False


TASKS = (
    TaskDef("c1", "mariadb1", "mariadb2", "cl_c1", "round_robin"),
    TaskDef("c2", "mariadb1", "mariadb2", "cl_c2", "round_robin"),
    TaskDef("c3", "mariadb2", "mariadb1", "cl_c3", "round_robin"),
    TaskDef("c4", "mariadb1", "oceanbase1", "cl_c4", labels={"dc": "east"}),
    TaskDef("tw", "mariadb1", "mariadb2", "cl_tw", two_way=True),
)
ALL = ("c1", "c2", "c3", "c4", "tw", "tw.reverse")


class Writers:
    """One thread per written database: small random transactions (insert,
    update, delete, replace) until stopped. The two-way pair's sides write
    disjoint keys (dual-active conflicts are another issue's subject)."""

    def __init__(self, servers: dict[str, Endpoint]) -> None:
        self.servers = servers
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        for t in TASKS:
            self._spawn(self.servers[t.source], t.db, 0)
            if t.two_way:
                self._spawn(self.servers[t.target], t.db, KEYS)

    def _spawn(self, endpoint: Endpoint, db: str, offset: int) -> None:
        th = threading.Thread(target=self._write, args=(endpoint, db, offset), daemon=True)
        th.start()
        self.threads.append(th)

    def _write(self, endpoint: Endpoint, db: str, offset: int) -> None:
        rng = random.Random(f"{db}{offset}")
        conn: pymysql.Connection[Any] | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = admin_connection(endpoint, db)
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    for _ in range(rng.randint(1, 3)):
                        k = offset + rng.randint(1, KEYS)
                        op = rng.random()
                        if op < 0.5:
                            cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (k,))
                        elif op < 0.7:
                            cur.execute(
                                "REPLACE INTO t VALUES (%s, %s, 'r')", (k, rng.randint(0, 9))
                            )
                        elif op < 0.85:
                            cur.execute("DELETE FROM t WHERE id = %s", (k,))
                        else:
                            cur.execute("INSERT IGNORE INTO t VALUES (%s, 0, 'i')", (k,))
                    cur.execute("COMMIT")
            except pymysql.MySQLError as exc:
                self.errors.append(str(exc))
                conn = None
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(30)


@dataclass
class Cluster:
    zk: ZooKeeperServer
    nodes: dict[str, Node]
    servers: dict[str, Endpoint]
    store: str
    writers: Writers

    def live(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.proc is not None]

    def any_api(self) -> Node:
        return self.live()[0]

    def status(self) -> dict[str, Any]:
        with self.any_api().api as api:
            got: dict[str, Any] = api.get("/api/v1/cluster").json()
        return got

    def task(self, name: str) -> dict[str, Any]:
        with self.any_api().api as api:
            got: dict[str, Any] = api.get(f"/api/v1/tasks/{name}").json()
        return got

    def runners(self) -> dict[str, str]:
        """task -> the live node that lists it among the tasks it runs."""
        out: dict[str, str] = {}
        for n in self.status()["nodes"]:
            for t in n["tasks"]:
                out[t] = n["name"]
        return out

    def all_running(self, excluded: set[str] = set()) -> dict[str, str] | None:  # noqa: B006
        """Every task runs on a live node (none of *excluded*) and on the node it is
        assigned to (no handover under way)."""
        status = self.status()
        runners = {t: n["name"] for n in status["nodes"] for t in n["tasks"]}
        assigned = {t: a["node"] for t, a in status["assignments"].items()}
        if set(runners) != set(ALL) or set(runners.values()) & excluded:
            return None
        if any(assigned.get(t) != n for t, n in runners.items()):
            return None
        return runners


def _spec(t: TaskDef, servers: dict[str, Endpoint]) -> dict[str, Any]:
    src, dst = servers[t.source], servers[t.target]
    user = f"clu:{SECRET}" if t.name == "c2" else "root"
    spec: dict[str, Any] = {
        "name": t.name,
        "source": f"{src.flavor.value}://{user}@{src.host}:{src.port}",
        "target": f"{dst.flavor.value}://root@{dst.host}:{dst.port}",
        "types": ["schema", "full", "incremental"],
        "select": {"databases": [t.db]},
        "options": {
            "write_concurrency": 2,
            "heartbeat_seconds": 1,
            # small fragments: c1's large transaction (below) is applied in them
            "fragment_rows": 5000,
            "placement": {"strategy": t.strategy, "labels": t.labels},
        },
    }
    if t.two_way:
        spec["topology"] = "two-way"
    return spec


def _prepare_data(servers: dict[str, Endpoint]) -> None:
    for t in TASKS:
        for side in (t.source, t.target):
            run_sql(servers[side], [f"DROP DATABASE IF EXISTS {t.db}"])
        run_sql(servers[t.source], [f"CREATE DATABASE {t.db}"])
        run_sql(
            servers[t.source],
            [
                "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))",
                f"INSERT INTO t SELECT seq, 0, 'seed' FROM seq_1_to_{KEYS}",
            ],
            database=t.db,
        )


@pytest.fixture(scope="module")
def cluster(
    zookeeper: ZooKeeperServer,
    sandbox_servers: dict[str, Endpoint],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    servers = sandbox_servers
    store_server = servers["mariadb1"]
    run_sql(store_server, ["DROP DATABASE IF EXISTS cl_store", "CREATE DATABASE cl_store"])
    store = f"mariadb://root@{store_server.host}:{store_server.port}/cl_store"
    _prepare_data(servers)
    run_sql(
        servers["mariadb1"],
        [
            "DROP USER IF EXISTS 'clu'@'%'",
            f"CREATE USER 'clu'@'%' IDENTIFIED BY '{SECRET}'",
            "GRANT ALL PRIVILEGES ON *.* TO 'clu'@'%'",
        ],
    )
    base: Path = tmp_path_factory.mktemp("cluster")
    url = f"zk://{zookeeper.hosts}{ROOT}"
    nodes = {
        name: Node(name, url, store, base / name, labels)
        for name, labels in (("n1", EAST), ("n2", EAST), ("n3", ()))
    }
    for n in nodes.values():
        n.start(wait=False)
    for n in nodes.values():
        n.wait_answering()
    c = Cluster(zookeeper, nodes, servers, store, Writers(servers))
    try:
        yield c
    finally:
        c.writers.finish()
        for n in list(c.nodes.values()):
            n.stop()
        for t in TASKS:
            for side in (t.source, t.target):
                run_sql(servers[side], [f"DROP DATABASE IF EXISTS {t.db}"])
        run_sql(store_server, ["DROP DATABASE IF EXISTS cl_store", "DROP USER IF EXISTS 'clu'@'%'"])


def _start_all(c: Cluster) -> None:
    with c.any_api().api as api:
        for t in TASKS:
            assert api.post("/api/v1/tasks", json=_spec(t, c.servers)).status_code == 201
            assert api.post(f"/api/v1/tasks/{t.name}/start").status_code == 200
    wait_for(
        "the forward tasks to reach incremental sync",
        lambda: all(c.task(t.name)["state"] == "incremental_monitoring" for t in TASKS),
        timeout=180,
    )
    with c.any_api().api as api:
        assert (
            api.post("/api/v1/tasks/tw/reverse", json={"write_concurrency": 2}).status_code == 201
        )
        assert api.post("/api/v1/tasks/tw.reverse/start").status_code == 200
    wait_for(
        "the reverse task to sync",
        lambda: c.task("tw.reverse")["state"] == "incremental_monitoring",
        timeout=120,
    )


def test_tasks_are_placed_on_the_nodes_and_every_node_answers_for_all(cluster: Cluster) -> None:
    c = cluster
    _start_all(c)
    runners = wait_for("every task to run on a node", c.all_running)
    assert runners["c4"] in ("n1", "n2"), "c4 needs dc=east"
    # the round-robin tasks went to three different nodes
    assert len({runners["c1"], runners["c2"], runners["c3"]}) == 3
    status = c.status()
    assert status["leader"] in c.nodes
    assert {n["name"] for n in status["nodes"]} == {"n1", "n2", "n3"}
    c.writers.start()
    # any node answers for any task, live figures included (published by its runner)
    for node in c.nodes.values():
        with node.api as api:
            tasks = {t["name"]: t for t in api.get("/api/v1/tasks").json()}
            assert set(tasks) == set(ALL)
            assert all(t["node"] == runners[name] for name, t in tasks.items())
            progress = api.get("/api/v1/tasks/c1/progress").json()
            assert "rows_per_second" in progress, progress
            assert "duosync_task_lag_seconds" in api.get("/metrics").text


def _kill_and_fail_over(c: Cluster, victim: str) -> float:
    before = wait_for("the cluster to settle", c.all_running)
    moved = {t for t, n in before.items() if n == victim}
    killed_at = c.nodes[victim].kill9()
    runners = wait_for(
        f"{victim}'s tasks to run elsewhere", lambda: c.all_running({victim}), timeout=60
    )
    took = time.monotonic() - killed_at
    for t in moved:
        history = [e["detail"] for e in c.task(t)["history"] if e["kind"] == "placement"]
        assert any(f"node {victim} is gone" in h for h in history), history
    assert runners["c4"] in ("n1", "n2")
    c.nodes[victim].start()
    return took


def _epochs(c: Cluster) -> dict[str, int]:
    return {t: a["epoch"] for t, a in c.status()["assignments"].items()}


def test_kill_nine_three_nodes_the_leader_once(cluster: Cluster) -> None:
    c = cluster
    wait_for("the cluster to settle", c.all_running)
    leader = c.status()["leader"]
    before, runners = _epochs(c), c.runners()
    took = [_kill_and_fail_over(c, leader)]
    wait_for("a new leader", lambda: c.status()["leader"])
    # the leader's death moved only the leader's own tasks: the others kept their
    # assignment (same epoch), so their runs were never stopped
    after = _epochs(c)
    for task, node in runners.items():
        if node != leader:
            assert after[task] == before[task] or "rebalanced" in _last_placement(c, task)
    others = [n for n in ("n1", "n2", "n3") if n != leader]
    for victim in others:
        # a node that holds tasks (a restarted node may still be empty under stick)
        took.append(_kill_and_fail_over(c, victim))
    print(f"failover seconds (kill -> every task running on a live node): {took}")


def _last_placement(c: Cluster, task: str) -> str:
    history = [e["detail"] for e in c.task(task)["history"] if e["kind"] == "placement"]
    return history[-1] if history else ""


def _binlog_position(endpoint: Endpoint) -> tuple[str, int]:
    rows = query(endpoint, "SHOW MASTER STATUS")
    return str(rows[0][0]), int(rows[0][1])


def _checkpoint_epochs_since(endpoint: Endpoint, start: tuple[str, int], task: str) -> list[int]:
    """The epochs of the task's checkpoint rows whose position moved in the
    binlog since *start*: one per partition of each transaction the applier
    committed (a fence, which moves only the epoch, is no commit of rows)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import UpdateRowsEvent

    stream = BinLogStreamReader(
        connection_settings={
            "host": endpoint.host,
            "port": endpoint.port,
            "user": "root",
            "passwd": "",
        },
        server_id=9999,
        log_file=start[0],
        log_pos=start[1],
        resume_stream=True,
        blocking=False,
        only_events=[UpdateRowsEvent],
        only_schemas=["oms"],
        only_tables=["duosync_checkpoint"],
    )
    epochs = []
    try:
        for event in stream:
            for row in event.rows:
                before, after = row["before_values"], row["after_values"]
                if after.get("task") == task and before["position"] != after["position"]:
                    epochs.append(int(after["epoch"]))
    finally:
        stream.close()
    return epochs


def test_a_paused_node_commits_nothing_and_gives_its_tasks_up(cluster: Cluster) -> None:
    c = cluster
    runners = wait_for("every task running", c.all_running)
    victim = runners["c1"]  # c1 applies on mariadb2, whose binlog tells what committed
    old_epoch = c.task("c1")["epoch"]
    node = c.nodes[victim]
    node.pause()
    try:
        wait_for("c1 to run elsewhere", lambda: c.all_running({victim}), timeout=60)
        new_epoch = c.task("c1")["epoch"]
        assert new_epoch > old_epoch
        mark = _binlog_position(c.servers["mariadb2"])
    finally:
        node.resume()
    # the zombie runs again: it finds its session gone, its commits fenced
    wait_for(
        f"{victim} to register again", lambda: victim in {n["name"] for n in c.status()["nodes"]}
    )
    time.sleep(5)
    # every task runs where it is assigned: the zombie kept none under its old epoch
    wait_for("the cluster to settle", c.all_running)
    # (on a loaded machine the task may move back before its new owner committed)
    epochs = wait_for(
        "c1 to commit again", lambda: _checkpoint_epochs_since(c.servers["mariadb2"], mark, "c1")
    )
    stale = [e for e in epochs if e < new_epoch]
    # (later epochs are legitimate: the zombie's return rebalances round-robin tasks)
    assert not stale, f"the paused node committed {len(stale)} transactions under epoch {old_epoch}"
    fenced = node.metric("duosync_fenced_transactions_total")
    print(
        f"zombie {victim}: {len(epochs)} commits of c1 since the move, 0 under the old epoch"
        f" {old_epoch}; its fenced-transaction counter: {fenced:.0f}"
    )


def _open_rows(endpoint: Endpoint) -> int:
    """Rows written by the largest open transaction on *endpoint*."""
    got = query(endpoint, "SELECT MAX(trx_rows_modified) FROM information_schema.INNODB_TRX")
    return int(got[0][0] or 0)


def test_a_node_paused_in_a_large_transaction_commits_none_of_it(cluster: Cluster) -> None:
    """c1's node is paused (SIGSTOP) while a 60,000-row source transaction is half
    written on the target, in fragments: none of it shows there while the node is
    frozen; the task moves, its new owner fences the checkpoints (once the target
    ended the frozen node's idle transaction) and applies the transaction whole,
    once."""
    c = cluster
    runners = wait_for("every task running", c.all_running)
    victim = runners["c1"]
    src, dst = c.servers["mariadb1"], c.servers["mariadb2"]
    count = "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM cl_c1.big"
    run_sql(src, ["CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(100))"], "cl_c1")
    tables = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cl_c1'"
    wait_for("big on the target", lambda: query(dst, f"{tables} AND TABLE_NAME = 'big'")[0][0])
    run_sql(
        src,
        ["BEGIN", "INSERT INTO big SELECT seq, REPEAT('b', 100) FROM seq_1_to_60000", "COMMIT"],
        "cl_c1",
    )
    wait_for("the transaction half written", lambda: _open_rows(dst) > 10_000, every=0.05)
    c.nodes[victim].pause()
    try:
        assert query(dst, count) == [(0, 0)], "a part of the transaction is visible"
        wait_for("c1 to run elsewhere", lambda: c.all_running({victim}), timeout=60)
        wait_for("the transaction applied", lambda: query(dst, count) == query(src, count), 120)
    finally:
        c.nodes[victim].resume()
    wait_for("the cluster to settle", c.all_running)
    assert query(dst, count) == query(src, count) == [(60_000, 60_000 * 60_001 // 2)]


def test_no_node_applies_while_zookeeper_is_gone(cluster: Cluster) -> None:
    c = cluster
    wait_for("every task running", c.all_running)
    target = c.servers["mariadb2"]
    c.zk.kill9()
    try:
        time.sleep(3.0 + 1.5)  # the session timeout, and a batch in flight
        before = query(
            target, "SELECT task, part, applied_at FROM oms.duosync_checkpoint ORDER BY 1, 2"
        )
        time.sleep(3)
        after = query(
            target, "SELECT task, part, applied_at FROM oms.duosync_checkpoint ORDER BY 1, 2"
        )
        assert before == after, "a node applied while cut off from ZooKeeper"
    finally:
        c.zk.restart()
    wait_for("every task running again", c.all_running, timeout=90)


def test_a_joining_node_gets_its_round_robin_share_and_no_stick_task(cluster: Cluster) -> None:
    c = cluster
    before = wait_for("every task running", c.all_running)
    first = next(iter(c.nodes.values()))
    n4 = Node("n4", first.cluster, c.store, first.home.parent / "n4")
    c.nodes["n4"] = n4
    n4.start()
    after = wait_for(
        "n4 to receive a round-robin task",
        lambda: (r := c.all_running()) and "n4" in r.values() and r,
        timeout=60,
    )
    got = {t for t, n in after.items() if n == "n4"}
    assert got <= {"c1", "c2", "c3"}, f"n4 received non-round-robin tasks: {got}"
    stick = {t for t in ("c4", "tw", "tw.reverse")}
    assert all(after[t] == before[t] for t in stick), "a stick task moved"
    # a new stick task goes to the least busy node
    t7 = TaskDef("c7", "mariadb2", "mariadb1", "cl_c1_copy")
    run_sql(
        c.servers["mariadb2"],
        [
            "DROP DATABASE IF EXISTS cl_c1_copy",
            "CREATE DATABASE cl_c1_copy",
            "CREATE TABLE cl_c1_copy.t (id INT PRIMARY KEY, v INT)",
            "INSERT INTO cl_c1_copy.t VALUES (1, 1)",
        ],
    )
    run_sql(c.servers["mariadb1"], ["DROP DATABASE IF EXISTS cl_c1_copy"])
    spec = _spec(t7, c.servers)
    spec["types"] = ["schema", "full"]
    del spec["options"]["heartbeat_seconds"]
    with c.any_api().api as api:
        created = api.post("/api/v1/tasks", json=spec)
        assert created.status_code == 201, created.text
        assert api.post("/api/v1/tasks/c7/start").status_code == 200
    wait_for("c7 to complete", lambda: c.task("c7")["state"] == "completed", timeout=90)
    assert query(c.servers["mariadb1"], "SELECT * FROM cl_c1_copy.t") == [(1, 1)]
    history = [e["detail"] for e in c.task("c7")["history"] if e["kind"] == "placement"]
    assert history and "placed (stick)" in history[0]
    for side in ("mariadb1", "mariadb2"):
        run_sql(c.servers[side], ["DROP DATABASE IF EXISTS cl_c1_copy"])


def _duosync(c: Cluster, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "duosync.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DUOSYNC_CLUSTER": c.any_api().cluster},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _lags(c: Cluster, tasks: set[str]) -> dict[str, float]:
    out = {}
    with c.any_api().api as api:
        for t in tasks:
            lag = api.get(f"/api/v1/tasks/{t}/progress").json().get("lag_seconds")
            if lag is not None:
                out[t] = float(lag)
    return out


def test_a_drain_moves_every_task_off_the_node(cluster: Cluster) -> None:
    c = cluster
    runners = wait_for("every task running", c.all_running)
    listed = _duosync(c, "node", "list")
    assert all(name in listed for name in ("n1", "n2", "n3", "n4")) and "leader" in listed
    busiest = max(set(runners.values()), key=lambda n: list(runners.values()).count(n))
    moving = {t for t, n in runners.items() if n == busiest}
    worst: dict[str, float] = {}
    watching = threading.Event()

    def watch() -> None:  # the lag of the moving tasks while they move
        while not watching.is_set():
            for t, lag in _lags(c, moving).items():
                worst[t] = max(worst.get(t, 0.0), lag)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    out = _duosync(c, "node", "drain", busiest, "--wait", "60")
    assert "runs no task now" in out, out
    wait_for(f"{busiest} to be empty", lambda: c.all_running({busiest}), timeout=60)
    took = time.monotonic() - started
    time.sleep(3)
    watching.set()
    watcher.join()
    print(
        f"drain of {busiest}: {sorted(moving)} running elsewhere after {took:.1f}s;"
        f" worst lag while moving: {worst}"
    )
    nodes = {n["name"]: n for n in c.status()["nodes"]}
    assert nodes[busiest]["draining"] and not nodes[busiest]["tasks"]
    for t in moving:
        assert "draining" in _last_placement(c, t)
    assert "drain ended" in _duosync(c, "node", "drain", busiest, "--cancel")


def test_no_password_in_zookeeper_or_in_a_log(cluster: Cluster) -> None:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=cluster.zk.hosts)
    zk.start(timeout=10)
    try:
        seen: list[str] = []

        def walk(path: str) -> None:
            data, _stat = zk.get(path)
            seen.append(path + " " + (data or b"").decode(errors="replace"))
            for child in zk.get_children(path):
                walk(f"{path.rstrip('/')}/{child}")

        walk(ROOT)
    finally:
        zk.stop()
    dump = "\n".join(seen)
    assert "/assignments/c2" in dump and '"node"' in dump
    assert SECRET not in dump
    for node in cluster.nodes.values():
        assert SECRET not in node.log_path.read_text(errors="replace")


def test_the_labelled_task_never_ran_on_an_unlabelled_node(cluster: Cluster) -> None:
    history = cluster.task("c4")["history"]
    placements = [e["detail"] for e in history if e["kind"] == "placement"]
    assert placements
    assert not [p for p in placements if "node n3 " in p or "node n4 " in p], placements


def test_after_all_that_every_side_holds_the_same_rows(cluster: Cluster) -> None:
    c = cluster
    c.writers.finish()
    for t in TASKS:
        src, dst = c.servers[t.source], c.servers[t.target]
        sql = f"SELECT id, v, note FROM {t.db}.t ORDER BY id"
        wait_for(
            f"{t.name}: the target to hold the source's rows",
            lambda src=src, dst=dst, sql=sql: query(src, sql) == query(dst, sql),
            timeout=120,
            every=1.0,
        )
    assert len(c.writers.errors) < 50, c.writers.errors[:5]
