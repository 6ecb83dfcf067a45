"""Placement of tasks on cluster nodes: the three strategies, labels, drains."""

from __future__ import annotations

import random
from collections import Counter

from duosync.cluster.model import Assignment, ClusterAddress, NodeInfo, parse_labels
from duosync.cluster.placement import NodeView, TaskDemand, plan
from duosync.spec import Strategy, TaskSpec

RR = Strategy.ROUND_ROBIN


def _nodes(*names: str, **labels: dict[str, str]) -> list[NodeView]:
    return [NodeView(n, labels.get(n, {})) for n in names]


def _where(tasks: list[TaskDemand], nodes: list[NodeView], **kw: object) -> dict[str, str | None]:
    result = plan(tasks, nodes, **kw)  # type: ignore[arg-type]
    placed = {t.name: t.current for t in tasks}
    placed.update({m.task: m.node for m in result.moves})
    return placed


def test_stick_places_new_tasks_on_the_least_busy_node_and_keeps_them() -> None:
    nodes = _nodes("a", "b", "c")
    tasks = [TaskDemand("t1", current="a"), TaskDemand("t2", current="a"), TaskDemand("t3")]
    result = plan(tasks, nodes)
    assert [(m.task, m.node, m.previous) for m in result.moves] == [("t3", "b", None)]


def test_stick_moves_nothing_when_a_node_joins() -> None:
    tasks = [TaskDemand(f"t{i}", current="a") for i in range(4)]
    assert plan(tasks, _nodes("a", "b")).moves == ()


def test_a_dead_nodes_tasks_spread_over_the_live_ones() -> None:
    tasks = [TaskDemand(f"t{i}", current="a" if i < 4 else "b") for i in range(6)]
    result = plan(tasks, _nodes("b", "c"))
    moved = {m.task: m.node for m in result.moves}
    assert set(moved) == {"t0", "t1", "t2", "t3"}
    assert all(m.previous == "a" and "node a is gone" in m.reason for m in result.moves)
    after = Counter(_where(tasks, _nodes("b", "c")).values())
    assert after == Counter({"b": 3, "c": 3})


def test_round_robin_rotates_and_a_joining_node_receives_its_share() -> None:
    tasks = [TaskDemand(f"t{i}", RR) for i in range(6)]
    first = plan(tasks, _nodes("a", "b"))
    assert [m.node for m in first.moves] == ["a", "b", "a", "b", "a", "b"]
    assert first.cursor == "b"
    placed = [TaskDemand(m.task, RR, current=m.node) for m in first.moves]
    joined = plan(placed, _nodes("a", "b", "c"), cursor=first.cursor)
    # c gets two tasks (6 over 3 nodes), and only two tasks move
    assert Counter(m.node for m in joined.moves) == Counter({"c": 2})
    assert {m.previous for m in joined.moves} == {"a", "b"}
    assert all("rebalanced" in m.reason for m in joined.moves)
    again = [
        TaskDemand(
            t.name, RR, current=next((m.node for m in joined.moves if m.task == t.name), t.current)
        )
        for t in placed
    ]
    assert plan(again, _nodes("a", "b", "c")).moves == ()  # balanced: nothing moves


def test_round_robin_counts_other_tasks_but_moves_only_its_own() -> None:
    tasks = [
        TaskDemand("s1", current="a"),
        TaskDemand("s2", current="a"),
        TaskDemand("r1", RR, current="a"),
    ]
    result = plan(tasks, _nodes("a", "b"))
    assert [(m.task, m.node) for m in result.moves] == [("r1", "b")]


def test_random_uses_the_generator_and_then_sticks() -> None:
    tasks = [TaskDemand(f"t{i}", Strategy.RANDOM) for i in range(20)]
    placed = _where(tasks, _nodes("a", "b", "c"), rng=random.Random(7))
    assert set(placed.values()) == {"a", "b", "c"}
    kept = [TaskDemand(n, Strategy.RANDOM, current=w) for n, w in placed.items()]
    assert plan(kept, _nodes("a", "b", "c", "d"), rng=random.Random(7)).moves == ()


