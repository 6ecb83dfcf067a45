"""The ``duosync`` command: a thin shell over the service functions.

Every failure we raise on purpose is a ``DuosyncError``; it is printed as one line
(plus hint) without a traceback, exit status 2 for configuration errors and 1 for
the rest. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from duosync.cli_app import Context, cli, skip_option, spec_option
from duosync.config import Endpoint, Flavor
from duosync.errors import ConfigError, DuosyncError
from duosync.sandbox import DEFAULT_SERVERS, POSTGRES, ZOOKEEPER, Sandbox, ServerSpec

if TYPE_CHECKING:
    from duosync.spec import TaskSpec

# -- sandbox ---------------------------------------------------------------------------


@cli.group()
def sandbox() -> None:
    """Throwaway local database servers (2 MariaDB, 1 OceanBase) for demos and tests."""


def _sandbox(
    ctx: Context, directory: Path | None, specs: tuple[ServerSpec, ...] = DEFAULT_SERVERS
) -> Sandbox:
    return Sandbox(directory if directory is not None else ctx.home / "sandbox", specs)


dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Sandbox directory (default: HOME/sandbox).",
)


@sandbox.command("up")
@dir_option
@click.option(
    "--mariadb-ports",
    default=None,
    metavar="P1,P2",
    help="Ports for the two MariaDB servers (default: free ports).",
)
@click.option("--oceanbase-port", type=int, default=None, help="Port for OceanBase.")
@click.option("--no-oceanbase", is_flag=True, help="Start only the MariaDB servers.")
@click.option("--zookeeper", is_flag=True, help="Also start a ZooKeeper server.")
@click.option(
    "--postgres", is_flag=True, help="Also start a PostgreSQL server (wal_level=logical)."
)
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="Seconds to wait for every server to answer.",
)
@click.pass_obj
def sandbox_up(
    ctx: Context,
    directory: Path | None,
    mariadb_ports: str | None,
    oceanbase_port: int | None,
    no_oceanbase: bool,
    zookeeper: bool,
    postgres: bool,
    timeout: float,
) -> None:
    """Start the sandbox servers and print their URLs (harmless if already up)."""
    specs = _specs(mariadb_ports, oceanbase_port, no_oceanbase)
    if zookeeper:
        specs += (ZOOKEEPER,)
    if postgres:
        specs += (POSTGRES,)
    box = _sandbox(ctx, directory, specs)
    started = time.monotonic()
    statuses = box.up(timeout=timeout)
    for s in statuses:
        click.echo(f"{s.name:<12} {s.url}")
    click.echo(f"sandbox up in {time.monotonic() - started:.1f}s ({box.dir})", err=True)


def _specs(
    mariadb_ports: str | None, oceanbase_port: int | None, no_oceanbase: bool
) -> tuple[ServerSpec, ...]:
    ports: list[int] = [0, 0]
    if mariadb_ports:
        try:
            ports = [int(p) for p in mariadb_ports.split(",")]
        except ValueError:
            raise ConfigError(
                f"--mariadb-ports {mariadb_ports!r}: expected two numbers, P1,P2"
            ) from None
        if len(ports) != 2 or not all(0 < p < 65536 for p in ports):
            raise ConfigError(f"--mariadb-ports {mariadb_ports!r}: expected two ports, P1,P2")
    out = []
    for spec in DEFAULT_SERVERS:
        if spec.flavor == "mariadb":
            out.append(
                ServerSpec(spec.name, spec.flavor, spec.server_id, ports[spec.server_id - 1])
            )
        elif not no_oceanbase:
            out.append(ServerSpec(spec.name, spec.flavor, spec.server_id, oceanbase_port or 0))
    return tuple(out)


@sandbox.command("status")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sandbox_status(ctx: Context, directory: Path | None, as_json: bool) -> None:
    """Say which sandbox servers run where."""
    statuses = _sandbox(ctx, directory).status()
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in statuses], indent=2))
        return
    if not statuses:
        click.echo("no sandbox servers (run: duosync sandbox up)")
        return
    for s in statuses:
        state = "serving" if s.serving else "running, not answering" if s.running else "stopped"
        pid = f"pid {s.pid}" if s.pid else ""
        click.echo(f"{s.name:<12} {s.url:<36} {state:<10} {pid:<11} {s.datadir}")


@sandbox.command("down")
@dir_option
@click.option("--purge", is_flag=True, help="Also delete the servers' data directories.")
@click.pass_obj
def sandbox_down(ctx: Context, directory: Path | None, purge: bool) -> None:
    """Stop the servers the sandbox started (by pid) and free their ports."""
    stopped = _sandbox(ctx, directory).down(purge=purge)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


# -- inspect ---------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option(
    "--database",
    "-d",
    "databases",
    multiple=True,
    help="Database to inspect (repeatable; default: the URL's, else all).",
)
@click.option(
    "--password-env",
    default=None,
    metavar="NAME",
    help="Read the password from this environment variable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def inspect(url: str, databases: tuple[str, ...], password_env: str | None, as_json: bool) -> None:
    """Print the catalog of the endpoint at URL (mysql|mariadb|oceanbase://user@host:port)."""
    from duosync.service.phases.inspection import inspect_endpoint, render_catalog

    overrides = {"password_env": password_env} if password_env else {}
    endpoint = Endpoint.from_url(url, **overrides)
    catalog = inspect_endpoint(endpoint, databases)
    click.echo(catalog.model_dump_json(indent=2) if as_json else render_catalog(catalog))


# -- migrate ---------------------------------------------------------------------------


@cli.command()
@spec_option("Task spec (YAML); see examples/.")
@skip_option
@click.pass_obj
def migrate(ctx: Context, spec_file: Path, skip: tuple[str, ...]) -> None:
    """Run a task here: pre-checks, schema, full migration, then incremental sync
    until stopped (Ctrl-C pauses it).

    Rerun to resume where it stopped."""
    from duosync.service.runtime.tasks import run_spec
    from duosync.service.store.metadata import MetadataStore
    from duosync.spec import MigrationType
    from duosync.specfile import load_spec

    spec = load_spec(spec_file)
    stop = _stop_on_signals(MigrationType.INCREMENTAL in spec.types)
    with MetadataStore(ctx.store) as st:
        report = run_spec(spec, st, _stderr_line, stop, skip=skip).report
    click.echo(
        f"task {spec.name}: {len(report.created)} tables created, {len(report.accepted)}"
        f" existing accepted, {report.rows} rows copied, {report.conflicts} conflicting rows"
        f" kept on the target,"
        + (
            f" {report.synced_rows} row changes synced incrementally,"
            if report.synced_rows is not None
            else ""
        )
        + (f" {report.sync_conflicts} conflicts recorded," if report.sync_conflicts else "")
        + f" {report.seconds:.1f}s"
    )


def _stop_on_signals(graceful: bool) -> threading.Event:
    """An event set by the first Ctrl-C or SIGTERM: the incremental phase then
    applies the batch in flight, checkpoints and returns. A second signal, or one
    during the copy and schema phases (*graceful* False), aborts; those phases stop
    at their next chunk and resume from there."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set() or not graceful:
            raise KeyboardInterrupt
        click.echo("stopping at the next checkpoint (Ctrl-C again to abort)", err=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


# -- two-way sync ---------------------------------------------------------------------


@cli.command()
@dir_option
@click.option(
    "--seconds",
    type=click.FloatRange(1, 3600),
    default=20,
    show_default=True,
    help="How long to write both sides.",
)
@click.pass_obj
def demo(ctx: Context, directory: Path | None, seconds: float) -> None:
    """Two-way sync on the local sandbox: MariaDB <-> OceanBase, both sides written
    at once, then both sides compared row by row."""
    from duosync.service.demo import run_demo

    box = directory if directory is not None else ctx.home / "sandbox"
    result = run_demo(ctx.home, box, seconds, _stderr_line)
    rows = ", ".join(f"{t} {n}" for t, n in result.rows.items())
    writes = ", ".join(f"{side} {n}" for side, n in result.writes.items())
    verdict = "both sides are equal" if result.equal else "the two sides DIFFER"
    click.echo(
        f"demo: {verdict} ({rows} rows). Transactions written: {writes}. Forward task:"
        f" {result.forward.rows} row changes applied, reverse task: {result.reverse.rows};"
        f" {result.forward.echoes + result.reverse.echoes} echoed transactions dropped,"
        f" {result.forward.conflicts + result.reverse.conflicts} conflicts."
        f" {result.seconds:.0f}s in all. The sandbox keeps running: duosync sandbox down"
    )
    if not result.equal:
        sys.exit(1)


@cli.command()
@spec_option("The forward task's spec (topology: two-way).")
@click.pass_obj
def reverse(ctx: Context, spec_file: Path) -> None:
    """Run the reverse task of a two-way sync until stopped (Ctrl-C).

    It starts only while the forward task (duosync migrate -f FILE) is in
    incremental sync and monitoring; its objects are the forward task's, renames
    inverted. Rerun to resume."""
    from duosync.service.runtime.tasks import run_reverse_foreground
    from duosync.service.store.metadata import MetadataStore
    from duosync.specfile import load_spec

    spec = load_spec(spec_file)
    stop = _stop_on_signals(True)
    started = time.monotonic()
    with MetadataStore(ctx.store) as st:
        stats = run_reverse_foreground(st, spec, _stderr_line, stop).live.sync
    click.echo(
        f"task {spec.reverse_name}: {stats.rows} row changes synced, {stats.conflicts}"
        f" conflicts recorded, {stats.echoes} transactions of {spec.name} dropped (loop"
        f" guard), {time.monotonic() - started:.1f}s"
    )


def _stderr_line(line: str) -> None:
    click.echo(line, err=True)


@cli.command()
@click.argument("task")
@click.option(
    "-f",
    "--file",
    "spec_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The task's spec (for its endpoints' passwords; default: the stored spec).",
)
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every image.")
@click.pass_obj
def conflicts(ctx: Context, task: str, spec_file: Path | None, limit: int, as_json: bool) -> None:
    """List the conflicts TASK recorded: changes it could not apply as written.

    TASK is a task name; a two-way sync's reverse task is NAME.reverse."""
    from duosync.service.conflicts import task_conflicts
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        got = task_conflicts(st, task, spec_file, limit=limit)
    if as_json:
        click.echo(json.dumps(got.as_json(), indent=2, default=str))
        return
    click.echo(got.render())


# -- OceanBase change capture ---------------------------------------------------------


@cli.group()
def capture() -> None:
    """The trigger change capture an OceanBase source task installs."""


def _oceanbase_source(spec: TaskSpec) -> TaskSpec:
    if spec.source.flavor is not Flavor.OCEANBASE:
        raise ConfigError(
            "trigger capture is for OceanBase sources; this task reads the source's binlog",
            task=spec.name,
            endpoint=spec.source.display,
        )
    return spec


@capture.command("status")
@spec_option("Task spec (YAML) whose source to look at.")
def capture_status(spec_file: Path) -> None:
    """Consumers, their positions and the change log's size on the task's source."""
    from duosync.endpoints.oceanbase.capture import status
    from duosync.specfile import load_spec

    spec = _oceanbase_source(load_spec(spec_file))
    got = status(spec.source)
    if got is None:
        click.echo(f"{spec.source.display}: no change capture installed")
        return
    click.echo(f"{spec.source.display}: {got.log_rows} log rows, {got.triggers} triggers")
    for c in got.consumers:
        behind = max(0.0, time.time() - c.position.scn / 1e9)
        click.echo(
            f"  task {c.consumer}: {len(c.tables)} tables, confirmed up to {c.position}"
            f" ({behind:.0f}s ago)"
        )


@capture.command("remove")
@spec_option("Task spec (YAML) whose source to look at.")
def capture_remove(spec_file: Path) -> None:
    """Remove the task's capture: its triggers (unless another task needs them) and,
    with the last task, the change log. Incremental sync of the task cannot resume
    afterwards."""
    from duosync.endpoints.oceanbase.capture import remove
    from duosync.specfile import load_spec

    spec = _oceanbase_source(load_spec(spec_file))
    dropped = remove(spec.source, spec.name)
    click.echo(f"task {spec.name}: capture removed, triggers dropped on {len(dropped)} tables")


# -- verify ----------------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO

    from duosync.verify import VerifyReport
    from duosync.verify.fix import Statement


@cli.command()
@spec_option("Task spec (YAML) whose source and target to compare.")
@click.option(
    "--max-keys",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Keys listed per table and kind (counts are always exact).",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(100, 1_000_000),
    default=None,
    help="Rows per checksum chunk (default: the spec's chunk_rows).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Chunks compared at once (default: the spec's read_concurrency).",
)
@click.option(
    "--no-recheck", is_flag=True, help="Do not recheck differing rows while the task's sync runs."
)
@click.option("--fix", is_flag=True, help="Produce the statements that make the target equal.")
@click.option(
    "--sql",
    "sql_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the statements to this file (implies --fix).",
)
@click.option(
    "--apply",
    "apply_fix",
    is_flag=True,
    help="Apply the statements to the target after confirmation (implies --fix).",
)
@click.option("--yes", is_flag=True, help="Apply without asking (implies --apply).")
def verify(
    spec_file: Path,
    max_keys: int,
    chunk_rows: int | None,
    concurrency: int | None,
    no_recheck: bool,
    fix: bool,
    sql_file: Path | None,
    apply_fix: bool,
    yes: bool,
) -> int:
    """Compare the task's source and target: exit 0 when equal, 1 when they differ.

    --fix prints the correcting statements on stdout (the report then goes to
    stderr), --sql FILE writes them to FILE, --apply runs them on the target after
    asking (--yes: without asking) and compares again."""
    from duosync.specfile import load_spec
    from duosync.verify import fix as fixing
    from duosync.verify import render, verify_task

    spec = load_spec(spec_file)
    apply_fix = apply_fix or yes
    fix = fix or apply_fix or sql_file is not None
    if apply_fix and not yes and not sys.stdin.isatty():
        raise ConfigError(
            "--apply asks for confirmation on a terminal; add --yes to apply without asking",
            task=spec.name,
        )
    sql_to_stdout = fix and not apply_fix and sql_file is None

    def say(line: str) -> None:
        click.echo(line, err=True)

    def compare(report_to_stderr: bool) -> VerifyReport:
        report = verify_task(
            spec,
            say=say,
            recheck=not no_recheck,
            max_keys=max_keys,
            chunk_rows=chunk_rows,
            concurrency=concurrency,
        )
        for line in render(report):
            click.echo(line, err=report_to_stderr)
        return report

    report = compare(sql_to_stdout)
    if not report.differs or not fix:
        return 1 if report.differs else 0
    for note in fixing.notes(report):
        say(f"fix: {note}")
    if (
        apply_fix
        and not yes
        and not click.confirm(
            f"apply the statements to {spec.target.display} (its rows change)?",
            default=False,
            err=True,
        )
    ):
        say("nothing applied")
        return 1
    out = sql_file.open("w", encoding="utf-8", errors="surrogateescape") if sql_file else None
    try:
        todo = fixing.statements(report, spec.source)
        if out is not None or sql_to_stdout:
            todo = _written(todo, out, spec.name)
        if apply_fix:
            rows = fixing.apply(spec.target, todo)
            say(f"fix: {rows} rows corrected on {spec.target.display}; comparing again")
        else:
            for _statement in todo:
                pass
    finally:
        if out is not None:
            out.close()
    if sql_file is not None:
        say(f"fix: statements written to {sql_file}")
    if not apply_fix:
        return 1
    return 1 if compare(False).differs else 0


def _written(todo: Iterator[Statement], out: TextIO | None, task: str) -> Iterator[Statement]:
    """Pass *todo* through, writing each statement to *out* (stdout when None) after
    the session settings they need."""
    from duosync.verify.fix import SESSION

    def emit(text: str) -> None:
        if out is None:
            click.echo(text)
        else:
            out.write(text + "\n")

    emit(f"-- duosync verify --fix, task {task}")
    for setting in SESSION:
        emit(f"{setting};")
    for statement in todo:
        emit(f"{statement.sql};")
        yield statement


# -- metadata store --------------------------------------------------------------------


@cli.command()
@click.pass_obj
def store(ctx: Context) -> None:
    """Create or upgrade the metadata store and print where it is."""
    from duosync.service.store.metadata import MetadataStore

    with MetadataStore(ctx.store) as st:
        click.echo(f"{st.display}  schema version {st.version}  tasks {len(st.list_tasks())}")


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DuosyncError as exc:
        click.echo(f"duosync: {exc.kind}: {exc}", err=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int):
        sys.exit(code)


# The task service's and the cluster's commands live in their own modules;
# importing them registers them on the group.
from duosync import cli_nodes, cli_tasks  # noqa: E402, F401

if __name__ == "__main__":
    main()
