"""The ``duosync`` command run as a user would: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from duosync.config import Endpoint
from duosync.service.store.metadata import LATEST_VERSION
from tests.helpers import run_sql

pytestmark = pytest.mark.e2e

SECRET = "Very-Secret-Pw-99"


def duosync(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def mariadb_only_sandbox(tmp_path: Path) -> Iterator[Path]:
    box = tmp_path / "box"
    yield box
    duosync("sandbox", "down", "--dir", str(box), "--purge", home=tmp_path)


def test_sandbox_up_twice_status_down(tmp_path: Path, mariadb_only_sandbox: Path) -> None:
    box = str(mariadb_only_sandbox)
    first = duosync("sandbox", "up", "--dir", box, "--no-oceanbase", home=tmp_path)
    assert first.returncode == 0, first.stderr
    urls = [line.split()[1] for line in first.stdout.splitlines()]
    assert len(urls) == 2 and all(u.startswith("mariadb://root@127.0.0.1:") for u in urls)

    status = json.loads(duosync("sandbox", "status", "--dir", box, "--json", home=tmp_path).stdout)
    assert [s["serving"] for s in status] == [True, True]
    pids = [s["pid"] for s in status]

    again = duosync("sandbox", "up", "--dir", box, "--no-oceanbase", home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout  # same servers, same URLs
    status2 = json.loads(duosync("sandbox", "status", "--dir", box, "--json", home=tmp_path).stdout)
    assert [s["pid"] for s in status2] == pids  # nothing restarted

    # The servers really are what inspect sees: binlog on, distinct server ids.
    ids = set()
    for url in urls:
        out = duosync("inspect", url, "--json", home=tmp_path)
        assert out.returncode == 0, out.stderr
        server = json.loads(out.stdout)["server"]
        assert server["capture"] == "binlog" and server["binlog_row_metadata"] == "FULL"
        ids.add(server["server_id"])
    assert len(ids) == 2

    down = duosync("sandbox", "down", "--dir", box, home=tmp_path)
    assert down.returncode == 0 and "mariadb1" in down.stdout and "mariadb2" in down.stdout
    ports = [int(u.rsplit(":", 1)[1]) for u in urls]
    assert not any(_pid_alive(p) for p in pids)
    assert not any(_port_open(p) for p in ports)
    text = duosync("sandbox", "status", "--dir", box, home=tmp_path).stdout
    assert text.count("stopped") == 2


def test_sandbox_down_leaves_other_processes_alone(
    tmp_path: Path, mariadb_only_sandbox: Path
) -> None:
    box = mariadb_only_sandbox
    assert (
        duosync("sandbox", "up", "--dir", str(box), "--no-oceanbase", home=tmp_path).returncode == 0
    )
    state_path = box / "sandbox.json"
    state = json.loads(state_path.read_text())
    real_pid = state["servers"]["mariadb2"]["pid"]
    # Point mariadb1's record at an unrelated live process (as after a pid reuse).
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        real_first = state["servers"]["mariadb1"]["pid"]
        state["servers"]["mariadb1"]["pid"] = bystander.pid
        state_path.write_text(json.dumps(state))
        out = duosync("sandbox", "down", "--dir", str(box), home=tmp_path)
        assert out.returncode == 0
        assert bystander.poll() is None, "down signalled a process it did not start"
        assert not _pid_alive(real_pid)
    finally:
        bystander.kill()
        bystander.wait()
        os.kill(real_first, 15)


def test_sandbox_failure_names_server_and_log(tmp_path: Path, mariadb_only_sandbox: Path) -> None:
    # A data directory that looks initialised but has no system tables: mariadbd exits.
    (mariadb_only_sandbox / "mariadb1" / "mysql").mkdir(parents=True)
    out = duosync(
        "sandbox",
        "up",
        "--dir",
        str(mariadb_only_sandbox),
        "--no-oceanbase",
        "--timeout",
        "60",
        home=tmp_path,
    )
    assert out.returncode == 1
    assert "mariadb1" in out.stderr and "exited while starting" in out.stderr
    assert "[ERROR]" in out.stderr  # the tail of the server's own log


def test_inspect_cli_text_json_and_errors(
    tmp_path: Path, mariadb1: Endpoint, fresh_database: Callable[..., str]
) -> None:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))", database=db)
    run_sql(
        mariadb1,
        [
            "DROP USER IF EXISTS 'cli_user'@'%'",
            f"CREATE USER 'cli_user'@'%' IDENTIFIED BY '{SECRET}'",
            "GRANT SELECT ON *.* TO 'cli_user'@'%'",
        ],
    )
    url = f"mariadb://cli_user@{mariadb1.host}:{mariadb1.port}"

    text = duosync(
        "inspect", url, "--database", db, "--password-env", "PW", home=tmp_path, env={"PW": SECRET}
    )
    assert text.returncode == 0, text.stderr
    assert "table items" in text.stdout and "primary key (id)" in text.stdout

    as_json = duosync(
        "inspect", f"{url}/{db}?password_env=PW", "--json", home=tmp_path, env={"PW": SECRET}
    )
    catalog = json.loads(as_json.stdout)
    assert [d["name"] for d in catalog["databases"]] == [db]
    assert catalog["databases"][0]["tables"][0]["primary_key"] == ["id"]

    wrong = duosync(
        "inspect", f"mariadb://cli_user:{SECRET}x@{mariadb1.host}:{mariadb1.port}", home=tmp_path
    )
    assert wrong.returncode == 2
    assert "config error" in wrong.stderr and "Access denied" in wrong.stderr
    assert f"cli_user@{mariadb1.host}:{mariadb1.port}" in wrong.stderr
    assert SECRET not in wrong.stderr + wrong.stdout

    malformed = duosync("inspect", f"mariadb//cli_user:{SECRET}@host", home=tmp_path)
    assert malformed.returncode == 2 and "invalid endpoint URL" in malformed.stderr
    assert SECRET not in malformed.stderr
    assert "Traceback" not in malformed.stderr


def test_store_command_creates_versioned_store(tmp_path: Path) -> None:
    out = duosync("store", home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert f"schema version {LATEST_VERSION}" in out.stdout
    assert (tmp_path / "home" / "duosync.db").exists()
