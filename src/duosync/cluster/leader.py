"""The leader: one node, elected through ZooKeeper, places the active tasks.

Every ``TICK`` seconds (and at once when nodes come or go) the leader reads the
live nodes and the drains from ZooKeeper and the tasks from the shared metadata
store, asks ``placement.plan`` where each active task must run, and writes only the
moves (``ROOT/assignments/TASK``). Each move is also a ``placement`` event of the
task in the store, with its node, epoch and reason: the task's failover history.
Tasks no longer active (paused, failed, completed, deleted) lose their assignment.

A leader that loses its ZooKeeper session cannot write anything (ZooKeeper refuses
requests of an expired session), so two leaders never both place tasks: a new one
is elected when the old one's session expires, and it starts from what is in
ZooKeeper, not from what the old one had in memory (the round-robin cursor is kept
in ZooKeeper too). Nodes keep running their tasks meanwhile: an election moves no
task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time

from kazoo.exceptions import KazooException, LockTimeout, NoNodeError
from pydantic import ValidationError

from duosync.cluster.coordinator import Coordinator
from duosync.cluster.model import Assignment
from duosync.cluster.placement import Move, NodeView, TaskDemand, plan
from duosync.errors import DuosyncError
from duosync.service.runtime.states import ACTIVE
from duosync.service.store.metadata import MetadataStore, TaskRecord
from duosync.spec import Placement

log = logging.getLogger(__name__)

#: seconds between placement rounds of the leader
TICK = 0.5


class Leader:
    """Placement rounds of the elected node (``tick``)."""

    def __init__(self, coord: Coordinator, store: MetadataStore) -> None:
        self.coord = coord
        self.store = store
        self.rng = random.Random()
        #: the reason last recorded for a task left without a node (said once)
        self._unplaced: dict[str, str] = {}

    def tick(self) -> list[Move]:
        """One placement round; the moves it wrote."""
        drains = self.coord.drains()
        nodes = [NodeView(n.name, n.labels, n.name in drains) for n in self.coord.nodes()]
        active = {r.name: r for r in self.store.list_tasks() if r.state in ACTIVE}
        current = self.coord.assignments()
        for task in sorted(set(current) - set(active)):
            self._unassign(task, "the task is no longer active")
        demands = [
            _demand(r, current[name].node if name in current else None)
            for name, r in sorted(active.items())
        ]
        result = plan(demands, nodes, self._cursor(), self.rng)
        written = []
        for move in result.moves:
            if move.node is None:
                self._left_unplaced(move, current.get(move.task))
            else:
                self._write(move)
                written.append(move)
        if result.cursor is not None:
            self._save_cursor(result.cursor)
        return written

    def _write(self, move: Move) -> None:
        assert move.node is not None
        path = self.coord.address.assignment(move.task)
        value = Assignment(move.task, move.node, move.previous, move.reason, time.time())
        try:
            stat = self.coord.zk.set(path, value.to_json())
        except NoNodeError:
            self.coord.zk.create(path, value.to_json())
            stat = self.coord.zk.exists(path)
        epoch = int(stat.mzxid) if stat is not None else 0
        self._unplaced.pop(move.task, None)
        log.info("cluster: task %s -> %s (epoch %d): %s", move.task, move.node, epoch, move.reason)
        self._note(move.task, f"assigned to node {move.node} (epoch {epoch}): {move.reason}")

    def _left_unplaced(self, move: Move, had: Assignment | None) -> None:
        if had is not None:
            self._unassign(move.task, move.reason)
        if self._unplaced.get(move.task) != move.reason:
            self._unplaced[move.task] = move.reason
            log.warning("cluster: task %s waits for a node: %s", move.task, move.reason)
            self._note(move.task, f"waiting for a node: {move.reason}")

    def _unassign(self, task: str, why: str) -> None:
        with contextlib.suppress(NoNodeError):
            self.coord.zk.delete(self.coord.address.assignment(task))
            log.info("cluster: task %s unassigned: %s", task, why)

    def _note(self, task: str, detail: str) -> None:
        try:
            self.store.note(task, detail, "placement")
        except DuosyncError as exc:  # deleted meanwhile, or the store is down: logged
            log.warning("cluster: task %s: cannot record %r: %s", task, detail, exc)

    def _cursor(self) -> str | None:
        data, _stat = self.coord.zk.get(self.coord.address.assignments())
        with contextlib.suppress(ValueError, AttributeError):
            cursor = json.loads(data.decode() or "{}").get("round_robin_cursor")
            return None if cursor is None else str(cursor)
        return None

    def _save_cursor(self, cursor: str) -> None:
        if cursor != self._cursor():
            data = json.dumps({"round_robin_cursor": cursor}).encode()
            self.coord.zk.set(self.coord.address.assignments(), data)


def _demand(record: TaskRecord, node: str | None) -> TaskDemand:
    raw = (record.spec.get("options") or {}).get("placement") or {}
    try:
        wanted = Placement.model_validate(raw)
    except ValidationError:  # stored by a validated spec; a hand-edited store: defaults
        wanted = Placement()
    return TaskDemand(record.name, wanted.strategy, wanted.labels, node)


def elect_and_lead(coord: Coordinator, store: MetadataStore, stop: threading.Event) -> None:
    """Stand for election until *stop*; while elected, place tasks every ``TICK``.

    Runs on a thread of its own. A round that fails (ZooKeeper or the store
    unavailable for a moment) is logged and tried again at the next tick."""
    lock = coord.zk.Lock(coord.address.election(), identifier=coord.info.name)
    leader = Leader(coord, store)
    while not stop.is_set():
        if not coord.usable:
            stop.wait(TICK)
            continue
        try:
            if not lock.acquire(timeout=1.0):
                continue
        except (LockTimeout, KazooException):
            stop.wait(TICK)
            continue
        log.info("cluster: node %s is the leader", coord.info.name)
        try:
            while not stop.is_set() and coord.usable:
                try:
                    leader.tick()
                except (KazooException, DuosyncError) as exc:
                    log.warning("cluster: placement round failed: %s", exc)
                coord.wait_nodes_change(TICK)
        finally:
            with contextlib.suppress(KazooException):
                lock.release()
            log.info("cluster: node %s is no longer the leader", coord.info.name)
