"""Two-way sync end to end: ``duosync migrate`` (forward task) and ``duosync
reverse`` run as a user runs them, both sides are written at once, and the verdict
is a comparison of every row of both sides, plus proof that applying stops once the
writers stop (a loop would keep it going)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.service.store.metadata import MetadataStore
from tests.helpers import admin_connection, query, run_sql

pytestmark = pytest.mark.e2e

TABLES = ("acct", "note")
_SCHEMA = [
    "CREATE TABLE acct (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(60) NOT NULL,"
    " v INT NOT NULL, KEY k_idx (k))",
    "CREATE TABLE note (id BIGINT PRIMARY KEY, email VARCHAR(60) NOT NULL, body TEXT,"
    " UNIQUE KEY email_uk (email))",
]
#: keys each side's writer owns: disjoint, so no conflict is expected
_RANGES = {"a": (1, 1_000_000), "b": (1_000_000, 2_000_000)}


def _cli(home: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), *args]
    env = dict(os.environ, DUOSYNC_PLAIN="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    return out + err


def _state(home: Path, task: str) -> str | None:
    try:
        with MetadataStore.in_home(home) as store:
            return store.get_task(task).state
    except Exception:  # not created yet
        return None


def _wait_state(
    home: Path, task: str, procs: list[subprocess.Popen[str]], timeout: float = 150
) -> None:
    deadline = time.monotonic() + timeout
    while _state(home, task) != "incremental_monitoring":
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a task exited early: {p.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"{task} never reached monitoring"
        time.sleep(0.3)


def _rows(endpoint: Endpoint, db: str, table: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in query(endpoint, f"SELECT * FROM `{db}`.`{table}`"))


def _converge(
    a: Endpoint, db_a: str, b: Endpoint, db_b: str, procs: list[subprocess.Popen[str]]
) -> None:
    deadline = time.monotonic() + 150
    while True:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a task exited early: {p.communicate()[1][-3000:]}")
        if all(_rows(a, db_a, t) == _rows(b, db_b, t) for t in TABLES):
            return
        if time.monotonic() > deadline:
            counts = {t: (len(_rows(a, db_a, t)), len(_rows(b, db_b, t))) for t in TABLES}
            raise AssertionError(f"both sides did not converge: row counts {counts}")
        time.sleep(0.5)


def _applies(a: Endpoint, b: Endpoint, tasks: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Every checkpoint row of both tasks on both sides: an apply changes one."""
    rows: list[tuple[Any, ...]] = []
    for endpoint in (a, b):
        rows += query(
            endpoint,
            "SELECT task, part, position, applied_at FROM oms.duosync_checkpoint"
            f" WHERE task IN ({', '.join(['%s'] * len(tasks))}) ORDER BY task, part",
            tasks,
        )
    return rows


def _assert_quiet(a: Endpoint, b: Endpoint, tasks: tuple[str, ...]) -> None:
    """Once both sides are equal and nobody writes, applying must stop: a change
    looping between the sides would keep moving the checkpoints."""
    deadline = time.monotonic() + 60
    before = _applies(a, b, tasks)
    while True:
        time.sleep(7)  # longer than the idle checkpoint interval (5 s)
        after = _applies(a, b, tasks)
        if after == before:
            return
        assert time.monotonic() < deadline, f"applies went on after writers stopped: {after}"
        before = after


class Writer(threading.Thread):
    """An OLTP-style load on one side (like sysbench oltp_write_only): each
    transaction updates an indexed and a plain column, deletes a row and inserts
    one, in both tables, only on keys this side owns."""

    def __init__(self, endpoint: Endpoint, db: str, side: str, owned: list[int]) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.db, self.side = endpoint, db, side
        self.live = list(owned)
        self.next_id = _RANGES[side][0] + 500_000
        self.stop = threading.Event()
        self.transactions = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rnd = random.Random(self.side)
        conn = admin_connection(self.endpoint, self.db)
        conn.autocommit(False)
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    i = rnd.choice(self.live)
                    cur.execute("UPDATE acct SET k = k + 1 WHERE id = %s", (i,))
                    cur.execute("UPDATE acct SET c = %s WHERE id = %s", (f"c{rnd.random()}", i))
                    cur.execute("UPDATE note SET body = %s WHERE id = %s", (f"b{rnd.random()}", i))
                    gone = self.live.pop(rnd.randrange(len(self.live)))
                    cur.execute("DELETE FROM acct WHERE id = %s", (gone,))
                    cur.execute("DELETE FROM note WHERE id = %s", (gone,))
                    new = self.next_id
                    self.next_id += 1
                    cur.execute("INSERT INTO acct VALUES (%s, %s, %s, 0)", (new, new % 97, "new"))
                    cur.execute(
                        "INSERT INTO note VALUES (%s, %s, %s)", (new, f"{new}@{self.side}", "n")
                    )
                    conn.commit()
                    self.live.append(new)
                    self.transactions += 1
                    time.sleep(rnd.random() * 0.004)
        except BaseException as exc:
            self.error = exc
        finally:
            conn.close()


