"""``duosync migrate -f task.yaml`` end to end, checked by comparing source and target rows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.service.store.metadata import MetadataStore
from tests.helpers import admin_connection, query, run_sql

pytestmark = pytest.mark.e2e


def _spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def migrate(spec: Path, home: Path, *, wait: bool = True) -> Any:
    cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), "migrate", "-f", str(spec)]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def rows(endpoint: Endpoint, sql: str) -> list[tuple[Any, ...]]:
    return sorted(query(endpoint, sql), key=repr)


def _shop(endpoint: Endpoint, db: str, customers: int = 3000, orders: int = 9000) -> None:
    run_sql(
        endpoint,
        [
            "CREATE TABLE customers (id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(60) NOT NULL,"
            " UNIQUE KEY uk_email (email))",
            "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id BIGINT UNSIGNED,"
            " total DECIMAL(12,2), note VARCHAR(30), KEY k_customer (customer_id),"
            " CONSTRAINT fk_c FOREIGN KEY (customer_id) REFERENCES customers (id))",
            "CREATE TABLE order_lines (order_id BIGINT UNSIGNED, line INT, qty INT,"
            " PRIMARY KEY (order_id, line))",
            "CREATE TABLE logs (at DATETIME, msg VARCHAR(20))",
            f"INSERT INTO customers SELECT seq, CONCAT('c', seq, '@x') FROM seq_1_to_{customers}",
            f"INSERT INTO orders SELECT seq, 1 + seq MOD {customers}, seq / 7, IF(seq MOD 5 = 0,"
            f" NULL, CONCAT('n', seq)) FROM seq_1_to_{orders}",
            f"INSERT INTO order_lines SELECT 1 + seq DIV 3, seq MOD 3, seq FROM seq_1_to_{orders}",
            "INSERT INTO logs VALUES ('2024-01-01 00:00:00', 'a'), ('2024-01-01 00:00:00', 'a')",
            "CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 1000",
        ],
        database=db,
    )


def test_migrate_selection_renames_filter_post_indexing(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src = fresh_database(mariadb1, "src")
    other = fresh_database(mariadb1, "other")
    dst = fresh_database(oceanbase, "dst")
    _shop(mariadb1, src)
    run_sql(mariadb1, "CREATE TABLE skipped (id INT PRIMARY KEY)", database=other)
    spec = _spec(
        tmp_path / "task.yaml",
        f"""
name: sel
source: {mariadb1.flavor.value}://root@{mariadb1.host}:{mariadb1.port}
target: {oceanbase.flavor.value}://root@{oceanbase.host}:{oceanbase.port}
select:
  include: ["{src}.order*", "{src}.customers", "{src}.big_orders"]
  exclude: ["{src}.order_lines"]
rename:
  databases: {{{src}: {dst}}}
  tables: {{{src}.orders: purchases}}
  columns: {{{src}.orders: {{note: remark}}}}
filters:
  {src}.orders: "total >= 100 AND CONCAT(id, '') LIKE '%'"  # a '%' reaches the server
options:
  read_concurrency: 3
  write_concurrency: 3
  chunk_rows: 500
  post_indexing: true
""",
    )
    out = migrate(spec, tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert rows(oceanbase, f"SELECT id, customer_id, total, remark FROM {dst}.purchases") == rows(
        mariadb1, f"SELECT id, customer_id, total, note FROM {src}.orders WHERE total >= 100"
    )
    assert rows(oceanbase, f"SELECT * FROM {dst}.customers") == rows(
        mariadb1, f"SELECT * FROM {src}.customers"
    )
    tables = {
        r[0]
        for r in query(
            oceanbase,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (dst,),
        )
    }
    assert tables == {"purchases", "customers", "big_orders"}  # lines, logs, other db: not selected
    indexes = {
        r[0]
        for r in query(
            oceanbase,
            "SELECT INDEX_NAME FROM information_schema.STATISTICS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'purchases'",
            (dst,),
        )
    }
    assert "k_customer" in indexes  # created after the load
    assert rows(oceanbase, f"SELECT * FROM {dst}.big_orders") == rows(
        mariadb1, f"SELECT id, total FROM {src}.orders WHERE total > 1000 AND total >= 100"
    )
    assert "created index" in out.stderr and "rows/s" in out.stderr


def test_non_empty_target_stop_then_ignore(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(mariadb2, "dst")
    _shop(mariadb1, src, customers=200, orders=600)
    run_sql(
        mariadb2,
        [
            "CREATE TABLE customers (id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(60) NOT NULL,"
            " UNIQUE KEY uk_email (email))",
            "INSERT INTO customers VALUES (5, 'mine@target'), (6, 'c6@x')",
        ],
        database=dst,
    )
    base = f"""
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: mariadb://root@{mariadb2.host}:{mariadb2.port}
select:
  objects: ["{src}.customers", "{src}.orders"]
