"""MariaDB and OceanBase (seekdb) sandbox servers: install, command line, first setup."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pymysql

from duosync.errors import FatalError
from duosync.sandbox.model import HOST, ServerSpec, ServerState
from duosync.sandbox.processes import need, tail_text


def run_as_root_args() -> list[str]:
    # mariadbd refuses to run as root unless told to; CI runs as root.
    return ["--user=root"] if os.geteuid() == 0 else []


def private_tmp(datadir: Path) -> Path:
    # A temporary directory of our own: the shared /tmp may be cleaned under a
    # starting server (seen in CI: Aria temp tables failing with errno 2).
    tmp = datadir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def install_mariadb(spec: ServerSpec, datadir: Path) -> None:
    cmd = [
        need("mariadb-install-db", "mariadb-server"),
        "--no-defaults",
        f"--datadir={datadir}",
        f"--tmpdir={private_tmp(datadir)}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        *run_as_root_args(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(datadir / "mysql", ignore_errors=True)
        raise FatalError(
            f"sandbox server {spec.name}: mariadb-install-db failed:\n"
            + tail_text(proc.stdout + proc.stderr)
        )


def mariadbd_command(spec: ServerSpec, server: ServerState) -> list[str]:
    d = server.datadir
    return [
        need("mariadbd", "mariadb-server"),
        "--no-defaults",
        f"--datadir={d}",
        f"--port={server.port}",
        f"--socket={d}/sock",
        f"--pid-file={d}/mariadbd.pid",
        f"--log-error={server.log}",
        f"--tmpdir={private_tmp(Path(d))}",
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
        *run_as_root_args(),
    ]


def _tls_args(datadir: Path) -> list[str]:
    """mariadbd options offering TLS with a self-signed key (made once, by openssl)."""
    key, cert = datadir / "tls-key.pem", datadir / "tls-cert.pem"
    if not cert.exists():
        cmd = [need("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
        cmd += ["-days", "3650", "-subj", "/CN=duosync-sandbox"]
        cmd += ["-keyout", str(key), "-out", str(cert)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise FatalError("sandbox: openssl could not make a TLS key:\n" + proc.stderr[-2000:])
    return [f"--ssl-key={key}", f"--ssl-cert={cert}"]


def configure_mariadb(server: ServerState) -> None:
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


def mariadb_answers(port: int) -> bool:
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


def seekdb_command(server: ServerState, env: dict[str, str]) -> list[str]:
    """The seekdb command line; *env* gets the loader path to the wheel's libaio."""
    binary = seekdb_binary()
    # The wheel ships libaio next to the binary; let the loader find it there.
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(binary.parent), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return [
        str(binary),
        "--nodaemon",
        "--port",
        str(server.port),
        "--base-dir",
        server.datadir,
        "--parameter",
        "datafile_size=2G",
        "--parameter",
        "log_disk_size=2G",
        "--parameter",
        "memory_limit=3G",
    ]


def mariadb_answers_socket(server: ServerState) -> bool:
    """MariaDB accepts root on its Unix socket (true before root@127.0.0.1 exists)."""
    try:
        conn = pymysql.connect(
            unix_socket=f"{server.datadir}/sock", user="root", password="", connect_timeout=3
        )
    except pymysql.err.MySQLError:
        return False
    conn.close()
    return True