def _seed(endpoint: Endpoint, db: str, ids_a: range, ids_b: range) -> None:
    run_sql(endpoint, _SCHEMA, db)
    conn = admin_connection(endpoint, db)
    try:
        with conn.cursor() as cur:
            ids = [*ids_a, *ids_b]
            cur.executemany(
                "INSERT INTO acct VALUES (%s, %s, %s, %s)", [(i, i % 97, f"c{i}", i) for i in ids]
            )
            cur.executemany(
                "INSERT INTO note VALUES (%s, %s, %s)", [(i, f"{i}@seed", "seed") for i in ids]
            )
    finally:
        conn.close()


def _spec(
    path: Path, name: str, a: Endpoint, db_a: str, b: Endpoint, db_b: str, extra: str = ""
) -> Path:
    path.write_text(
        f"""
name: {name}
topology: two-way
source: {a.flavor.value}://root@{a.host}:{a.port}
target: {b.flavor.value}://root@{b.host}:{b.port}
types: [schema, full, incremental]
select: {{databases: [{db_a}]}}
rename: {{databases: {{{db_a}: {db_b}}}}}
options: {{write_concurrency: 3}}
{extra}
"""
    )
    return path


PAIRS = {
    "mariadb-oceanbase": ("mariadb1", "oceanbase"),
    "mariadb-mariadb": ("mariadb1", "mariadb2"),
    "oceanbase-oceanbase": ("oceanbase", "oceanbase"),
}


@pytest.mark.parametrize("pair", list(PAIRS))
def test_both_sides_written_at_once(
    pair: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    fresh_database: Callable[..., str],
) -> None:
    a: Endpoint = request.getfixturevalue(PAIRS[pair][0])
    b: Endpoint = request.getfixturevalue(PAIRS[pair][1])
    db_a = fresh_database(a, "a")
    db_b = fresh_database(b, "b")
    run_sql(b, [f"DROP DATABASE `{db_b}`"])  # schema migration creates it
    _seed(a, db_a, range(1, 301), range(301, 601))
    name = f"tw-{pair}"
    spec = _spec(tmp_path / "task.yaml", name, a, db_a, b, db_b, "reverse: {write_concurrency: 2}")
    home = tmp_path / "home"
    forward = _cli(home, "migrate", "-f", str(spec))
    procs = [forward]
    try:
        _wait_state(home, name, procs)
        reverse = _cli(home, "reverse", "-f", str(spec))
        procs.append(reverse)
        _wait_state(home, f"{name}.reverse", procs)
        writers = [
            Writer(a, db_a, "a", list(range(1, 301))),
            Writer(b, db_b, "b", list(range(301, 601))),
        ]
        for w in writers:
            w.start()
        time.sleep(8)
        for w in writers:
            w.stop.set()
            w.join(timeout=30)
            assert w.error is None, w.error
            assert w.transactions > 20, "the load did not run"
        _converge(a, db_a, b, db_b, procs)
        _assert_quiet(a, b, (name, f"{name}.reverse"))
        reverse_out = _stop(reverse)
        forward_out = _stop(forward)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert "conflicts recorded" in reverse_out
    assert "incremental" in forward_out
    for t in TABLES:
        assert _rows(a, db_a, t) == _rows(b, db_b, t)
    # Each side's rows are there: both loads and the seed reached both sides.
    ids = {r[0] for r in _rows(a, db_a, "acct")}
    assert any(i >= 1_500_000 for i in ids) and any(500_000 <= i < 1_000_000 for i in ids)


