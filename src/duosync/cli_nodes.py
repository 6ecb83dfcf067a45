"""``duosync node list`` and ``duosync node drain``: a cluster's nodes, read from and
written to ZooKeeper directly (no node needs to answer)."""

from __future__ import annotations

import json
import os
import time

import click

from duosync.cli_app import cli
from duosync.errors import ConfigError

cluster_option = click.option(
    "--cluster",
    default=lambda: os.environ.get("DUOSYNC_CLUSTER") or None,
    metavar="zk://HOST:PORT[,HOST:PORT...]/PATH",
    help="The cluster ($DUOSYNC_CLUSTER).",
)


def _address(cluster: str | None) -> str:
    if not cluster:
        raise ConfigError(
            "which cluster? give --cluster zk://HOST:PORT/PATH or set $DUOSYNC_CLUSTER"
        )
    return cluster


@cli.group()
def node() -> None:
    """The nodes of a cluster (duosync serve --cluster ...): list, drain."""


@node.command("list")
@cluster_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def node_list(cluster: str | None, as_json: bool) -> None:
    """Live nodes: leader, labels, draining, the tasks each runs."""
    from duosync.cluster.model import ClusterAddress
    from duosync.cluster.status import cluster_client, cluster_status

    with cluster_client(ClusterAddress.parse(_address(cluster))) as coord:
        status = cluster_status(coord).as_json()
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    if not status["nodes"]:
        click.echo(f"no live node in {status['cluster']}")
    for n in status["nodes"]:
        marks = [m for m, on in (("leader", n["leader"]), ("draining", n["draining"])) if on]
        labels = ",".join(f"{k}={v}" for k, v in sorted(n["labels"].items())) or "-"
        click.echo(
            f"{n['name']:<16} {' '.join(marks) or '-':<16} labels {labels:<20} {n['api']:<28}"
            f" tasks: {', '.join(n['tasks']) or '-'}"
        )
    waiting = [t for t, a in status["assignments"].items() if a["node"] not in _live(status)]
    if waiting:
        click.echo(f"assigned to nodes that are gone (moving): {', '.join(waiting)}")


def _live(status: dict[str, object]) -> set[str]:
    nodes = status["nodes"]
    assert isinstance(nodes, list)
    return {str(n["name"]) for n in nodes}


@node.command("drain")
@click.argument("name")
@cluster_option
@click.option("--cancel", is_flag=True, help="End the drain: the node receives tasks again.")
@click.option(
    "--wait",
    "wait_seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait until the node runs no task (0: do not wait).",
)
def node_drain(name: str, cluster: str | None, cancel: bool, wait_seconds: float) -> None:
    """Move NAME's tasks to other nodes at their next checkpoint (before
    maintenance), and send it no task until the drain is cancelled."""
    from duosync.cluster.model import ClusterAddress
    from duosync.cluster.status import cluster_client

    with cluster_client(ClusterAddress.parse(_address(cluster))) as coord:
        known = {n.name: n for n in coord.nodes()}
        if name not in known and not cancel:
            raise ConfigError(
                f"no live node named {name!r} in {coord.address.url}",
                hint="duosync node list shows the live nodes",
            )
        coord.set_drain(name, not cancel)
        if cancel:
            click.echo(f"node {name}: drain ended; it receives tasks again")
            return
        click.echo(f"node {name}: draining; its tasks move at their next checkpoint")
        deadline = time.monotonic() + wait_seconds
        while wait_seconds > 0:
            now = {n.name: n for n in coord.nodes()}.get(name)
            if now is None or not now.tasks:
                click.echo(f"node {name}: runs no task now")
                return
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"node {name} still runs {', '.join(now.tasks)} after {wait_seconds:.0f}s",
                    hint="duosync node list shows where the tasks are; is a node with their"
                    " labels alive?",
                )
            time.sleep(0.25)
