"""The sandbox's private PostgreSQL cluster (``initdb`` and ``postgres`` from Debian's
packages, ``wal_level=logical``), run as the postgres user when we are root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
from pathlib import Path

from duosync.errors import ConfigError, FatalError
from duosync.sandbox.model import HOST, ServerSpec, ServerState
from duosync.sandbox.processes import tail_text

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


def postgres_user() -> pwd.struct_passwd | None:
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


def prepare_postgres(spec: ServerSpec, datadir: Path) -> None:
    """Make the private cluster in ``datadir/data`` unless it is there."""
    user = postgres_user()
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
            f"sandbox server {spec.name}: initdb failed:\n" + tail_text(proc.stdout + proc.stderr)
        )


def postgres_command(spec: ServerSpec, server: ServerState) -> list[str]:
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


def postgres_answers(port: int, timeout: float = 3.0) -> bool:
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
