"""What a sandbox is made of: the servers as configured, as recorded, as reported.

``ServerState`` is what ``<dir>/sandbox.json`` holds for one started server; its pid
is only ever signalled while the process's command line still names its data
directory (see ``processes.owned_pid_alive``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