rename:
  databases: {{{src}: {dst}}}
"""
    stop = migrate(_spec(tmp_path / "stop.yaml", "name: stop1\n" + base), tmp_path / "home")
    # refused by the pre-check, before anything is written (the schema phase too)
    assert stop.returncode == 2
    assert "target.non_empty_tables" in stop.stderr and f"{dst}.customers" in stop.stderr
    assert query(mariadb2, f"SELECT COUNT(*) FROM {dst}.customers") == [(2,)]
    assert query(
        mariadb2,
        "SELECT COUNT(*) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'orders'",
        (dst,),
    ) == [(0,)]

    ignore = migrate(
        _spec(
            tmp_path / "ignore.yaml",
            "name: ign1\n" + base + "options:\n  non_empty_target: ignore\n",
        ),
        tmp_path / "home",
    )
    assert ignore.returncode == 0, ignore.stderr
    assert "1 conflicting rows" in ignore.stdout
    expected = [
        r if r[0] != 5 else (5, "mine@target")
        for r in query(mariadb1, f"SELECT * FROM {src}.customers ORDER BY id")
    ]
    assert query(mariadb2, f"SELECT * FROM {dst}.customers ORDER BY id") == expected
    assert rows(mariadb2, f"SELECT * FROM {dst}.orders") == rows(
        mariadb1, f"SELECT * FROM {src}.orders"
    )


def test_kill_during_copy_then_resume(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(oceanbase, "dst")
    _shop(mariadb1, src, customers=2000, orders=30000)
    spec = _spec(
        tmp_path / "task.yaml",
        f"""
name: killed
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: oceanbase://root@{oceanbase.host}:{oceanbase.port}
select:
  databases: [{src}]
rename:
  databases: {{{src}: {dst}}}
options:
  chunk_rows: 1000
  rate_rows_per_second: 12000
""",
    )
    home = tmp_path / "home"
    proc = migrate(spec, home, wait=False)
    deadline = time.monotonic() + 120
    # Kill once some chunks are in, well before the ~5 s the rate limit makes it last.
    while time.monotonic() < deadline:
        got = query(
            oceanbase,
            "SELECT COUNT(*) FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'order_lines'",
            (dst,),
        )
        if got[0][0] and query(oceanbase, f"SELECT COUNT(*) FROM {dst}.customers")[0][0] > 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = query(oceanbase, f"SELECT COUNT(*) FROM {dst}.order_lines")[0][0]
    assert partial < 30000, "the copy finished before the kill: nothing was tested"

    out = migrate(spec, home)
    assert out.returncode == 0, out.stderr
    for table in ("customers", "orders", "order_lines"):
        assert rows(oceanbase, f"SELECT * FROM {dst}.{table}") == rows(
            mariadb1, f"SELECT * FROM {src}.{table}"
        ), table
    # The table without a key was one chunk: copied whole exactly once.
    assert query(oceanbase, f"SELECT COUNT(*) FROM {dst}.logs") == [(2,)]


def _seq_no(gtid: str, domain: int) -> int:
    """The sequence number of *domain* in a MariaDB GTID position ("1-1-42,2-2-7")."""
    for part in gtid.split(","):
        d, _server, seq = part.strip().split("-")
        if int(d) == domain:
            return int(seq)
    return 0


def test_writes_during_copy_lie_after_the_handover_position(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """Rows written while the copy runs may or may not reach the target, but every
    row the target lacks or holds stale was written after the recorded handover
    position, so the incremental phase that starts there brings it: nothing is lost."""
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(mariadb2, "dst")
    _shop(mariadb1, src, customers=2000, orders=30000)
    spec = _spec(
        tmp_path / "task.yaml",
        f"""
