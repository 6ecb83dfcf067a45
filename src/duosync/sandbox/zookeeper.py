"""The sandbox ZooKeeper: a standalone server from Debian's ``zookeeper`` jars."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from duosync.errors import FatalError
from duosync.sandbox.model import HOST, ServerSpec, ServerState

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")


#: slf4j's binding that logs to stderr (our console.log); Debian's libslf4j-java,
#: which the zookeeper package depends on, ships it
SLF4J_SIMPLE_JAR = Path("/usr/share/java/slf4j-simple.jar")


def write_zoo_cfg(datadir: Path, port: int) -> None:
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


def zookeeper_java_command(spec: ServerSpec, server: ServerState) -> list[str]:
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


def zookeeper_answers(port: int) -> bool:
    # `ruok` says the process is up, even before it serves; `srvr` names the server's
    # mode only once it serves requests (before that: "not currently serving").
    return zookeeper_command(port, "ruok") == "imok" and "Mode:" in (
        zookeeper_command(port, "srvr") or ""
    )
