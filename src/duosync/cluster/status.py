"""The cluster as users see it (``duosync node list``, ``GET /api/v1/cluster``, the
console): live nodes with their labels and tasks, the leader, drains, and which
node each task is assigned to with its epoch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from duosync.cluster.coordinator import Coordinator
from duosync.cluster.model import Assignment, ClusterAddress, NodeInfo


@dataclass(frozen=True)
class ClusterStatus:
    address: ClusterAddress
    nodes: tuple[NodeInfo, ...]
    leader: str | None
    drains: frozenset[str]
    assignments: dict[str, Assignment]

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.address.url,
            "leader": self.leader,
            "nodes": [
                {
                    "name": n.name,
                    "api": n.api,
                    "labels": n.labels,
                    "tasks": list(n.tasks),
                    "leader": n.name == self.leader,
                    "draining": n.name in self.drains,
                    "host": n.host,
                    "pid": n.pid,
                    "started_at": n.started_at,
                }
                for n in self.nodes
            ],
            # every drain, including those of nodes no longer alive (a drain outlives its node)
            "drains": sorted(self.drains),
            "assignments": {
                t: {"node": a.node, "epoch": a.epoch, "reason": a.reason, "at": a.at}
                for t, a in sorted(self.assignments.items())
            },
        }


def cluster_status(coord: Coordinator) -> ClusterStatus:
    return ClusterStatus(
        address=coord.address,
        nodes=tuple(coord.nodes()),
        leader=coord.leader(),
        drains=frozenset(coord.drains()),
        assignments=coord.assignments(),
    )


@contextlib.contextmanager
def cluster_client(address: ClusterAddress, wait: float = 10.0) -> Iterator[Coordinator]:
    """A ZooKeeper session for commands (``node list``, ``node drain``): it reads
    and writes the cluster's znodes but is no node (registers nothing)."""
    coord = Coordinator(address, NodeInfo(name="", api=""))
    coord.connect(wait)
    try:
        yield coord
    finally:
        coord.close()
