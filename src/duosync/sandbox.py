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

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pymysql

from duosync.errors import ConfigError, FatalError

STATE_FILE = "sandbox.json"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    """One sandbox server as configured: its name, family and wanted port (0 = any free)."""

    name: str
    flavor: str  # "mariadb", "oceanbase", "zookeeper" or "postgresql"
    server_id: int
    port: int = 0
    #: MariaDB only: offer TLS, with a self-signed key made at first start
    tls: bool = False


DEFAULT_SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec("mariadb1", "mariadb", 1),
    ServerSpec("mariadb2", "mariadb", 2),
    ServerSpec("oceanbase1", "oceanbase", 3),
)

#: not started by default: callers that need them add them to the specs
ZOOKEEPER = ServerSpec("zookeeper1", "zookeeper", 10)
POSTGRES = ServerSpec("postgres1", "postgresql", 11)


@dataclass
class ServerState:
    """A started server as recorded in the state file."""

    name: str
    flavor: str
    port: int
    datadir: str
    log: str
    pid: int | None = None
    started_at: float | None = None

    @property
    def url(self) -> str:
        if self.flavor == "zookeeper":
            return f"zk://{HOST}:{self.port}"
        if self.flavor == "postgresql":
            return f"postgresql://postgres@{HOST}:{self.port}/postgres"
        return f"{self.flavor}://root@{HOST}:{self.port}"


@dataclass
class SandboxState:
    servers: dict[str, ServerState] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerStatus:
    name: str
    flavor: str
    url: str
    pid: int | None
    running: bool
    serving: bool
    datadir: str


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
        starting: list[tuple[ServerState, _Process]] = []
        try:
            for spec in self.specs.values():
                current = state.servers.get(spec.name)
                if current is not None and _owned_pid_alive(current) and _serving(current):
                    continue  # `up` twice is harmless
                if current is not None and _owned_pid_alive(current):
                    # Ours but not answering yet (a previous `up` was interrupted): wait.
                    starting.append((current, _Adopted(current.pid)))
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
                    _configure_mariadb(server)
        except BaseException:
            self.save(state)
            raise
        return self.status()

    def status(self) -> list[ServerStatus]:
        state = self.load()
        out = []
        for name, s in state.servers.items():
            alive = _owned_pid_alive(s)
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
            if _owned_pid_alive(s):
                assert s.pid is not None
                _terminate(s.pid, timeout, _stop_signal(s.flavor))
                stopped.append(name)
            _wait_port_free(s.port, 10.0)
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
        port = spec.port or (previous.port if previous and _port_free(previous.port) else 0)
        if port and not _port_free(port):
            raise ConfigError(
                f"sandbox server {spec.name}: port {port} is already in use",
                hint="choose another port or stop what listens there",
            )
        port = port or _free_port()
        log = datadir / _LOGS.get(spec.flavor, "console.log")
        if spec.flavor == "mariadb" and not (datadir / "mysql").is_dir():
            _install_mariadb(spec, datadir)
        elif spec.flavor == "zookeeper":
            _write_zoo_cfg(datadir, port)
        elif spec.flavor == "postgresql":
            _prepare_postgres(spec, datadir)
        return ServerState(spec.name, spec.flavor, port, str(datadir), str(log))

    def _launch(self, spec: ServerSpec, server: ServerState) -> subprocess.Popen[bytes]:
        datadir = Path(server.datadir)
        env = dict(os.environ)
        user: pwd.struct_passwd | None = None
        if spec.flavor == "mariadb":
            cmd = _mariadbd_command(spec, server)
        elif spec.flavor == "zookeeper":
            cmd = _zookeeper_command(spec, server)
        elif spec.flavor == "postgresql":
            cmd = _postgres_command(spec, server)
            user = _postgres_user()
        else:
            binary = seekdb_binary()
            # The wheel ships libaio next to the binary; let the loader find it there.
            env["LD_LIBRARY_PATH"] = ":".join(
                p for p in (str(binary.parent), env.get("LD_LIBRARY_PATH", "")) if p
            )
            cmd = [
                str(binary),
                "--nodaemon",
                "--port",
                str(server.port),
                "--base-dir",
                str(datadir),
                "--parameter",
                "datafile_size=2G",
                "--parameter",
                "log_disk_size=2G",
                "--parameter",
                "memory_limit=3G",
            ]
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


