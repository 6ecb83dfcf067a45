"""Throwaway local database servers for the demo and the tests.

``up`` starts two MariaDB instances (binlog on: ROW format, FULL row image, FULL row
metadata, GTID strict mode, distinct server ids) and one OceanBase instance from the
seekdb binary shipped in the ``pylibseekdb`` wheel, each in its own data directory
under the sandbox directory, and returns when every one answers queries. Callers may
add a ZooKeeper server (``ZOOKEEPER``, Debian's ``zookeeper`` jars) and a private
PostgreSQL cluster (``POSTGRES``, ``wal_level=logical``) to the specs.

State (ports, pids, data dirs) lives in ``<dir>/sandbox.json``. Only processes whose
pid is recorded there *and* whose command line still names our data directory are
ever signalled, so a reused pid or a server somebody else started is never touched.
The servers listen on 127.0.0.1 only and have a passwordless ``root`` (``postgres``
with trust authentication for PostgreSQL): they hold throwaway data and must never
be exposed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from duosync.errors import ConfigError, FatalError
from duosync.sandbox.mariadb import (
    configure_mariadb,
    install_mariadb,
    mariadb_answers,
    mariadb_answers_socket,
    mariadbd_command,
    seekdb_command,
)
from duosync.sandbox.model import (
    DEFAULT_SERVERS,
    STATE_FILE,
    SandboxState,
    ServerSpec,
    ServerState,
    ServerStatus,
)
from duosync.sandbox.postgres import (
    postgres_answers,
    postgres_command,
    postgres_user,
    prepare_postgres,
)
from duosync.sandbox.processes import (
    Adopted,
    Process,
    free_port,
    owned_pid_alive,
    port_free,
    stop_signal,
    tail,
    terminate,
    wait_port_free,
)
from duosync.sandbox.zookeeper import write_zoo_cfg, zookeeper_answers, zookeeper_java_command


class Sandbox:
    """The set of sandbox servers that live under one directory."""

    def __init__(self, directory: Path, specs: Iterable[ServerSpec] = DEFAULT_SERVERS) -> None:
        self.dir = directory.expanduser().resolve()
        self.specs = {s.name: s for s in specs}

    # -- state ---------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def load(self) -> SandboxState:
        if not self.state_path.exists():
            return SandboxState()
        try:
            raw = json.loads(self.state_path.read_text())
            return SandboxState({k: ServerState(**v) for k, v in raw["servers"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"sandbox state file {self.state_path} is unreadable ({exc})",
                hint="stop the servers by hand and remove the file",
            ) from None

    def save(self, state: SandboxState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"servers": {k: asdict(v) for k, v in state.servers.items()}}, indent=2)
        )
        tmp.replace(self.state_path)  # atomic: a crash never leaves half a state file

    # -- commands ------------------------------------------------------------------

    def up(self, timeout: float = 180.0) -> list[ServerStatus]:
        """Start every server that is not already serving; return when all answer."""
        state = self.load()
        starting: list[tuple[ServerState, Process]] = []
        try:
            for spec in self.specs.values():
                current = state.servers.get(spec.name)
                if current is not None and owned_pid_alive(current) and _serving(current):
                    continue  # `up` twice is harmless
                if current is not None and owned_pid_alive(current):
                    # Ours but not answering yet (a previous `up` was interrupted): wait.
                    starting.append((current, Adopted(current.pid)))
                    continue
                server = self._prepare(spec, current)
                proc = self._launch(spec, server)
                server.pid = proc.pid
                server.started_at = time.time()
                state.servers[spec.name] = server
                self.save(state)  # record the pid at once so `down` can always find it
                starting.append((server, proc))
            deadline = time.monotonic() + timeout
            for server, process in starting:
                _wait_serving(server, process, deadline)
                if server.flavor == "mariadb":
                    configure_mariadb(server)
        except BaseException:
            self.save(state)
            raise
        return self.status()

    def status(self) -> list[ServerStatus]:
        state = self.load()
        out = []
        for name, s in state.servers.items():
            alive = owned_pid_alive(s)
            out.append(
                ServerStatus(
                    name=name,
                    flavor=s.flavor,
                    url=s.url,
                    pid=s.pid if alive else None,
                    running=alive,
                    serving=alive and _serving(s),
                    datadir=s.datadir,
                )
            )
        return out

    def down(self, purge: bool = False, timeout: float = 60.0) -> list[str]:
        """Stop the servers this sandbox started; with *purge*, delete their data too."""
        state = self.load()
        stopped: list[str] = []
        for name, s in state.servers.items():
            if owned_pid_alive(s):
                assert s.pid is not None
                terminate(s.pid, timeout, stop_signal(s.flavor))
                stopped.append(name)
            wait_port_free(s.port, 10.0)
            s.pid = None
        if purge:
            for s in state.servers.values():
                shutil.rmtree(s.datadir, ignore_errors=True)
            self.state_path.unlink(missing_ok=True)
        else:
            self.save(state)
        return stopped

    # -- starting ------------------------------------------------------------------

    def _prepare(self, spec: ServerSpec, previous: ServerState | None) -> ServerState:
        datadir = self.dir / spec.name
        datadir.mkdir(parents=True, exist_ok=True)
        port = spec.port or (previous.port if previous and port_free(previous.port) else 0)
        if port and not port_free(port):
            raise ConfigError(
                f"sandbox server {spec.name}: port {port} is already in use",
                hint="choose another port or stop what listens there",
            )
        port = port or free_port()
        log = datadir / _LOGS.get(spec.flavor, "console.log")
        if spec.flavor == "mariadb" and not (datadir / "mysql").is_dir():
            install_mariadb(spec, datadir)
        elif spec.flavor == "zookeeper":
            write_zoo_cfg(datadir, port)
        elif spec.flavor == "postgresql":
            prepare_postgres(spec, datadir)
        return ServerState(spec.name, spec.flavor, port, str(datadir), str(log))

    def _launch(self, spec: ServerSpec, server: ServerState) -> subprocess.Popen[bytes]:
        datadir = Path(server.datadir)
        env = dict(os.environ)
        user: pwd.struct_passwd | None = None
        if spec.flavor == "mariadb":
            cmd = mariadbd_command(spec, server)
        elif spec.flavor == "zookeeper":
            cmd = zookeeper_java_command(spec, server)
        elif spec.flavor == "postgresql":
            cmd = postgres_command(spec, server)
            user = postgres_user()
        else:
            cmd = seekdb_command(server, env)
        console = open(datadir / "console.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            # A new session: the server outlives this command and Ctrl-C here.
            return subprocess.Popen(
                cmd,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd=datadir,
                # PostgreSQL as root: the postgres user's uid, gid and no root groups.
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        except OSError as exc:
            raise FatalError(f"sandbox server {spec.name}: cannot run {cmd[0]}: {exc}") from None
        finally:
            console.close()


#: each flavor's log, relative to its data directory (where tail looks first)
_LOGS = {"mariadb": "error.log", "oceanbase": "log/seekdb.log"}


def _serving(server: ServerState) -> bool:
    """The server answers a real request in its own protocol."""
    if server.flavor == "zookeeper":
        return zookeeper_answers(server.port)
    if server.flavor == "postgresql":
        return postgres_answers(server.port)
    return mariadb_answers(server.port)


def _answers_socket(server: ServerState) -> bool:
    """Serving, or for MariaDB answering on its socket: it does so before
    root@127.0.0.1 exists (first start)."""
    if server.flavor != "mariadb":
        return _serving(server)
    return mariadb_answers_socket(server)


def _wait_serving(server: ServerState, proc: Process, deadline: float) -> None:
    while True:
        if _answers_socket(server):
            return
        if proc.poll() is not None:
            raise FatalError(
                f"sandbox server {server.name} ({server.flavor}, port {server.port}) exited"
                f" while starting; last lines of {server.log}:\n{tail(server)}"
            )
        if time.monotonic() > deadline:
            raise FatalError(
                f"sandbox server {server.name} ({server.flavor}, port {server.port}) did not"
                f" answer in time; last lines of {server.log}:\n{tail(server)}"
            )
        time.sleep(0.3)
