"""A pause asked during the full copy takes effect at the next chunk, not at the
end of the copy; the resumed copy then finishes with every row exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from duosync.config import Endpoint
from duosync.service.runtime import tasks
from duosync.service.runtime.states import State
from duosync.service.store.metadata import MetadataStore
from duosync.specfile import parse_spec
from tests.helpers import query, run_sql

pytestmark = pytest.mark.integration

ROWS = 20_000


def _checksum(endpoint: Endpoint, db: str) -> tuple[int, str]:
    row = query(endpoint, "SELECT COUNT(*), SUM(CRC32(CONCAT(id, ':', v))) FROM t", database=db)
    return int(row[0][0]), str(row[0][1])


def test_pause_during_the_copy_stops_it_at_a_chunk(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str], tmp_path: Path
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
            f"INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_{ROWS}",
        ],
        src,
    )
    spec = parse_spec(
        {
            "name": "pause-copy",
            "source": f"mariadb://root@{mariadb1.host}:{mariadb1.port}",
            "target": f"mariadb://root@{mariadb2.host}:{mariadb2.port}",
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            # about 20 s of copying at 1,000 rows/s, in 20 chunks
            "options": {"chunk_rows": 1000, "rate_rows_per_second": 1000},
        },
        "test",
    )
    store = MetadataStore(tmp_path / "meta.db")
    ended: list[State] = []

    def run() -> None:
        ended.append(tasks.run_spec(spec, store, lambda _line: None).state)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while (r := store.find_task(spec.name)) is None or r.state is not State.FULL_MIGRATION:
            assert time.monotonic() < deadline, "the copy never started"
            time.sleep(0.2)
        time.sleep(3)
        asked = time.monotonic()
        tasks.pause(store, spec.name, wait=30)
        worker.join(60)
        took = time.monotonic() - asked
        assert ended == [State.PAUSED], f"{ended} after {took:.1f}s"
        copied, _sum = _checksum(mariadb2, dst)
        assert 0 < copied < ROWS, f"paused with {copied} rows copied"
        print(f"paused {took:.1f}s after the request, {copied} of {ROWS} rows copied")
        # resumed: the rest of the chunks, every row once
        tasks.resume(store, spec.name)
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(120)
        assert ended[-1] is State.COMPLETED
        assert _checksum(mariadb2, dst) == _checksum(mariadb1, src)
        fulls = [e for e in store.history(spec.name) if e.to_state == "full_migration"]
        assert len(fulls) == 2  # entered, and resumed into: never started over
    finally:
        if worker.is_alive():
            tasks.pause(store, spec.name, wait=30)
            worker.join(60)
        store.close()