class _Process(Protocol):
    def poll(self) -> int | None: ...


class _Adopted:
    """Stands in for a Popen of a server started by an earlier, interrupted ``up``."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if _pid_alive(self.pid) else 1


#: each flavor's log, relative to its data directory (where _tail looks first)
_LOGS = {"mariadb": "error.log", "oceanbase": "log/seekdb.log"}


def _run_as_root_args() -> list[str]:
    # mariadbd refuses to run as root unless told to; CI runs as root.
    return ["--user=root"] if os.geteuid() == 0 else []


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if not path:
        raise FatalError(
            f"{binary} not found", hint=f"install the Debian package {package} (scripts/setup does)"
        )
    return path


def _private_tmp(datadir: Path) -> Path:
    # A temporary directory of our own: the shared /tmp may be cleaned under a
    # starting server (seen in CI: Aria temp tables failing with errno 2).
    tmp = datadir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def _install_mariadb(spec: ServerSpec, datadir: Path) -> None:
    cmd = [
        _need("mariadb-install-db", "mariadb-server"),
        "--no-defaults",
        f"--datadir={datadir}",
        f"--tmpdir={_private_tmp(datadir)}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        *_run_as_root_args(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(datadir / "mysql", ignore_errors=True)
        raise FatalError(
            f"sandbox server {spec.name}: mariadb-install-db failed:\n"
            + _tail_text(proc.stdout + proc.stderr)
        )


def _mariadbd_command(spec: ServerSpec, server: ServerState) -> list[str]:
    d = server.datadir
    return [
        _need("mariadbd", "mariadb-server"),
        "--no-defaults",
        f"--datadir={d}",
        f"--port={server.port}",
        f"--socket={d}/sock",
        f"--pid-file={d}/mariadbd.pid",
        f"--log-error={server.log}",
        f"--tmpdir={_private_tmp(Path(d))}",
        "--bind-address=127.0.0.1",
        f"--server-id={spec.server_id}",
        f"--log-bin={d}/binlog",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--gtid-strict-mode=ON",
        f"--gtid-domain-id={spec.server_id}",
        "--log-slave-updates=ON",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
        "--max-connections=1100",
        "--innodb-buffer-pool-size=256M",
        # Durability of the sandbox *server* against an OS crash is not what we test;
        # these keep single-row commits fast on a shared 2-core machine.
        "--innodb-flush-log-at-trx-commit=2",
        "--sync-binlog=0",
        "--local-infile=1",
        "--secure-file-priv=",
        "--performance-schema=OFF",
        "--skip-name-resolve",
        *(_tls_args(Path(d)) if spec.tls else []),
        *_run_as_root_args(),
    ]


def _tls_args(datadir: Path) -> list[str]:
    """mariadbd options offering TLS with a self-signed key (made once, by openssl)."""
    key, cert = datadir / "tls-key.pem", datadir / "tls-cert.pem"
    if not cert.exists():
        cmd = [_need("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
        cmd += ["-days", "3650", "-subj", "/CN=duosync-sandbox"]
        cmd += ["-keyout", str(key), "-out", str(cert)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise FatalError("sandbox: openssl could not make a TLS key:\n" + proc.stderr[-2000:])
    return [f"--ssl-key={key}", f"--ssl-cert={cert}"]


def _configure_mariadb(server: ServerState) -> None:
    """Let ``root`` in over TCP from 127.0.0.1 as well as from ``localhost``."""
    conn = pymysql.connect(
        host=HOST,
        port=server.port,
        user="root",
        password="",
        unix_socket=f"{server.datadir}/sock",
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
    finally:
        conn.close()


# -- ZooKeeper ---------------------------------------------------------------------------

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
#: slf4j's binding that logs to stderr (our console.log); Debian's libslf4j-java,
#: which the zookeeper package depends on, ships it
SLF4J_SIMPLE_JAR = Path("/usr/share/java/slf4j-simple.jar")


def _write_zoo_cfg(datadir: Path, port: int) -> None:
    # Written at every start: the port may have changed since the last one. The
    # data (snapshots and transaction log) stays in data/, so znodes survive a restart.
    (datadir / "data").mkdir(parents=True, exist_ok=True)
    (datadir / "zoo.cfg").write_text(
        "\n".join(
            [
                # Sessions may time out between 2 and 20 ticks: 1 s to 10 s.
                "tickTime=500",
                f"dataDir={datadir / 'data'}",
                f"clientPort={port}",
                f"clientPortAddress={HOST}",
                "admin.enableServer=false",
                "4lw.commands.whitelist=ruok,srvr,stat,mntr",
                "",
            ]
        )
    )


def _zookeeper_command(spec: ServerSpec, server: ServerState) -> list[str]:
    java = shutil.which("java")
    if not java:
        raise FatalError(
            f"sandbox server {spec.name}: java not found",
            hint="install it: apt-get install default-jre-headless (scripts/setup does)",
        )
    for jar in (ZOOKEEPER_JAR, SLF4J_SIMPLE_JAR):
        if not jar.exists():
            raise FatalError(
                f"sandbox server {spec.name}: {jar} not found",
                hint="install it: apt-get install zookeeper (scripts/setup does)",
            )
    return [
        java,
        # Small and quiet on a shared 2-core machine: one GC thread, a bounded heap.
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
        "-Dzookeeper.jmx.log4j.disable=true",
        # Debian's zookeeper.jar names its dependencies in its manifest's Class-Path;
        # every jar under /usr/share/java would also work but brings six competing
        # slf4j bindings, and slf4j then picks the one that logs nothing.
        "-cp",
        f"{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}",
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        # The config's path names our data dir: that is what makes the pid ours.
        str(Path(server.datadir) / "zoo.cfg"),
    ]


def zookeeper_command(port: int, word: str, timeout: float = 3.0) -> str | None:
    """Send a four-letter word (``ruok``, ``srvr``, ...) to ZooKeeper; its answer, or
    None when nothing answers."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(4096):  # the server closes after answering
                chunks.append(chunk)
    except OSError:
        return None
    return b"".join(chunks).decode(errors="replace")


