"""``duosync migrate`` from an OceanBase source (trigger capture), end to end: a
sysbench load on OceanBase through the full copy and the incremental phase, a kill
-9 in the middle, convergence checked row by row, then ``duosync capture remove``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from duosync.config import Endpoint
from tests.e2e.test_incremental import _converge, _start, _stop, _sysbench
from tests.helpers import query

pytestmark = pytest.mark.e2e


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_oceanbase_source_through_a_kill_then_capture_removed(
    tmp_path: Path,
    oceanbase: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src = fresh_database(oceanbase, "src")
    dst = fresh_database(mariadb2, "dst")
    subprocess.run(_sysbench(oceanbase, src, "prepare"), check=True, capture_output=True)
    spec = tmp_path / "task.yaml"
    spec.write_text(
        f"""
name: from-oceanbase
source: oceanbase://root@{oceanbase.host}:{oceanbase.port}
target: mariadb://root@{mariadb2.host}:{mariadb2.port}
types: [schema, full, incremental]
select: {{databases: [{src}]}}
rename: {{databases: {{{src}: {dst}}}}}
options: {{chunk_rows: 500, write_concurrency: 3}}
"""
    )
    home = tmp_path / "home"
    load = subprocess.Popen(
        _sysbench(oceanbase, src, "run", "--time=15", "--threads=2", "--rate=60"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = _start(spec, home)
    try:
        time.sleep(6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = _start(spec, home)
        assert load.wait(timeout=120) == 0, load.stderr.read() if load.stderr else ""
        _converge(oceanbase, src, mariadb2, dst, ["sbtest1", "sbtest2"], proc)
    finally:
        if load.poll() is None:
            load.kill()
        code, err = _stop(proc)
    assert code == 0, err[-3000:]
    assert "caught up (monitoring)" in err, err[-3000:]
    synced = query(mariadb2, f"SELECT COUNT(*) FROM `{dst}`.sbtest1")[0][0]
    assert synced == query(oceanbase, f"SELECT COUNT(*) FROM `{src}`.sbtest1")[0][0]

    status = _cli(home, "capture", "status", "-f", str(spec))
    assert status.returncode == 0 and "task from-oceanbase: 2 tables" in status.stdout, status
    removed = _cli(home, "capture", "remove", "-f", str(spec))
    assert removed.returncode == 0, removed.stderr
    assert "triggers dropped on 2 tables" in removed.stdout
    assert query(oceanbase, f"SHOW TRIGGERS FROM `{src}`") == []
