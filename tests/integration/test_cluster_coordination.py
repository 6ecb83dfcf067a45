"""Cluster coordination on a real ZooKeeper: registration, names, the leader and
its successor, epochs that only grow (across ZooKeeper restarts too), drains, and
what a node may claim while ZooKeeper is gone."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from duosync.cluster.coordinator import Coordinator
from duosync.cluster.leader import Leader, elect_and_lead
from duosync.cluster.model import ClusterAddress, NodeInfo
from duosync.cluster.runs import ClusterRuns
from duosync.errors import ConfigError
from duosync.service.runtime.states import State
from duosync.service.runtime.supervisor import Supervisor
from duosync.service.store.metadata import MetadataStore
from tests.servers import ZooKeeperServer

pytestmark = pytest.mark.integration

_roots = itertools.count()


@pytest.fixture
def address(zookeeper: ZooKeeperServer) -> ClusterAddress:
    return ClusterAddress.parse(
        f"zk://{zookeeper.hosts}/coord-test-{time.time_ns()}-{next(_roots)}"
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    with MetadataStore(tmp_path / "store.db") as st:
        yield st


def _node(address: ClusterAddress, name: str, timeout: float = 2.0, **labels: str) -> Coordinator:
    coord = Coordinator(address, NodeInfo(name, f"http://{name}:1", dict(labels)), timeout)
    coord.start(wait=5)
    return coord


def _wait(what: str, check: object, timeout: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_nodes_register_and_a_live_name_is_refused(address: ClusterAddress) -> None:
    a, b = _node(address, "a", east="1"), _node(address, "b")
    try:
        assert [n.name for n in a.nodes()] == ["a", "b"]
        assert a.nodes()[0].labels == {"east": "1"}
        twin = Coordinator(address, NodeInfo("a", "http://elsewhere:1"), 1.0)
        with pytest.raises(ConfigError, match="already named 'a'"):
            twin.start(wait=1)
        twin.close()
        b.set_tasks(("t1",))
        assert a.nodes()[1].tasks == ("t1",)
    finally:
        a.close()
        b.close()
    # a node that ended its session is gone at once
    watcher = Coordinator(address, NodeInfo("", ""))
    watcher.connect()
    try:
        assert watcher.nodes() == []
    finally:
        watcher.close()


def _task(store: MetadataStore, name: str, strategy: str = "stick") -> None:
    spec = {"name": name, "options": {"placement": {"strategy": strategy}}}
    store.create_task(name, spec, State.INCREMENTAL_RUNNING)


def test_epochs_grow_with_every_move_and_across_a_zookeeper_restart(
    address: ClusterAddress, store: MetadataStore, zookeeper: ZooKeeperServer
) -> None:
    a, b = _node(address, "a"), _node(address, "b")
    leader = Leader(a, store)
    try:
        _task(store, "t")
        assert [m.node for m in leader.tick()] == ["a"]
        first = a.assignment("t")
        assert first is not None and first.node == "a" and first.epoch > 0
        assert leader.tick() == []  # nothing to move: nothing written, same epoch
        assert a.assignment("t") == first
        a.set_drain("a", True)
        leader.tick()
        moved = a.assignment("t")
        assert moved is not None and moved.node == "b" and moved.previous == "a"
        assert moved.epoch > first.epoch and "draining" in moved.reason
        a.set_drain("a", False)
        zookeeper.kill9()
        zookeeper.restart()
        # After a kill -9 ZooKeeper restarts its sessions slowly on a loaded machine (seen
        # once past 20 s in a full run): the point here is the epochs, not the speed.
        _wait("the nodes to be usable again", lambda: a.usable and b.usable, timeout=90.0)
        b.close()  # the task's node leaves: it moves back under a larger epoch
        _wait("b to be gone", lambda: [n.name for n in a.nodes()] == ["a"])
        leader.tick()
        back = a.assignment("t")
        assert back is not None and back.node == "a" and back.epoch > moved.epoch
        events = [e.detail for e in store.history("t") if e.kind == "placement"]
        assert len(events) == 3 and "node b is gone" in events[-1]
        # no longer active: unassigned
        store.enter_state("t", State.PAUSED)
        leader.tick()
        assert a.assignment("t") is None
    finally:
        a.close()
        b.close()


def test_the_leader_dies_and_another_takes_over(
    address: ClusterAddress, store: MetadataStore
) -> None:
    nodes = [_node(address, n) for n in ("a", "b", "c")]
    stops = [threading.Event() for _ in nodes]
    threads = [
        threading.Thread(target=elect_and_lead, args=(n, store, s), daemon=True)
        for n, s in zip(nodes, stops, strict=True)
    ]
    for t in threads:
        t.start()
    try:
        _task(store, "t")
        _wait("a leader and a placement", lambda: nodes[0].assignment("t") is not None)
        first = nodes[0].leader()
        assert first in ("a", "b", "c")
        i = ["a", "b", "c"].index(first)
        stops[i].set()
        nodes[i].close()  # the leader's session ends
        rest = [n for j, n in enumerate(nodes) if j != i]
        _wait("a new leader", lambda: rest[0].leader() not in (None, first))
        # the new leader goes on placing
        _task(store, "u")
        _wait("u placed by the new leader", lambda: rest[0].assignment("u") is not None)
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(5)
        for n in nodes:
            n.close()


def test_a_node_cut_off_from_zookeeper_claims_nothing(
    address: ClusterAddress, store: MetadataStore, zookeeper: ZooKeeperServer, tmp_path: Path
) -> None:
    coord = _node(address, "a", timeout=2.0)
    runs = ClusterRuns(coord, tmp_path / "store.db")
    sup = Supervisor(tmp_path / "store.db", cluster=runs)
    try:
        runs.tick(sup, store)
        assert runs.confirmed()
        zookeeper.kill9()
        # within two thirds of the session timeout the node stops claiming
        _wait("the claim to lapse", lambda: not runs.confirmed(), timeout=2.0 * 2 / 3 + 0.5)
        runs.tick(sup, store)
        assert not runs.confirmed()
        zookeeper.restart()
        _wait("the node to register again", lambda: (runs.tick(sup, store), runs.confirmed())[1])
        assert [n.name for n in coord.nodes()] == ["a"]
    finally:
        runs.close()