def _zookeeper_answers(port: int) -> bool:
    # `ruok` says the process is up, even before it serves; `srvr` names the server's
    # mode only once it serves requests (before that: "not currently serving").
    return zookeeper_command(port, "ruok") == "imok" and "Mode:" in (
        zookeeper_command(port, "srvr") or ""
    )


# -- PostgreSQL --------------------------------------------------------------------------

POSTGRES_ROOT = Path("/usr/lib/postgresql")


def _postgres_bindir(spec: ServerSpec, datadir: Path) -> Path:
    """The binaries of the cluster's own major version if it exists, else the newest."""
    version_file = datadir / "data" / "PG_VERSION"
    if version_file.exists():
        version = version_file.read_text().strip()
        bindir = POSTGRES_ROOT / version / "bin"
        if (bindir / "postgres").exists():
            return bindir
        raise FatalError(
            f"sandbox server {spec.name}: its cluster is PostgreSQL {version}, whose"
            f" binaries ({bindir}) are not installed",
            hint=f"install postgresql-{version}, or purge the sandbox (duosync sandbox down"
            " --purge) to start a new cluster",
        )
    versions = sorted(
        (p for p in POSTGRES_ROOT.glob("*/bin/postgres") if p.parent.parent.name.isdigit()),
        key=lambda p: int(p.parent.parent.name),
    )
    if not versions:
        raise FatalError(
            f"sandbox server {spec.name}: PostgreSQL not found (no {POSTGRES_ROOT}/*/bin/postgres)",
            hint="install it: apt-get install postgresql (scripts/setup does)",
        )
    return versions[-1].parent


