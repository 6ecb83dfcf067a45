"""One node's ZooKeeper session: registration, election, assignments, live figures.

Session contract: a node counts as live exactly while its ZooKeeper session lives
(its ``nodes/NAME`` znode is ephemeral). ``usable`` is true only while the client is
connected *and* the node is registered in the current session. The moment the
connection is suspended, ``usable`` turns false and the node's runs stop at their
next checkpoint, which is before the session can expire on the server and the
leader can move the tasks: a node cut off from ZooKeeper stops applying within its
session timeout, and registers again when ZooKeeper answers (a new session if the
old one expired). A node frozen (SIGSTOP) cannot notice anything; the epoch fence
on the target refuses what it tries to commit once it runs again.

Names: two live nodes cannot share a name. A node started again after kill -9
waits for its predecessor's session to expire (at most the session timeout)
before registering.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import replace
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from duosync.cluster.model import Assignment, ClusterAddress, NodeInfo
from duosync.errors import ConfigError, RetriableError

log = logging.getLogger(__name__)

#: default ZooKeeper session timeout (s): a dead node's tasks move after about this
SESSION_TIMEOUT = 4.0


class Coordinator:
    """A node's view of the cluster, thread-safe (kazoo serialises requests)."""

    def __init__(
        self,
        address: ClusterAddress,
        info: NodeInfo,
        session_timeout: float = SESSION_TIMEOUT,
    ) -> None:
        self.address = address
        self.info = replace(info, host=info.host or socket.gethostname(), pid=os.getpid())
        self.session_timeout = session_timeout
        self.zk = KazooClient(
            hosts=address.hosts,
            timeout=session_timeout,
            # reconnect for ever: a node outlives any ZooKeeper outage
            connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=1.0),
            command_retry=KazooRetry(max_tries=2, delay=0.1, max_delay=0.5),
        )
        self._registered_session: int | None = None
        self._lock = threading.Lock()
        self.zk.add_listener(self._on_state)
        self._state_changed = threading.Event()
        self._nodes_changed = threading.Event()

    # -- session -------------------------------------------------------------------

    def start(self, wait: float = 15.0) -> None:
        """Connect and register; ``ConfigError`` naming the ensemble if ZooKeeper
        does not answer within *wait* seconds or the name stays taken."""
        self.connect(wait)
        self.register(wait=max(wait, 3 * self.session_timeout))
        # kazoo keeps the watch across reconnections: the leader wakes on every
        # node that comes or goes instead of at its next tick
        self.zk.ChildrenWatch(self.address.nodes(), self._on_nodes)

    def connect(self, wait: float = 15.0) -> None:
        """Connect and make the cluster's paths (no registration: a command's
        session)."""
        try:
            self.zk.start(timeout=wait)
        except KazooTimeoutError:
            self.zk.stop()
            raise ConfigError(
                f"cluster {self.address.url}: ZooKeeper does not answer within {wait:.0f}s",
                hint="check the address and that ZooKeeper runs",
            ) from None
        for path in (
            self.address.nodes(),
            self.address.assignments(),
            self.address.lives(),
            self.address.drains(),
            self.address.election(),
        ):
            self.zk.ensure_path(path)

    def _on_nodes(self, _children: list[str]) -> None:
        self._nodes_changed.set()

    def wait_nodes_change(self, timeout: float) -> None:
        self._nodes_changed.wait(timeout)
        self._nodes_changed.clear()

    def _on_state(self, state: str) -> None:
        # kazoo calls this on its own thread, which must not block: only flag it
        if state != KazooState.CONNECTED:
            log.warning("cluster: ZooKeeper connection %s", state.lower())
        self._state_changed.set()

    @property
    def usable(self) -> bool:
        if self.zk.state != KazooState.CONNECTED:
            return False
        session = self._session()
        return session is not None and session == self._registered_session

    def _session(self) -> int | None:
        client_id = self.zk.client_id
        return None if client_id is None else int(client_id[0])

    def register(self, wait: float = 0.0) -> bool:
        """Create this node's ephemeral znode in the current session (waiting up to
        *wait* s for a predecessor of the same name to expire). Whether it is
        registered now."""
        deadline = time.monotonic() + wait
        path = self.address.node(self.info.name)
        while True:
            session = self._session()
            if session is not None and session == self._registered_session:
                return True
            try:
                self.zk.create(path, self.info.to_json(), ephemeral=True)
                self._registered_session = session
                log.info("cluster: node %s registered in %s", self.info.name, self.address.url)
                return True
            except NodeExistsError:
                owner = self._owner_session(path)
                if owner is not None and owner == session:
                    self._registered_session = session
                    return True
                if time.monotonic() >= deadline:
                    if wait:
                        raise ConfigError(
                            f"cluster {self.address.url}: a live node is already named"
                            f" {self.info.name!r}",
                            hint="give this node another --node name, or stop the other one",
                        ) from None
                    return False
                time.sleep(0.25)
            except KazooException as exc:
                if time.monotonic() >= deadline:
                    log.warning("cluster: cannot register yet: %s", exc)
                    return False
                time.sleep(0.25)

    def _owner_session(self, path: str) -> int | None:
        try:
            _data, stat = self.zk.get(path)
        except NoNodeError:
            return None
        return int(stat.ephemeralOwner)

    def wait_state_change(self, timeout: float) -> None:
        self._state_changed.wait(timeout)
        self._state_changed.clear()

    def close(self) -> None:
        self.zk.remove_listener(self._on_state)  # a session we end is no news
        with contextlib.suppress(KazooException, KazooTimeoutError):
            self.zk.stop()
        with contextlib.suppress(KazooException):
            self.zk.close()

    # -- this node -----------------------------------------------------------------

    def set_tasks(self, tasks: tuple[str, ...]) -> None:
        """Publish the tasks this node runs now (the handover signal)."""
        with self._lock:
            if tasks == self.info.tasks:
                return
            self.info = replace(self.info, tasks=tasks)
        self._write_info()

    def _write_info(self) -> None:
        if self.usable:
            with contextlib.suppress(KazooException):
                self.zk.set(self.address.node(self.info.name), self.info.to_json())

    def publish_live(self, task: str, figures: dict[str, Any]) -> None:
        data = json.dumps({"node": self.info.name, "at": time.time(), **figures}).encode()
        path = self.address.live(task)
        try:
            self.zk.set(path, data)
        except NoNodeError:
            with contextlib.suppress(NodeExistsError):
                self.zk.create(path, data, ephemeral=True)
        except KazooException as exc:
            log.debug("cluster: live figures of %s not published: %s", task, exc)

    def remove_live(self, task: str) -> None:
        """Remove the task's live figures if this node published them (the task
        may run on another node by now)."""
        path = self.address.live(task)
        with contextlib.suppress(NoNodeError, KazooException, ValueError):
            data, stat = self.zk.get(path)
            if json.loads(data.decode()).get("node") == self.info.name:
                self.zk.delete(path, version=stat.version)

    # -- the cluster ----------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        """The live nodes, by name."""
        out = []
        for name in sorted(self._children(self.address.nodes())):
            data = self._data(self.address.node(name))
            if data is not None:
                out.append(NodeInfo.from_json(data[0]))
        return out

    def assignments(self) -> dict[str, Assignment]:
        out = {}
        for task in self._children(self.address.assignments()):
            data = self._data(self.address.assignment(task))
            if data is not None:
                out[task] = Assignment.from_json(task, data[0], data[1])
        return out

    def assignment(self, task: str) -> Assignment | None:
        data = self._data(self.address.assignment(task))
        return None if data is None else Assignment.from_json(task, data[0], data[1])

    def leader(self) -> str | None:
        """The elected node's name (None: no leader right now)."""
        try:
            contenders = self.zk.Lock(self.address.election()).contenders()
        except NoNodeError:
            return None
        except KazooException as exc:
            raise _unavailable(self.address, exc) from None
        return str(contenders[0]) if contenders else None

    def set_drain(self, node: str, draining: bool) -> None:
        """Drain *node* (its tasks move away at their next checkpoint, none comes to
        it) or end its drain."""
        path = self.address.drain(node)
        try:
            if draining:
                with contextlib.suppress(NodeExistsError):
                    self.zk.create(path, json.dumps({"at": time.time()}).encode())
            else:
                with contextlib.suppress(NoNodeError):
                    self.zk.delete(path)
        except KazooException as exc:
            raise _unavailable(self.address, exc) from None

    def drains(self) -> set[str]:
        return set(self._children(self.address.drains()))

    def live_of(self, task: str) -> dict[str, Any] | None:
        data = self._data(self.address.live(task))
        if data is None:
            return None
        value: dict[str, Any] = json.loads(data[0].decode())
        return value

    def _children(self, path: str) -> list[str]:
        try:
            return list(self.zk.get_children(path))
        except NoNodeError:
            return []
        except KazooException as exc:
            raise _unavailable(self.address, exc) from None

    def _data(self, path: str) -> tuple[bytes, int] | None:
        """The znode's data and mzxid (None: no such znode)."""
        try:
            data, stat = self.zk.get(path)
        except NoNodeError:
            return None
        except KazooException as exc:
            raise _unavailable(self.address, exc) from None
        return bytes(data), int(stat.mzxid)


def _unavailable(address: ClusterAddress, exc: BaseException) -> RetriableError:
    return RetriableError(
        f"cluster {address.url}: ZooKeeper request failed ({type(exc).__name__}: {exc})"
    )
