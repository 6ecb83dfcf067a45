"""The sandbox's processes and ports: liveness, ownership, stopping, free ports, logs.

Flavor-neutral: nothing here knows how a server is started or spoken to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Protocol

from duosync.errors import FatalError
from duosync.sandbox.model import HOST, ServerState


class Process(Protocol):
    def poll(self) -> int | None: ...


class Adopted:
    """Stands in for a Popen of a server started by an earlier, interrupted ``up``."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if pid_alive(self.pid) else 1


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if not path:
        raise FatalError(
            f"{binary} not found", hint=f"install the Debian package {package} (scripts/setup does)"
        )
    return path


def pid_alive(pid: int | None) -> bool:
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


def owned_pid_alive(server: ServerState) -> bool:
    """The recorded pid is alive *and* is our server (its command line names our dir)."""
    if not pid_alive(server.pid):
        return False
    try:
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return server.datadir.encode() in cmdline


def stop_signal(flavor: str) -> signal.Signals:
    # PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client to
    # leave (a replication stream never does); SIGINT is its "fast" shutdown.
    return signal.SIGINT if flavor == "postgresql" else signal.SIGTERM


def terminate(pid: int, timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.1)


def port_free(port: int) -> bool:
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port_free(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not port_free(port):
        time.sleep(0.2)


def tail(server: ServerState, lines: int = 15) -> str:
    parts = []
    # dict.fromkeys: once, when the log is the console (ZooKeeper, PostgreSQL)
    for path in dict.fromkeys((Path(server.log), Path(server.datadir) / "console.log")):
        with contextlib.suppress(OSError):
            parts.append(path.read_text(errors="replace"))
    return tail_text("\n".join(parts), lines)


def tail_text(text: str, lines: int = 15) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])
