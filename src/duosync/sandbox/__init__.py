"""Throwaway local database servers for the demo and the tests (see ``manager``).

One module per idea: ``model`` (what is configured and recorded), ``manager`` (the
``Sandbox`` of one directory: up, status, down), ``processes`` (pids, ports, logs),
and one module per server family (``mariadb``, ``zookeeper``, ``postgres``).
"""

from duosync.sandbox.manager import Sandbox
from duosync.sandbox.model import (
    DEFAULT_SERVERS,
    HOST,
    POSTGRES,
    STATE_FILE,
    ZOOKEEPER,
    SandboxState,
    ServerSpec,
    ServerState,
    ServerStatus,
)
from duosync.sandbox.zookeeper import zookeeper_command

__all__ = [
    "DEFAULT_SERVERS",
    "HOST",
    "POSTGRES",
    "STATE_FILE",
    "ZOOKEEPER",
    "Sandbox",
    "SandboxState",
    "ServerSpec",
    "ServerState",
    "ServerStatus",
    "zookeeper_command",
]
