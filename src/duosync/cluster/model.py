"""What a cluster keeps in ZooKeeper, as typed values, and where.

Layout under the cluster's root path (``zk://HOSTS/ROOT``)::

    ROOT/nodes/NAME         ephemeral: a live node (NodeInfo), gone with its session
    ROOT/election/...       the leader election (kazoo's recipe)
    ROOT/assignments/TASK   persistent: the node that runs TASK (Assignment)
    ROOT/live/TASK          ephemeral: the running node's live figures of TASK
    ROOT/drains/NAME        persistent: NAME is being drained (no task runs there)

Epoch: the ``mzxid`` of an assignment's znode, the ZooKeeper transaction id of its
last write. Transaction ids only grow (across restarts of ZooKeeper, which keeps
them in its log), so every new assignment of a task has a larger epoch than any
earlier one, even after the znode was deleted and made again. The leader writes an
assignment only when its node changes, so the epoch a node runs under stays valid
for as long as the task stays there.

No password is ever written to ZooKeeper: nodes publish names, addresses, labels
and task names; the task specs stay in the metadata store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from duosync.errors import ConfigError

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+(:\d{1,5})?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


@dataclass(frozen=True)
class ClusterAddress:
    """``zk://HOST:PORT[,HOST:PORT...]/PATH``: the ZooKeeper ensemble and the root
    path under which one cluster keeps its nodes (several clusters may share an
    ensemble under different paths)."""

    hosts: str
    root: str

    @classmethod
    def parse(cls, url: str) -> ClusterAddress:
        text = url.strip()
        if not text.startswith("zk://"):
            raise ConfigError(
                f"cluster address {text!r}: expected zk://HOST:PORT[,HOST:PORT...]/PATH",
                hint="e.g. --cluster zk://127.0.0.1:2181/duosync",
            )
        hosts, slash, path = text[len("zk://") :].partition("/")
        if "@" in hosts:
            raise ConfigError(
                "cluster address: credentials do not belong in the ZooKeeper address",
                hint="use zk://HOST:PORT/PATH",
            )
        parts = [h for h in hosts.split(",") if h]
        if not parts or not all(_HOST_PORT.match(h) for h in parts):
            raise ConfigError(
                f"cluster address {text!r}: {hosts!r} is not a list of HOST:PORT",
                hint="e.g. zk://zk1:2181,zk2:2181,zk3:2181/duosync",
            )
        root = "/" + path.strip("/") if slash and path.strip("/") else "/duosync"
        if any(p in ("", ".", "..") for p in root.split("/")[1:]):
            raise ConfigError(f"cluster address {text!r}: {root!r} is not a ZooKeeper path")
        return cls(",".join(parts), root)

    @property
    def url(self) -> str:
        return f"zk://{self.hosts}{self.root}"

    def nodes(self) -> str:
        return f"{self.root}/nodes"

    def node(self, name: str) -> str:
        return f"{self.root}/nodes/{name}"

    def election(self) -> str:
        return f"{self.root}/election"

    def assignments(self) -> str:
        return f"{self.root}/assignments"

    def assignment(self, task: str) -> str:
        return f"{self.root}/assignments/{task}"

    def lives(self) -> str:
        return f"{self.root}/live"

    def live(self, task: str) -> str:
        return f"{self.root}/live/{task}"

    def drains(self) -> str:
        return f"{self.root}/drains"

    def drain(self, node: str) -> str:
        return f"{self.root}/drains/{node}"


def check_node_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"node name {name!r}: 1 to 63 letters, digits, '_', '.' or '-', starting with a"
            " letter or digit",
            hint="e.g. --node east-1",
        )
    return name


def parse_labels(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``key=value`` items (``--label``) as a mapping."""
    labels: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise ConfigError(f"label {item!r}: expected key=value", hint="e.g. --label dc=east")
        if not (_NAME.match(key) and _NAME.match(value)):
            raise ConfigError(
                f"label {item!r}: keys and values are letters, digits, '_', '.' or '-'"
            )
        labels[key] = value
    return labels


@dataclass(frozen=True)
class NodeInfo:
    """A live node as it registers itself (``ROOT/nodes/NAME``)."""

    name: str
    #: the node's REST API and console, e.g. http://10.0.0.5:8765
    api: str
    labels: dict[str, str] = field(default_factory=dict)
    #: the tasks it runs right now (a handover waits until the old node's list
    #: no longer names the task)
    tasks: tuple[str, ...] = ()
    host: str = ""
    pid: int = 0
    started_at: float = 0.0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "api": self.api,
                "labels": self.labels,
                "tasks": list(self.tasks),
                "host": self.host,
                "pid": self.pid,
                "started_at": self.started_at,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> NodeInfo:
        raw: dict[str, Any] = json.loads(data.decode() or "{}")
        return cls(
            name=str(raw.get("name", "")),
            api=str(raw.get("api", "")),
            labels={str(k): str(v) for k, v in dict(raw.get("labels") or {}).items()},
            tasks=tuple(str(t) for t in raw.get("tasks") or ()),
            host=str(raw.get("host", "")),
            pid=int(raw.get("pid") or 0),
            started_at=float(raw.get("started_at") or 0.0),
        )


@dataclass(frozen=True)
class Assignment:
    """The node that runs a task (``ROOT/assignments/TASK``), and why it does."""

    task: str
    node: str
    #: the node that ran it before (a handover waits for it to let go)
    previous: str | None
    reason: str
    at: float
    #: the znode's mzxid (see the module docstring); 0 until written
    epoch: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {"node": self.node, "previous": self.previous, "reason": self.reason, "at": self.at},
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, task: str, data: bytes, epoch: int) -> Assignment:
        raw: dict[str, Any] = json.loads(data.decode() or "{}")
        previous = raw.get("previous")
        return cls(
            task=task,
            node=str(raw.get("node", "")),
            previous=None if previous is None else str(previous),
            reason=str(raw.get("reason", "")),
            at=float(raw.get("at") or 0.0),
            epoch=epoch,
        )