def test_kill_9_either_task_mid_stream(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """kill -9 the forward and then the reverse task while both sides are written;
    restarted, they lose nothing and loop nothing."""
    a, b = mariadb1, oceanbase
    db_a = fresh_database(a, "a")
    db_b = fresh_database(b, "b")
    run_sql(b, [f"DROP DATABASE `{db_b}`"])
    _seed(a, db_a, range(1, 301), range(301, 601))
    name = "tw-kill"
    spec = _spec(tmp_path / "task.yaml", name, a, db_a, b, db_b)
    home = tmp_path / "home"
    procs = [_cli(home, "migrate", "-f", str(spec))]
    try:
        _wait_state(home, name, procs)
        procs.append(_cli(home, "reverse", "-f", str(spec)))
        _wait_state(home, f"{name}.reverse", procs)
        writers = [
            Writer(a, db_a, "a", list(range(1, 301))),
            Writer(b, db_b, "b", list(range(301, 601))),
        ]
        for w in writers:
            w.start()
        rnd = random.Random(9)
        for i, args in ((0, ("migrate", "-f", str(spec))), (1, ("reverse", "-f", str(spec)))):
            time.sleep(1.5 + rnd.random() * 2)
            procs[i].kill()  # SIGKILL: no checkpoint, no cleanup
            procs[i].wait()
            procs[i] = _cli(home, *args)
            time.sleep(1)
        time.sleep(3)
        for w in writers:
            w.stop.set()
            w.join(timeout=30)
            assert w.error is None, w.error
        _converge(a, db_a, b, db_b, procs)
        _assert_quiet(a, b, (name, f"{name}.reverse"))
        for p in reversed(procs):
            _stop(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for t in TABLES:
        assert _rows(a, db_a, t) == _rows(b, db_b, t)


@pytest.mark.parametrize("policy", ["ignore", "overwrite"])
def test_same_key_conflicts(
    policy: str,
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """Both sides change the same keys while the tasks are stopped; restarted, each
    task handles the other side's changes as the reference page says."""
    a, b = mariadb1, oceanbase
    db_a = fresh_database(a, "a")
    db_b = fresh_database(b, "b")
    run_sql(b, [f"DROP DATABASE `{db_b}`"])
    run_sql(
        a,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE, v INT)",
            "INSERT INTO t VALUES (1, 'a@x', 10), (2, 'b@x', 20), (3, 'c@x', 30)",
            "CREATE TABLE loose (v INT)",  # no key: a pre-check warning
        ],
        db_a,
    )
    name = f"tw-conflict-{policy}"
    spec = _spec(
        tmp_path / "task.yaml",
        name,
        a,
        db_a,
        b,
        db_b,
        f"reverse: {{conflict: {policy}}}\n",
    )
    text = spec.read_text().replace(
        "options: {write_concurrency: 3}", f"options: {{write_concurrency: 3, conflict: {policy}}}"
    )
    spec.write_text(text)
    home = tmp_path / "home"
    forward = _cli(home, "migrate", "-f", str(spec))
    procs = [forward]
    try:
        _wait_state(home, name, procs)
        reverse = _cli(home, "reverse", "-f", str(spec))
        procs.append(reverse)
        _wait_state(home, f"{name}.reverse", procs)
        outputs = [_stop(reverse), _stop(forward)]
        for out in outputs:
            # the keyless table's pre-check warning, for each task
            assert "keyless_tables: warn" in out and "loose" in out, out[-2000:]
            assert "duplicate rows may appear" in out
        run_sql(
            a,
            [
                "INSERT INTO t VALUES (100, 'a100@x', 1)",
                "UPDATE t SET v = 11 WHERE id = 1",
                "DELETE FROM t WHERE id = 2",
                "DELETE FROM t WHERE id = 3",
                "INSERT INTO t VALUES (200, 'dup@x', 1)",
            ],
            db_a,
        )
        run_sql(
            b,
            [
                "INSERT INTO t VALUES (100, 'b100@x', 2)",
                "UPDATE t SET v = 12 WHERE id = 1",
                "UPDATE t SET v = 22 WHERE id = 2",
                "DELETE FROM t WHERE id = 3",
                "INSERT INTO t VALUES (300, 'dup@x', 2)",
            ],
            db_b,
        )
        forward = _cli(home, "migrate", "-f", str(spec))
        procs = [forward]
        _wait_state(home, name, procs)
        reverse = _cli(home, "reverse", "-f", str(spec))
        procs.append(reverse)
        if policy == "ignore":
            # Each side keeps its own insert of the same key and its own row for the
            # clashing e-mail; updates of existing rows overwrite (both ways).
            want_a = [(1, "a@x", 12), (100, "a100@x", 1), (200, "dup@x", 1)]
            want_b = [(1, "a@x", 11), (100, "b100@x", 2), (300, "dup@x", 2)]
        else:
            # The other side's row wins on each side.
            want_a = [(1, "a@x", 12), (100, "b100@x", 2), (300, "dup@x", 2)]
            want_b = [(1, "a@x", 11), (100, "a100@x", 1), (200, "dup@x", 1)]
        deadline = time.monotonic() + 120
        while (_rows(a, db_a, "t"), _rows(b, db_b, "t")) != (want_a, want_b):
            assert time.monotonic() < deadline, (_rows(a, db_a, "t"), _rows(b, db_b, "t"))
            for p in procs:
                assert p.poll() is None, p.communicate()[1][-3000:]
            time.sleep(0.5)
        _assert_quiet(a, b, (name, f"{name}.reverse"))
        for p in reversed(procs):
            _stop(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    kept = "kept target" if policy == "ignore" else "overwritten"
    listed = {}
    for task in (name, f"{name}.reverse"):
        got = subprocess.run(
            [sys.executable, "-m", "duosync.cli", "--home", str(home), "conflicts", task, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(got.stdout)
        listed[task] = sorted((c["op"], c["key"][0], c["resolution"]) for c in data["conflicts"])
        assert data["total"] == len(data["conflicts"])
    assert listed[name] == [
        ("delete", 3, "failed"),
        ("insert", 100, kept),
        ("insert", 200, kept),
    ]
    assert listed[f"{name}.reverse"] == [
        ("delete", 3, "failed"),
        ("insert", 100, kept),
        ("insert", 300, kept),
        ("update", 2, "failed"),
    ]
    text_out = subprocess.run(
        [sys.executable, "-m", "duosync.cli", "--home", str(home), "conflicts", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"task {name}: 3 conflicts recorded" in text_out
    assert "insert key [100]" in text_out and "target: id=" in text_out
