"""Which node runs which task: Otter's three strategies, for whole tasks.

Otter balances the stages of one pipeline across nodes per batch, paying an RPC and
a ZooKeeper round trip per hop; duosync places a task's whole pipeline on one node
and moves it only when the strategy requires it. ``plan`` is pure: the leader
calls it with what ZooKeeper and the store say, and writes the moves it returns.

A node is *eligible* for a task when it is alive, not draining, and carries every
label the task requires (``options.placement.labels``). A task must move when it
has no node, or its node is dead, draining or not eligible; it is then placed:

- ``stick``: on the eligible node that runs the fewest tasks (ties by name). It
  stays there while that node lives and stays eligible: a node that joins
  receives no stick task until one needs a node.
- ``round_robin``: on the next eligible node in name order after the one the
  last round-robin placement chose (a cursor the leader keeps). After placing,
  round-robin tasks are rebalanced: while a round-robin task's node runs at least
  two tasks more than another node eligible for it, it moves there. So a node
  that joins receives its share, and no task moves unless that gap exists.
- ``random``: on a random eligible node; it then stays like a stick task.

A task no live node is eligible for stays unplaced (``Move.node`` None) until one
is; the leader says why in the task's events.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from duosync.spec import Strategy


@dataclass(frozen=True)
class NodeView:
    """A live node, as placement sees it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    draining: bool = False


@dataclass(frozen=True)
class TaskDemand:
    """An active task that needs a node, and the node it has now (if any)."""

    name: str
    strategy: Strategy = Strategy.STICK
    labels: Mapping[str, str] = field(default_factory=dict)
    current: str | None = None


@dataclass(frozen=True)
class Move:
    """Assign *task* to *node* (None: no eligible node; unassign it)."""

    task: str
    node: str | None
    previous: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...]
    #: the round-robin cursor after these moves: the node last chosen by it
    cursor: str | None


def eligible(task: TaskDemand, node: NodeView) -> bool:
    return not node.draining and all(node.labels.get(k) == v for k, v in task.labels.items())


def plan(
    tasks: Sequence[TaskDemand],
    nodes: Sequence[NodeView],
    cursor: str | None = None,
    rng: random.Random | None = None,
) -> Plan:
    """The moves that bring *tasks* to the nodes the strategies want (see the
    module docstring); tasks that may stay where they are do not appear."""
    rng = rng or random.Random()
    alive = {n.name: n for n in sorted(nodes, key=lambda n: n.name)}
    where: dict[str, str | None] = {}
    load = dict.fromkeys(alive, 0)
    moves: dict[str, Move] = {}
    for t in tasks:
        node = alive.get(t.current) if t.current else None
        if node is not None and eligible(t, node):
            where[t.name] = node.name
            load[node.name] += 1
    for t in sorted(tasks, key=lambda t: t.name):
        if t.name in where:
            continue
        candidates = [n for n in alive.values() if eligible(t, n)]
        chosen: str | None = None
        if candidates:
            if t.strategy is Strategy.ROUND_ROBIN:
                chosen = _next_after(cursor, [n.name for n in candidates])
                cursor = chosen
            elif t.strategy is Strategy.RANDOM:
                chosen = rng.choice(candidates).name
            else:
                chosen = min(candidates, key=lambda n: (load[n.name], n.name)).name
            load[chosen] += 1
        where[t.name] = chosen
        if chosen != t.current or t.current is None:
            moves[t.name] = Move(t.name, chosen, t.current, _why(t, alive, chosen))
    for move in _rebalance(tasks, alive, where, load):
        placed = moves.get(move.task)
        # placed in this round already (its node died, say): that is still why it moves
        moves[move.task] = (
            move if placed is None else Move(move.task, move.node, move.previous, placed.reason)
        )
    return Plan(tuple(moves[k] for k in sorted(moves)), cursor)


def _next_after(cursor: str | None, names: list[str]) -> str:
    """The first of *names* (sorted) after *cursor*, wrapping around."""
    for name in names:
        if cursor is None or name > cursor:
            return name
    return names[0]


def _why(task: TaskDemand, alive: Mapping[str, NodeView], chosen: str | None) -> str:
    if chosen is None:
        if task.labels:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(task.labels.items()))
            return f"no live node that is not draining carries the labels {wanted}"
        return "no live node that is not draining"
    if task.current is None:
        return f"placed ({task.strategy.value})"
    node = alive.get(task.current)
    if node is None:
        return f"node {task.current} is gone ({task.strategy.value})"
    if node.draining:
        return f"node {task.current} is draining ({task.strategy.value})"
    return f"node {task.current} lacks the task's labels ({task.strategy.value})"


def _rebalance(
    tasks: Sequence[TaskDemand],
    alive: Mapping[str, NodeView],
    where: dict[str, str | None],
    load: dict[str, int],
) -> list[Move]:
    """Move round-robin tasks from the busiest nodes while a node eligible for
    them runs two or more tasks fewer (one move at a time, so as few as needed)."""
    moves: list[Move] = []
    movable = sorted((t for t in tasks if t.strategy is Strategy.ROUND_ROBIN), key=lambda t: t.name)
    while True:
        best: tuple[int, TaskDemand, str] | None = None
        for t in movable:
            here = where.get(t.name)
            if here is None:
                continue
            targets = [n for n in alive.values() if n.name != here and eligible(t, n)]
            if not targets:
                continue
            to = min(targets, key=lambda n: (load[n.name], n.name)).name
            gap = load[here] - load[to]
            if gap >= 2 and (best is None or gap > best[0]):
                best = (gap, t, to)
        if best is None:
            return moves
        _gap, t, to = best
        here = where[t.name]
        assert here is not None
        load[here] -= 1
        load[to] += 1
        where[t.name] = to
        # previous: where the task runs now, before this plan (a handover from there)
        moves.append(Move(t.name, to, t.current, f"rebalanced from {here} (round_robin)"))
