"""Fault injection for the self-healing tests: a TCP proxy that stalls, resets,
refuses and black-holes connections on demand (or at random), and kill -9 /
restart of the servers of a *private* sandbox, so no other test loses its server.

Everything here listens on and connects to loopback addresses only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from duosync.config import Endpoint
from duosync.sandbox import Sandbox, ServerSpec

LOOPBACK = "127.0.0.1"

#: the private sandbox of the healing tests (names, families, server ids)
FAULT_SPECS: tuple[ServerSpec, ...] = (
    ServerSpec("faultmaria", "mariadb", 11),
    ServerSpec("faultob", "oceanbase", 12),
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rst_close(sock: socket.socket) -> None:
    """Close *sock* with a TCP RST (SO_LINGER on, timeout 0), not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's socket and the backend's."""

    client: socket.socket
    backend: socket.socket | None = None
    #: set by reset_all / close: the link's thread closes both with RST
    doomed: threading.Event = field(default_factory=threading.Event)
    #: accepted while dropping: never forwarded, reset when the window ends
    held_until: float = 0.0
    #: severed: the backend side is gone, the client side hears nothing until then
    severed_until: float = 0.0


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of a loopback backend, with faults:

    - ``stall(s)``: stop forwarding in both directions for *s* seconds (bytes wait
      in the kernel buffers, connections stay open);
    - ``reset_all()``: RST every current connection, both sides;
    - ``refuse(s)``: close the listening socket for *s* seconds (connects are
      refused), then listen on the same port again;
    - ``drop(s)``: for *s* seconds accept new connections but never answer them
      (a black hole), then reset them;
    - ``sever(s)``: make every current connection half-open for *s* seconds (the
      server's side reset, the client's side silent), then reset it;
    - ``chaos(seconds, rng)``: the above at random moments for *seconds*, in a
      thread that ends by itself (``wait_chaos``).

    Bounded: at most *max_links* connections (one thread each); more are reset.
    """

    def __init__(self, backend_host: str, backend_port: int, max_links: int = 64) -> None:
        if not _is_loopback(backend_host):
            raise ValueError(f"FaultProxy forwards to loopback addresses only, not {backend_host}")
        self.backend = (backend_host, backend_port)
        self.max_links = max_links
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._closed = threading.Event()
        self._stall_until = 0.0
        self._refuse_until = 0.0
        self._drop_until = 0.0
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = int(self._listener.getsockname()[1])
        self._chaos: threading.Thread | None = None
        #: what chaos did, as (seconds since it began, action, duration)
        self.events: list[tuple[float, str, float]] = []
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy", daemon=True)
        self._acceptor.start()

    # -- public -------------------------------------------------------------------

    @property
    def url_host(self) -> str:
        return LOOPBACK

    def endpoint_url(self, flavor: str, user: str = "root") -> str:
        return f"{flavor}://{user}@{LOOPBACK}:{self.port}"

    def stall(self, seconds: float) -> None:
        with self._lock:
            self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    def reset_all(self, wait: float = 5.0) -> int:
        """RST every current connection; how many there were."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.doomed.set()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self._lock:
                if not any(link in self._links for link in links):
                    break
            time.sleep(0.02)
        return len(links)

    def refuse(self, seconds: float) -> None:
        with self._lock:
            self._refuse_until = max(self._refuse_until, time.monotonic() + seconds)

    def drop(self, seconds: float) -> None:
        with self._lock:
            self._drop_until = max(self._drop_until, time.monotonic() + seconds)

    def sever(self, seconds: float) -> int:
        """A silent partition of the current connections: the backend side is reset
        (the server rolls back and forgets them), the client side stays open and
        hears nothing for *seconds* (no FIN, no RST: a half-open connection, as
        after a host vanishes), then is reset. New connections work normally.
        How many connections were severed."""
        until = time.monotonic() + seconds
        with self._lock:
            links = list(self._links)
        for link in links:
            link.severed_until = until
        return len(links)

    def heal(self) -> None:
        """End every fault window now."""
        with self._lock:
            self._stall_until = self._refuse_until = self._drop_until = 0.0

    def chaos(self, seconds: float, rng: random.Random) -> threading.Thread:
        """Faults at random moments for *seconds*; the thread heals and ends by itself."""
        if self._chaos is not None and self._chaos.is_alive():
            raise RuntimeError("chaos is already running")
        self._chaos = threading.Thread(
            target=self._chaos_loop, args=(seconds, rng), name="chaos", daemon=True
        )
        self._chaos.start()
        return self._chaos

    def wait_chaos(self, timeout: float) -> None:
        if self._chaos is not None:
            self._chaos.join(timeout)
            if self._chaos.is_alive():
                raise AssertionError("chaos did not end in time")

    def close(self) -> None:
        self._closed.set()
        self.heal()
        self.reset_all()
        self._acceptor.join(5)
        if self._chaos is not None:
            self._chaos.join(5)
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(64)
        sock.settimeout(0.1)
        return sock

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            now = time.monotonic()
            with self._lock:
                refusing = now < self._refuse_until
                listener = self._listener
            if refusing:
                if listener is not None:
                    with self._lock:
                        self._listener = None
                    listener.close()  # pending connects in the backlog are reset too
                time.sleep(0.05)
                continue
            if listener is None:
                try:
                    listener = self._listen(self.port)
                except OSError:
                    time.sleep(0.1)  # the port is still held somehow: try again
                    continue
                with self._lock:
                    self._listener = listener
            try:
                client, _addr = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            with self._lock:
                full = len(self._links) >= self.max_links
                dropping = now < self._drop_until
            if full:
                _rst_close(client)
                continue
            link = _Link(client, held_until=self._drop_until if dropping else 0.0)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=self._serve, args=(link,), daemon=True).start()

    def _serve(self, link: _Link) -> None:
        try:
            while link.held_until and time.monotonic() < link.held_until:
                if link.doomed.wait(0.05) or self._closed.is_set():
                    return
            if link.held_until:
                return  # a black-holed connection: reset once the window ends
            try:
                link.backend = socket.create_connection(self.backend, timeout=5)
            except OSError:
                return  # backend down: the client sees a reset, as a refused connect
            self._pump(link)
        finally:
            _rst_close(link.client)
            if link.backend is not None:
                _rst_close(link.backend)
            with self._lock:
                self._links.discard(link)

    def _pump(self, link: _Link) -> None:
        assert link.backend is not None
        pair = {link.client: link.backend, link.backend: link.client}
        while not link.doomed.is_set() and not self._closed.is_set():
            if link.severed_until:
                _rst_close(link.backend)
                while time.monotonic() < link.severed_until:
                    if link.doomed.wait(0.1) or self._closed.is_set():
                        return
                return
            if time.monotonic() < self._stall_until:
                time.sleep(0.05)
                continue
            try:
                readable, _w, _x = select.select(list(pair), [], [], 0.1)
            except (OSError, ValueError):
                return
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    # an orderly close on one side: pass it on as a close
                    with contextlib.suppress(OSError):
                        pair[sock].shutdown(socket.SHUT_WR)
                    return
                try:
                    pair[sock].sendall(data)
                except OSError:
                    return

    def _chaos_loop(self, seconds: float, rng: random.Random) -> None:
        start = time.monotonic()
        end = start + seconds
        try:
            while not self._closed.is_set():
                pause = rng.uniform(0.5, 4.0)
                if time.monotonic() + pause >= end:
                    break
                if self._closed.wait(pause):
                    break
                action = rng.choice(["stall", "reset", "refuse", "drop", "reset+refuse"])
                length = rng.uniform(0.5, 6.0)
                at = time.monotonic() - start
                if action == "stall":
                    self.stall(length)
                elif action == "reset":
                    length = 0.0
                    self.reset_all()
                elif action == "refuse":
                    self.refuse(length)
                elif action == "drop":
                    self.drop(length)
                else:
                    self.refuse(length)
                    self.reset_all()
                self.events.append((round(at, 1), action, round(length, 1)))
                if self._closed.wait(length):
                    break
        finally:
            left = end - time.monotonic()
            if left > 0:
                self._closed.wait(left)
            self.heal()


# -- the private sandbox --------------------------------------------------------------


def _pid_gone(pid: int) -> bool:
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)  # ours (the sandbox was started here)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def kill9(box: Sandbox, name: str, timeout: float = 30.0) -> int:
    """SIGKILL the sandbox server *name* and wait until it is gone (port closed too)."""
    server = box.load().servers[name]
    assert server.pid, f"{name} has no pid recorded"
    pid = server.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    assert server.datadir.encode() in cmdline, f"pid {pid} is not our {name}"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while not _pid_gone(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} (pid {pid}) still alive {timeout}s after SIGKILL")
        time.sleep(0.05)
    while port_accepts(server.port):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}'s port {server.port} still accepts after the kill")
        time.sleep(0.05)
    return pid


def pinned(box: Sandbox) -> Sandbox:
    """The same sandbox with every server's port pinned to the one it got first.

    ``Sandbox._prepare`` reuses a dead server's port only if it is free *at that
    moment*, and otherwise silently picks another one; our servers' ports were
    taken from the ephemeral range, where an outgoing connection may be given
    the port while the server is down. Pinned, ``up`` refuses a taken port
    instead of moving the server, and ``restart`` waits for the port.
    """
    state = box.load()
    specs = [
        ServerSpec(s.name, s.flavor, s.server_id, state.servers[s.name].port)
        for s in box.specs.values()
    ]
    return Sandbox(box.dir, specs=specs)


def restart(box: Sandbox, timeout: float = 240.0) -> float:
    """Start the dead servers again (same port, same data dir); time.monotonic() at
    which every one serves again."""
    before = {name: s.port for name, s in box.load().servers.items()}
    deadline = time.monotonic() + timeout
    while True:
        try:
            box.up(timeout=max(10.0, deadline - time.monotonic()))
            break
        except Exception as exc:  # ConfigError: the port is held for a moment
            if "already in use" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    served = time.monotonic()
    after = {name: s.port for name, s in box.load().servers.items()}
    assert after == before, f"a restarted server moved: {before} -> {after}"
    return served


def endpoint(box: Sandbox, name: str) -> Endpoint:
    return Endpoint.from_url(box.load().servers[name].url)


@contextlib.contextmanager
def private_sandbox(directory: Path) -> Iterator[Sandbox]:
    """faultmaria + faultob in *directory*, up; stopped and purged afterwards."""
    box = Sandbox(directory, specs=FAULT_SPECS)
    try:
        box.up(timeout=300)
        yield pinned(box)
    finally:
        box.down(purge=True)
