"""The cluster's routes: ``GET /api/v1/cluster`` (nodes, leader, labels, tasks per
node, assignments with epochs) and drains of a node. On a service that runs alone
(no ``--cluster``) the view says so and drains are refused."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends

from duosync.cluster.runs import ClusterRuns
from duosync.cluster.status import cluster_status
from duosync.errors import ConfigError


def add_cluster_routes(
    app: FastAPI, api: str, auth: list[Depends], cluster: ClusterRuns | None
) -> None:
    def node_of(name: str) -> ClusterRuns:
        if cluster is None:
            raise ConfigError(
                f"node {name}: this service runs alone, not in a cluster",
                hint="start the nodes with duosync serve --cluster zk://HOST:PORT/PATH",
            )
        if name not in {n.name for n in cluster.coord.nodes()} | cluster.coord.drains():
            raise ConfigError(f"no live node named {name!r} in {cluster.coord.address.url}")
        return cluster

    @app.get(f"{api}/cluster", dependencies=auth, tags=["cluster"])
    def status() -> dict[str, Any]:
        """The nodes alive (labels, tasks, the leader, drains) and the node each task
        is assigned to, with its epoch; ``enabled`` false on a single service."""
        if cluster is None:
            return {"enabled": False, "node": None, "nodes": [], "assignments": {}}
        return {"enabled": True, "node": cluster.name} | cluster_status(cluster.coord).as_json()

    @app.post(f"{api}/cluster/nodes/{{name}}/drain", dependencies=auth, tags=["cluster"])
    def drain(name: str) -> dict[str, Any]:
        """Move the node's tasks to other nodes at their next checkpoint, and send it
        none until the drain ends (DELETE)."""
        runs = node_of(name)
        runs.coord.set_drain(name, True)
        return {"node": name, "draining": True}

    @app.delete(f"{api}/cluster/nodes/{{name}}/drain", dependencies=auth, tags=["cluster"])
    def undrain(name: str) -> dict[str, Any]:
        """End the node's drain: it receives tasks again."""
        runs = node_of(name)
        runs.coord.set_drain(name, False)
        return {"node": name, "draining": False}
