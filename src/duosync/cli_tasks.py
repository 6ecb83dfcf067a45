"""``duosync task ...``, ``duosync precheck`` and ``duosync serve``: the task service
from the command line, over the same functions the REST API calls."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from duosync.cli_app import Context, cli, skip_option, spec_option
from duosync.errors import ConfigError

if TYPE_CHECKING:
    from duosync.cluster.runs import ClusterRuns


@cli.group()
def task() -> None:
    """Tasks in the metadata store: list, show, create, start, pause, resume, release.

    start and resume only change the task's state: a running `duosync serve` on
    the same home runs it (or run it here with `duosync migrate -f SPEC`)."""


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@task.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def task_list(ctx: Context, as_json: bool) -> None:
    """Every task with its state."""
    from duosync.service import views
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        rows = [views.task_summary(st, r, None) for r in st.list_tasks()]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no tasks")
    for r in rows:
        extra = f"  ({r['error']})" if r["error"] else ""
        if r["health"]["retrying"]:
            extra = f"  (retrying, attempt {r['health']['attempts']}: {r['health']['last_error']})"
        click.echo(f"{r['name']:<32} {r['state']:<24} {r['source']} -> {r['target']}{extra}")


@task.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def task_show(ctx: Context, name: str, as_json: bool) -> None:
    """A task: state, pre-check results and history (never a password)."""
    from duosync.service import views
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        detail = views.task_detail(st, st.get_task(name), None)
    if as_json:
        _echo_json(detail)
        return
    click.echo(
        f"task {detail['name']}: {detail['state']}  ({detail['source']} -> {detail['target']})"
    )
    if detail["error"]:
        click.echo(f"  error: {detail['error']}")
    h = detail["health"]
    if h["retrying"]:
        nxt = f", next attempt at {_when(h['next_attempt_at'])}" if h["next_attempt_at"] else ""
        click.echo(
            f"  retrying: {h['attempts']} failed attempts since {_when(h['since'])}{nxt};"
            f" last error: {h['last_error']}"
        )
    elif h["retries_total"]:
        click.echo(f"  healthy ({h['retries_total']} retries in all)")
    if detail["actions"]:
        click.echo(f"  actions: {', '.join(detail['actions'])}")
    for c in detail["prechecks"]:
        skipped = " (skipped)" if c["skipped"] else ""
        click.echo(f"  pre-check {c['name']}: {c['status']}{skipped}: {c['detail']}")
    for e in detail["history"]:
        arrow = (
            f"{e['kind']} ({e['to']})"
            if e["kind"] in ("retry", "recovered")
            else f"{e['from']} -> {e['to']}"
            if e["from"] and e["from"] != e["to"]
            else e["to"]
        )
        note = f"  {e['detail']}" if e["detail"] else ""
        click.echo(f"  {_when(e['at'])}  {arrow}{note}")


@task.command("create")
@spec_option("Task spec (YAML); see examples/.")
@click.pass_obj
def task_create(ctx: Context, spec_file: Path) -> None:
    """Store a new task, not started."""
    from duosync.service.runtime import tasks
    from duosync.service.store.metadata import MetadataStore
    from duosync.specfile import load_spec

    spec = load_spec(spec_file)
    with MetadataStore(ctx.store) as st:
        record = tasks.create_task(st, spec)
    click.echo(f"task {record.name}: {record.state.value}")


def _action(ctx: Context, name: str, what: str, **kwargs: Any) -> None:
    from duosync.service.runtime import tasks
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        record = getattr(tasks, what)(st, name, **kwargs)
    click.echo(f"task {record.name}: {record.state.value}")


@task.command("start")
@click.argument("name")
@skip_option
@click.pass_obj
def task_start(ctx: Context, name: str, skip: tuple[str, ...]) -> None:
    """Start a task (pre-checks first); `duosync serve` runs it."""
    _action(ctx, name, "start", skip=skip)


@task.command("pause")
@click.argument("name")
@click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=30,
    show_default=True,
    help="Seconds to wait for its runner to stop at a checkpoint.",
)
@click.pass_obj
def task_pause(ctx: Context, name: str, wait: float) -> None:
    """Pause a running task at its next checkpoint."""
    _action(ctx, name, "pause", wait=wait)


@task.command("resume")
@click.argument("name")
@click.pass_obj
def task_resume(ctx: Context, name: str) -> None:
    """Resume a paused task in the phase it was paused in."""
    _action(ctx, name, "resume")


@task.command("cutover")
@click.argument("name")
@click.pass_obj
def task_cutover(ctx: Context, name: str) -> None:
    """Writes move to the target: create the triggers a one-way task with incremental
    sync left for now (options.routines), then release the task. Pause it first."""
    from duosync.service.phases.cutover import cutover
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        outcomes = cutover(st, name, lambda line: click.echo(line, err=True))
        record = st.get_task(name)
    created = sum(1 for o in outcomes if o.created)
    click.echo(
        f"task {record.name}: {record.state.value}; {created} of {len(outcomes)} triggers created"
    )


@task.command("release")
@click.argument("name")
@click.pass_obj
def task_release(ctx: Context, name: str) -> None:
    """End a task for good (not started, paused, failed or completed)."""
    _action(ctx, name, "release")


@task.command("skip-check")
@click.argument("name")
@click.argument("item")
@click.pass_obj
def task_skip_check(ctx: Context, name: str, item: str) -> None:
    """Skip a failed pre-check ITEM of task NAME (recorded); then start it again."""
    _action(ctx, name, "skip_check", item=item)


@task.command("reverse")
@click.argument("name")
@click.pass_obj
def task_reverse(ctx: Context, name: str) -> None:
    """Configure the reverse task of two-way task NAME (while it is monitoring)."""
    from duosync.service.runtime import tasks
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        record = tasks.configure_reverse(st, name)
    click.echo(f"task {record.name}: {record.state.value}")


@cli.command()
@spec_option("Task spec (YAML) to check.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def precheck(spec_file: Path, as_json: bool) -> None:
    """Run a task's pre-checks without starting it; exit 1 if an item fails."""
    from duosync.service.prechecks.checks import Status
    from duosync.service.runtime.tasks import default_prechecks
    from duosync.specfile import load_spec

    results = default_prechecks(load_spec(spec_file))
    if as_json:
        _echo_json(
            [{"name": r.name, "status": r.status.value, "detail": r.detail} for r in results]
        )
    else:
        for r in results:
            click.echo(f"{r.status.value:<5} {r.name}: {r.detail}")
    if any(r.status is Status.FAIL for r in results):
        raise SystemExit(1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--cluster",
    default=lambda: os.environ.get("DUOSYNC_CLUSTER") or None,
    metavar="zk://HOST:PORT[,HOST:PORT...]/PATH",
    help="Join the cluster kept in this ZooKeeper ensemble and path ($DUOSYNC_CLUSTER);"
    " needs --node and a shared --store.",
)
@click.option("--node", "node_name", default=None, help="This node's name in the cluster.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    help="A label of this node (repeatable); tasks with options.placement.labels run only"
    " on nodes carrying them.",
)
@click.option(
    "--advertise",
    default=None,
    metavar="URL",
    help="Where users and the console reach this node's API (default: http://HOST:PORT).",
)
@click.option(
    "--session-timeout",
    type=click.FloatRange(1.0, 60.0),
    default=4.0,
    show_default=True,
    help="ZooKeeper session timeout (s): a node silent this long is dead and its tasks"
    " move; a node cut off from ZooKeeper stops applying before it.",
)
@click.pass_obj
def serve(
    ctx: Context,
    host: str,
    port: int,
    cluster: str | None,
    node_name: str | None,
    labels: tuple[str, ...],
    advertise: str | None,
    session_timeout: float,
) -> None:
    """Run the REST API, the web console and the task runners.

    The API token is $DUOSYNC_API_TOKEN, or a random one kept in HOME/api-token.
    Tasks that were running when the service last stopped are resumed. With
    --cluster, this process is one node of a cluster: it runs the tasks the
    leader assigns to it, and answers for every task of the cluster."""
    import uvicorn

    from duosync.api.app import create_app
    from duosync.api.token import api_token

    who = f" [{node_name}]" if cluster and node_name else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s{who} %(name)s: %(message)s")
    token, origin = api_token(ctx.home)
    api = advertise or f"http://{host}:{port}"
    runs = _join_cluster(ctx, cluster, node_name, labels, api, session_timeout) if cluster else None
    if runs is None and (node_name or labels):
        raise ConfigError("--node and --label need --cluster zk://HOST:PORT/PATH")
    app = create_app(ctx.store, token, cluster=runs)
    where = f", node {runs.name} of {runs.coord.address.url}" if runs is not None else ""
    click.echo(
        f"duosync serve: console {api}/console/ , API {api}/docs , token from {origin}{where}",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _join_cluster(
    ctx: Context,
    url: str,
    node_name: str | None,
    labels: tuple[str, ...],
    api: str,
    session_timeout: float,
) -> ClusterRuns:
    import time

    from duosync.cluster.coordinator import Coordinator
    from duosync.cluster.model import ClusterAddress, NodeInfo, check_node_name, parse_labels
    from duosync.cluster.runs import ClusterRuns

    address = ClusterAddress.parse(url)
    if not node_name:
        raise ConfigError("--cluster needs --node NAME: every node of a cluster has a name")
    if isinstance(ctx.store, Path):
        raise ConfigError(
            f"cluster {address.url}: the nodes of a cluster share one metadata store, and"
            f" {ctx.store} is a file of this machine",
            hint="give every node --store mariadb://USER@HOST:PORT/DB (or postgresql://...)",
        )
    info = NodeInfo(
        name=check_node_name(node_name),
        api=api,
        labels=parse_labels(labels),
        started_at=time.time(),
    )
    coord = Coordinator(address, info, session_timeout)
    coord.start()
    return ClusterRuns(coord, ctx.store)
