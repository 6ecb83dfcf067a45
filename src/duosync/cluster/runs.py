"""What every cluster node does: run the tasks assigned to it, and only those.

Each ``tick`` (every ``POLL`` s, on the supervisor's thread):

- ZooKeeper unusable (connection suspended, session lost): give every run up at
  its next checkpoint and register again when ZooKeeper answers. A node that
  cannot prove it is live must not apply (see ``coordinator``).
- A run whose task is no longer assigned here, or is assigned here under a newer
  epoch, is given up at its next checkpoint.
- A task assigned here that this node does not run is started under the
  assignment's epoch, once the *handover* is done: the previous node is gone or
  no longer lists the task among those it runs (it let go at its checkpoint), or
  ``HANDOVER_WAIT`` passed (the epoch fence makes starting safe anyway; waiting
  only spares the old run a refused commit). A task is never started twice under
  one epoch once its run was fenced there.
- Live figures of the runs are published every ``PUBLISH`` s, for the other
  nodes' API, console and /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kazoo.exceptions import KazooException

from duosync.cluster.coordinator import Coordinator
from duosync.cluster.leader import elect_and_lead
from duosync.cluster.model import Assignment, NodeInfo
from duosync.errors import DuosyncError
from duosync.service.runtime.live import RemoteLive
from duosync.service.runtime.states import ACTIVE
from duosync.service.store.metadata import MetadataStore, StoreLocation

if TYPE_CHECKING:
    from duosync.service.runtime.supervisor import Supervisor

log = logging.getLogger(__name__)

#: seconds between looks at the assignments
POLL = 0.25
#: seconds a new node waits for the previous one to let a task go
HANDOVER_WAIT = 30.0
#: seconds between publications of live figures
PUBLISH = 2.0


@dataclass(frozen=True)
class _Held:
    """What the last good look at ZooKeeper said this node holds, and when
    (time.monotonic() before the look)."""

    at: float
    epochs: dict[str, int]


class ClusterRuns:
    """The cluster side of a node's supervisor."""

    poll = POLL

    def __init__(self, coord: Coordinator, store: StoreLocation) -> None:
        self.coord = coord
        #: the leader's own store handle (it is thread-safe; closed with the node)
        self.store = MetadataStore(store)
        self._leading = threading.Event()
        self._leader = threading.Thread(
            target=elect_and_lead,
            args=(coord, self.store, self._leading),
            name="leader",
            daemon=True,
        )
        self._leader.start()
        #: when this node first saw each assignment waiting for a handover
        self._waiting: dict[tuple[str, int], float] = {}
        #: epochs under which a run here was fenced: never started again
        self._fenced: set[tuple[str, int]] = set()
        self._published = 0.0
        self._held = _Held(float("-inf"), {})
        self._unpublished: set[str] = set()
        self._lives: dict[str, RemoteLive] = {}
        self._lives_at = 0.0

    @property
    def name(self) -> str:
        return self.coord.info.name

    def confirmed(self, held: _Held | None = None) -> bool:
        """Whether ZooKeeper confirmed this node's membership (in *held*, default
        the last look) less than two thirds of the session timeout ago: the
        session cannot have expired since."""
        age = time.monotonic() - (held or self._held).at
        return self.coord.usable and age < self.coord.session_timeout * 2 / 3

    def holds(self, task: str, epoch: int) -> Callable[[], bool]:
        """The commit check of a run of *task* under *epoch*
        (``sync.checkpoint.Tenure``): membership confirmed, and in that same look
        at ZooKeeper the task assigned here under this very epoch. So no other node
        can have been given the task since, and a node frozen or cut off for
        longer fails it at once when it runs again, before it commits anything
        (even after it registered again and the task came back to it under a new
        epoch: the old run's epoch is not that one)."""

        def check() -> bool:
            held = self._held  # one look: its time and its assignments together
            return self.confirmed(held) and held.epochs.get(task) == epoch

        return check

    def close(self) -> None:
        self._leading.set()
        self._leader.join(5.0)
        self.coord.close()
        self.store.close()

    def tick(self, sup: Supervisor, store: MetadataStore) -> None:
        runs = sup.runs()
        if not self.coord.usable:
            for name, r in runs.items():
                if r.alive and not r.run.shutdown:
                    log.warning("task %s: ZooKeeper unusable; stopping at the checkpoint", name)
                    r.run.give_up()
            if self.coord.zk.connected:
                self.coord.register()
            else:
                self.coord.wait_state_change(self.poll)
            return
        try:
            asked = time.monotonic()
            mine = {t: a for t, a in self.coord.assignments().items() if a.node == self.name}
            nodes = {n.name: n for n in self.coord.nodes()}
        except (KazooException, DuosyncError) as exc:
            log.warning("cluster: cannot read the assignments: %s", exc)
            return
        if self.coord.usable and self.name in nodes:
            # ZooKeeper answered within our session, we are registered in it, and
            # these are the assignments it holds for us
            self._held = _Held(asked, {t: a.epoch for t, a in mine.items()})
        for name, r in runs.items():
            a = mine.get(name)
            if r.run.fenced and r.run.epoch is not None:
                self._fenced.add((name, r.run.epoch))
            if r.alive and not r.run.shutdown and (a is None or a.epoch != r.run.epoch):
                log.info("task %s: assigned elsewhere now; giving it up at the checkpoint", name)
                r.run.give_up()
        for name, a in sorted(mine.items()):
            had = runs.get(name)
            if had is not None and had.alive:
                continue
            if (name, a.epoch) in self._fenced or not self._handed_over(a, nodes):
                continue
            record = store.find_task(name)
            if record is None or record.state not in ACTIVE:
                continue  # paused or done: the leader unassigns it
            sup.start_run(
                name, record.state.value, epoch=a.epoch, confirmed=self.holds(name, a.epoch)
            )
        alive = tuple(sorted(n for n, r in sup.runs().items() if r.alive))
        self.coord.set_tasks(alive)
        self._publish(sup, alive)

    def _handed_over(self, a: Assignment, nodes: dict[str, NodeInfo]) -> bool:
        key = (a.task, a.epoch)
        if a.previous is None or a.previous == self.name:
            return True
        before = nodes.get(a.previous)
        if before is None or a.task not in before.tasks:
            self._waiting.pop(key, None)
            return True
        first = self._waiting.setdefault(key, time.monotonic())
        if time.monotonic() - first >= HANDOVER_WAIT:
            log.warning(
                "task %s: node %s still lists it after %.0fs; starting (the epoch fences it)",
                a.task,
                a.previous,
                HANDOVER_WAIT,
            )
            return True
        return False

    def _publish(self, sup: Supervisor, alive: tuple[str, ...]) -> None:
        now = time.monotonic()
        if now - self._published < PUBLISH:
            return
        self._published = now
        for name, r in sup.runs().items():
            if name in alive:
                self.coord.publish_live(name, r.run.live.snapshot(chart=True))
                self._unpublished.discard(name)
            elif name not in self._unpublished:
                self.coord.remove_live(name)
                self._unpublished.add(name)

    # -- other nodes' figures (the API's view of the whole cluster) ------------------

    def remote_live(self, task: str) -> RemoteLive | None:
        try:
            data = self.coord.live_of(task)
        except DuosyncError:
            return None
        return None if data is None else RemoteLive(data)

    def remote_lives(self) -> dict[str, RemoteLive]:
        """Every task's published figures (cached for a second: /metrics and the
        task list ask for all of them at once)."""
        if time.monotonic() - self._lives_at < 1.0:
            return dict(self._lives)
        out: dict[str, RemoteLive] = {}
        try:
            for task in self.coord.zk.get_children(self.coord.address.lives()):
                got = self.remote_live(task)
                if got is not None:
                    out[task] = got
        except KazooException:
            return dict(self._lives)
        self._lives, self._lives_at = out, time.monotonic()
        return dict(out)