def test_labels_restrict_the_nodes_and_never_fall_back() -> None:
    nodes = _nodes("a", "b", "c", b={"dc": "east"})
    east = TaskDemand("t", labels={"dc": "east"})
    assert _where([east], nodes)["t"] == "b"
    # the only labelled node is gone: the task waits, it does not run elsewhere
    result = plan([TaskDemand("t", labels={"dc": "east"}, current="b")], _nodes("a", "c"))
    assert [(m.node, m.previous) for m in result.moves] == [(None, "b")]
    assert "dc=east" in result.moves[0].reason


def test_a_task_leaves_a_node_that_lost_its_label() -> None:
    nodes = _nodes("a", "b", a={"dc": "west"}, b={"dc": "east"})
    result = plan([TaskDemand("t", labels={"dc": "east"}, current="a")], nodes)
    assert [(m.node, m.previous) for m in result.moves] == [("b", "a")]
    assert "lacks the task's labels" in result.moves[0].reason


def test_a_draining_node_is_emptied_and_receives_nothing() -> None:
    nodes = [NodeView("a", draining=True), NodeView("b"), NodeView("c")]
    tasks = [TaskDemand("t1", current="a"), TaskDemand("t2", current="a"), TaskDemand("t3")]
    placed = _where(tasks, nodes)
    assert "a" not in placed.values()
    reasons = {m.task: m.reason for m in plan(tasks, nodes).moves}
    assert "draining" in reasons["t1"]


def test_no_node_at_all() -> None:
    result = plan([TaskDemand("t")], [])
    assert [(m.task, m.node) for m in result.moves] == [("t", None)]


def test_cluster_address_and_values_round_trip() -> None:
    address = ClusterAddress.parse("zk://127.0.0.1:2181,zk2:2182/dc/duosync/")
    assert (address.hosts, address.root) == ("127.0.0.1:2181,zk2:2182", "/dc/duosync")
    assert ClusterAddress.parse("zk://h:1").root == "/duosync"
    info = NodeInfo("n1", "http://h:1", {"dc": "east"}, ("t1",), "host", 12, 3.5)
    assert NodeInfo.from_json(info.to_json()) == info
    a = Assignment("t1", "n1", "n0", "why", 1.0)
    assert Assignment.from_json("t1", a.to_json(), 42) == Assignment(
        "t1", "n1", "n0", "why", 1.0, 42
    )
    assert parse_labels(["dc=east", "rack=r1"]) == {"dc": "east", "rack": "r1"}


def test_bad_cluster_input_is_refused_clearly() -> None:
    import pytest

    from duosync.errors import ConfigError

    for url, words in (
        ("http://h:1/x", "expected zk://"),
        ("zk://user:pw@h:1/x", "credentials"),
        ("zk://h:1/a//b", "not a ZooKeeper path"),
    ):
        with pytest.raises(ConfigError, match=words):
            ClusterAddress.parse(url)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_labels(["dc"])


def test_placement_options_in_a_spec() -> None:
    import pytest
    from pydantic import ValidationError

    spec = TaskSpec.model_validate(
        {
            "name": "t",
            "source": "mariadb://root@127.0.0.1:1",
            "target": "mariadb://root@127.0.0.1:2",
            "select": {"objects": ["d.t"]},
            "options": {"placement": {"strategy": "round_robin", "labels": {"dc": "east"}}},
        }
    )
    assert spec.options.placement.strategy is RR
    assert spec.options.placement.labels == {"dc": "east"}
    with pytest.raises(ValidationError, match="strategy"):
        TaskSpec.model_validate(
            {
                "name": "t",
                "source": "mariadb://root@127.0.0.1:1",
                "target": "mariadb://root@127.0.0.1:2",
                "select": {"objects": ["d.t"]},
                "options": {"placement": {"strategy": "nearest"}},
            }
        )