name: busy
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: mariadb://root@{mariadb2.host}:{mariadb2.port}
select:
  objects: [{src}.orders]
rename:
  databases: {{{src}: {dst}}}
options:
  chunk_rows: 500
  read_concurrency: 2
  write_concurrency: 2
  rate_rows_per_second: 10000
""",
    )
    home = tmp_path / "home"
    domain = int(query(mariadb1, "SELECT @@gtid_domain_id")[0][0])
    written: list[tuple[int, int]] = []  # (GTID sequence number, order id)
    conn = admin_connection(mariadb1, src)
    proc = migrate(spec, home, wait=False)
    rng = random.Random(7)
    try:
        with conn.cursor() as cur:
            while proc.poll() is None:
                oid = rng.randint(1, 36000)
                choice = rng.random()
                if choice < 0.6:
                    cur.execute(
                        "INSERT INTO orders (id, customer_id, total, note) VALUES (%s, 1, 1, 'w')"
                        " ON DUPLICATE KEY UPDATE total = total + 1, note = 'upd'",
                        (oid,),
                    )
                else:
                    cur.execute("DELETE FROM orders WHERE id = %s", (oid,))
                cur.execute("SELECT @@last_gtid")
                last = cur.fetchone()
                if cur.rowcount and last and last[0]:
                    written.append((_seq_no(str(last[0]), domain), oid))
    finally:
        conn.close()
    out = proc.communicate()
    assert proc.returncode == 0, out[1]

    handover = MetadataStore(home / "duosync.db").load_checkpoint("busy", "handover")
    assert handover is not None and handover["gtid"]
    start = _seq_no(handover["gtid"], domain)
    after = {oid for seq, oid in written if seq > start}
    assert len(after) > 20, "too few writes during the copy: nothing was tested"
    source = {r[0]: r for r in query(mariadb1, f"SELECT * FROM {src}.orders")}
    target = {r[0]: r for r in query(mariadb2, f"SELECT * FROM {dst}.orders")}
    differing = {k for k in source.keys() | target.keys() if source.get(k) != target.get(k)}
    assert differing <= after, sorted(differing - after)[:10]
    assert len(target) > 25000  # the copy itself happened


def test_oceanbase_storage_format(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """Column storage where the target supports it; a clear refusal naming the option
    and the table, before any row moves, where it does not (seekdb has no column store)."""
    src = fresh_database(mariadb1, "src")
    dst = fresh_database(oceanbase, "dst")
    run_sql(mariadb1, "CREATE TABLE facts (id INT PRIMARY KEY, v INT)", database=src)
    spec = _spec(
        tmp_path / "task.yaml",
        f"""
name: columnar
source: mariadb://root@{mariadb1.host}:{mariadb1.port}
target: oceanbase://root@{oceanbase.host}:{oceanbase.port}
select: {{objects: [{src}.facts]}}
rename: {{databases: {{{src}: {dst}}}}}
options: {{oceanbase_storage: column}}
""",
    )
    try:
        run_sql(oceanbase, "CREATE TABLE probe (id INT) WITH COLUMN GROUP(each column)", dst)
        supported = True
        run_sql(oceanbase, "DROP TABLE probe", dst)
    except Exception:
        supported = False
    out = migrate(spec, tmp_path / "home")
    if supported:
        assert out.returncode == 0, out.stderr
        ddl = query(oceanbase, f"SHOW CREATE TABLE {dst}.facts")[0][1]
        assert "COLUMN GROUP" in ddl.upper(), ddl
        return
    assert out.returncode == 2, out.stderr
    assert "oceanbase_storage" in out.stderr and f"{dst}.facts" in out.stderr, out.stderr
    tables = query(
        oceanbase,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (dst,),
    )
    assert tables == [(0,)]