def _postgres_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as when we are root (it refuses to run as root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise FatalError(
            "PostgreSQL refuses to run as root and there is no postgres user to run it as",
            hint="install the Debian package postgresql (it creates the user)",
        ) from None


def _unreachable_by(user: pwd.struct_passwd, path: Path) -> Path | None:
    """The first directory on the way to *path* that *user* may not enter, if any."""
    groups = {user.pw_gid, *os.getgrouplist(user.pw_name, user.pw_gid)}
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


def _prepare_postgres(spec: ServerSpec, datadir: Path) -> None:
    """Make the private cluster in ``datadir/data`` unless it is there."""
    user = _postgres_user()
    if user is not None:
        blocked = _unreachable_by(user, datadir.parent)
        if blocked is not None:
            raise ConfigError(
                f"sandbox server {spec.name}: PostgreSQL runs as the postgres user (it"
                f" refuses root), who may not enter {blocked}",
                hint=f"use a sandbox directory it can reach (e.g. --dir /tmp/duosync-sandbox)"
                f" or let it in: chmod o+x {blocked}",
            )
        # Its own directory: the cluster, the socket and postmaster.pid live there.
        os.chown(datadir, user.pw_uid, user.pw_gid)
    bindir = _postgres_bindir(spec, datadir)
    if (datadir / "data" / "PG_VERSION").exists():
        return
    shutil.rmtree(datadir / "data", ignore_errors=True)  # a half-made one from a failed try
    cmd = [
        str(bindir / "initdb"),
        "-D",
        str(datadir / "data"),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        # Throwaway data: skip the fsync of every file initdb writes (~1 s).
        "--no-sync",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        cwd=datadir,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user else None,
    )
    if proc.returncode != 0:
        shutil.rmtree(datadir / "data", ignore_errors=True)
        raise FatalError(
            f"sandbox server {spec.name}: initdb failed:\n" + _tail_text(proc.stdout + proc.stderr)
        )


def _postgres_command(spec: ServerSpec, server: ServerState) -> list[str]:
    datadir = Path(server.datadir)
    # A Unix socket path is limited to 107 bytes; past that, TCP only (all we use).
    sockets = str(datadir) if len(f"{datadir}/.s.PGSQL.{server.port}") < 108 else ""
    return [
        str(_postgres_bindir(spec, datadir) / "postgres"),
        "-D",
        str(datadir / "data"),
        "-p",
        str(server.port),
        "-c",
        f"unix_socket_directories={sockets}",
        "-c",
        f"listen_addresses={HOST}",
        # Logical decoding (pgoutput) for change capture.
        "-c",
        "wal_level=logical",
        "-c",
        "max_wal_senders=10",
        "-c",
        "max_replication_slots=10",
        # Durability against an OS crash is not what we test; kill -9 loses nothing.
        "-c",
        "fsync=off",
        "-c",
        "shared_buffers=128MB",
    ]


def _postgres_answers(port: int, timeout: float = 3.0) -> bool:
    """A real session: startup as postgres (trust), up to ReadyForQuery, then Terminate.

    Spoken directly (protocol 3.0) so that the sandbox needs no PostgreSQL driver;
    while the server starts up it answers the startup with an error instead.
    """
    params = b"user\0postgres\0database\0postgres\0\0"
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(startup)
            buf = b""
            while True:
                while len(buf) < 5:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    buf += chunk
                kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
                while len(buf) < 1 + length:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    buf += chunk
                body, buf = buf[5 : 1 + length], buf[1 + length :]
                if kind == b"E":  # e.g. "the database system is starting up"
                    return False
                if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                    return False  # asks for a password: not our trust-auth sandbox
                if kind == b"Z":
                    sock.sendall(b"X" + struct.pack("!i", 4))
                    return True
    except (OSError, struct.error):
        return False


def seekdb_binary() -> Path:
    """Path of the OceanBase seekdb server binary inside the installed pylibseekdb wheel."""
    spec = importlib.util.find_spec("pylibseekdb")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        binary = Path(loc) / "seekdb"
        if binary.exists():
            if not os.access(binary, os.X_OK):
                binary.chmod(binary.stat().st_mode | 0o111)
            return binary
    raise FatalError(
        "the OceanBase seekdb server binary was not found",
        hint="pip install pylibseekdb (scripts/setup installs it)",
    )


# -- processes and ports ---------------------------------------------------------------


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields and fields[0] == "Z":
            return False
    return True


def _owned_pid_alive(server: ServerState) -> bool:
    """The recorded pid is alive *and* is our server (its command line names our dir)."""
    if not _pid_alive(server.pid):
        return False
    try:
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return server.datadir.encode() in cmdline


def _stop_signal(flavor: str) -> signal.Signals:
    # PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client to
    # leave (a replication stream never does); SIGINT is its "fast" shutdown.
    return signal.SIGINT if flavor == "postgresql" else signal.SIGTERM


def _terminate(pid: int, timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _pid_alive(pid):
        time.sleep(0.1)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        # seekdb listens on 0.0.0.0; a bind to 127.0.0.1 can still succeed beside it.
        return s.connect_ex((HOST, port)) != 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_port_free(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _port_free(port):
        time.sleep(0.2)


def _answers(port: int) -> bool:
    try:
        conn = pymysql.connect(host=HOST, port=port, user="root", password="", connect_timeout=3)
    except pymysql.err.MySQLError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return bool(cur.fetchone() == (1,))
    except pymysql.err.MySQLError:
        return False
    finally:
        conn.close()


def _serving(server: ServerState) -> bool:
    """The server answers a real request in its own protocol."""
    if server.flavor == "zookeeper":
        return _zookeeper_answers(server.port)
    if server.flavor == "postgresql":
        return _postgres_answers(server.port)
    return _answers(server.port)


def _answers_socket(server: ServerState) -> bool:
    """MariaDB answers on its socket before root@127.0.0.1 exists (first start)."""
    if server.flavor != "mariadb":
        return _serving(server)
    try:
        conn = pymysql.connect(
            unix_socket=f"{server.datadir}/sock", user="root", password="", connect_timeout=3
        )
    except pymysql.err.MySQLError:
        return False
    conn.close()
    return True


def _wait_serving(server: ServerState, proc: _Process, deadline: float) -> None:
    while True:
        if _answers_socket(server):
            return
        if proc.poll() is not None:
            raise FatalError(
                f"sandbox server {server.name} ({server.flavor}, port {server.port}) exited"
                f" while starting; last lines of {server.log}:\n{_tail(server)}"
            )
        if time.monotonic() > deadline:
            raise FatalError(
                f"sandbox server {server.name} ({server.flavor}, port {server.port}) did not"
                f" answer in time; last lines of {server.log}:\n{_tail(server)}"
            )
        time.sleep(0.3)


def _tail(server: ServerState, lines: int = 15) -> str:
    parts = []
    # dict.fromkeys: once, when the log is the console (ZooKeeper, PostgreSQL)
    for path in dict.fromkeys((Path(server.log), Path(server.datadir) / "console.log")):
        with contextlib.suppress(OSError):
            parts.append(path.read_text(errors="replace"))
    return _tail_text("\n".join(parts), lines)


def _tail_text(text: str, lines: int = 15) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])
