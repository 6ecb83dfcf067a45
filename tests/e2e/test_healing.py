"""Self-healing, end to end: the servers under a running ``duosync migrate`` are
killed -9 and restarted, or the network between them breaks (``tests.faults``),
and the task must heal by itself. The verdict is always a comparison of every
source row with every target row, never the tool's counters.

The killed servers belong to a private sandbox (faultmaria, faultob) started for
this module, so no other test ever loses its server. Recovery times are measured
and printed (``-s``), not asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest

from duosync.config import Endpoint
from duosync.sandbox import Sandbox
from tests import faults
from tests.faults import FaultProxy, endpoint, private_sandbox
from tests.helpers import query, run_sql

pytestmark = pytest.mark.e2e

#: seconds a killed server stays down (the contract: back within 5-30 s)
DOWN = 8.0
#: seconds the target may take to equal the source once the faults are over
CONVERGE = 120.0


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A private sandbox (faultmaria, faultob): killing its servers disturbs no one."""
    with private_sandbox(tmp_path_factory.mktemp("faultbox")) as box:
        yield box


@pytest.fixture
def box(fault_sandbox: Sandbox) -> Sandbox:
    """The private sandbox with every server up (an earlier test may have left one dead)."""
    restart(fault_sandbox)
    return fault_sandbox


@pytest.fixture
def private_database(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Like ``fresh_database``, for the private servers (dropped afterwards if up)."""
    created: list[tuple[Endpoint, str]] = []

    def make(ep: Endpoint, suffix: str) -> str:
        base = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
        name = f"h_{base}_{suffix}"
        run_sql(ep, [f"DROP DATABASE IF EXISTS `{name}`", f"CREATE DATABASE `{name}`"])
        created.append((ep, name))
        return name

    yield make
    for ep, name in created:
        with contextlib.suppress(Exception):
            run_sql(ep, [f"DROP DATABASE IF EXISTS `{name}`"])


# -- the task as a subprocess ----------------------------------------------------------


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "duosync.cli", "--home", str(home), *args]


@dataclass
class Proc:
    """A duosync command running in the background, its output in files."""

    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        env = dict(os.environ, DUOSYNC_PLAIN="1")
        self.popen = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        self._copier = threading.Thread(target=self._copy, daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        """Every output line into the log, with the wall-clock time it came."""
        assert self.popen.stdout is not None
        with open(self.log, "ab") as out:
            for line in self.popen.stdout:
                out.write(_stamp().encode() + b" " + line)
                out.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C (pauses the task), then SIGKILL if it does not end in time."""
        if self.alive():
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._copier.join(10)
        return self.popen.returncode


def _stamp() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


def say(text: str) -> None:
    print(f"[healing {_stamp()}] {text}")


def kill9(box: Sandbox, name: str) -> None:
    say(f"kill -9 {name}")
    faults.kill9(box, name)
    say(f"{name} is gone")


def restart(box: Sandbox) -> float:
    served = faults.restart(box)
    say("every private server serves again")
    return served


@contextlib.contextmanager
def running(home: Path, log: Path, *args: str) -> Iterator[Proc]:
    proc = Proc(_cli(home, *args), log)
    try:
        yield proc
    finally:
        began = time.monotonic()
        was_alive = proc.alive()
        code = proc.stop()
        if was_alive:
            say(f"{args[0]} stopped: exit {code} {time.monotonic() - began:.1f}s after Ctrl-C")


def task_show(home: Path, name: str) -> dict[str, Any]:
    got = subprocess.run(
        _cli(home, "task", "show", name, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    detail: dict[str, Any] = json.loads(got.stdout)
    return detail


def wait_state(home: Path, name: str, states: set[str], proc: Proc, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.alive(), f"{name} exited early:\n{proc.output()}"
        with contextlib.suppress(AssertionError, ValueError):
            if task_show(home, name)["state"] in states:
                return
        assert time.monotonic() < deadline, f"{name} never reached {states}:\n{proc.output()}"
        time.sleep(1)


def _spec(path: Path, name: str, source: str, target: str, body: str) -> Path:
    path.write_text(f"name: {name}\nsource: {source}\ntarget: {target}\n{body}")
    return path


def _sync_body(src_db: str, dst_db: str, options: str) -> str:
    """A task spec's body: schema, full and incremental of *src_db* into *dst_db*,
    with *options* (YAML flow mapping content)."""
    return (
        "types: [schema, full, incremental]\n"
        f"select: {{databases: [{src_db}]}}\n"
        f"rename: {{databases: {{{src_db}: {dst_db}}}}}\n"
        f"options: {{{options}}}\n"
    )


def _url(ep: Endpoint) -> str:
    return f"{ep.flavor.value}://root@{ep.host}:{ep.port}"


# -- rows --------------------------------------------------------------------------------


def table_rows(ep: Endpoint, db: str, table: str) -> list[tuple[Any, ...]]:
    return sorted(query(ep, f"SELECT * FROM `{db}`.`{table}`"), key=repr)


def converge(
    pairs: list[tuple[Endpoint, str, Endpoint, str]],
    tables: list[str],
    procs: list[Proc],
    timeout: float = CONVERGE,
) -> float:
    """Wait until every table is equal on both sides of every pair while the tasks
    keep running; seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    last: str = ""
    while True:
        for proc in procs:
            assert proc.alive(), f"the task exited before converging:\n{proc.output()}"
        try:
            differ = []
            for a, adb, b, bdb in pairs:
                for t in tables:
                    left, right = table_rows(a, adb, t), table_rows(b, bdb, t)
                    if left != right:
                        differ.append(f"{adb}.{t}: {len(left)} vs {bdb}.{t}: {len(right)} rows")
            if not differ:
                return time.monotonic() - start
            last = "; ".join(differ)
        except pymysql.err.MySQLError as exc:  # a table not created yet, a server starting
            last = repr(exc)
        if time.monotonic() > deadline:
            logs = "\n---\n".join(p.output() for p in procs)
            raise AssertionError(f"no convergence in {timeout:.0f}s: {last}\n{logs}")
        time.sleep(0.5)


def _max_v(ep: Endpoint, db: str, lo: int, hi: int) -> int:
    """The highest writer sequence number among keys [lo, hi) (-1: none, or unreadable)."""
    try:
        got = query(
            ep,
            f"SELECT COALESCE(MAX(v), -1) FROM `{db}`.items WHERE id >= %s AND id < %s",
            (lo, hi),
        )
        return int(got[0][0])
    except pymysql.err.MySQLError:
        return -1


ITEMS = "CREATE TABLE items (id INT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(40) NOT NULL)"


def _load_items(ep: Endpoint, db: str, first: int, count: int) -> None:
    values = ", ".join(f"({i}, 0, 'seed{i}')" for i in range(first, first + count))
    run_sql(ep, [ITEMS, f"INSERT INTO items VALUES {values}"], db)


class Writer(threading.Thread):
    """REPLACE and DELETE on random keys of ``items`` in [lo, hi), a few hundred a
    second, each autocommitted; ``v`` is a sequence number, so the newest write
    is known. It rides out the server being down: it reconnects and goes on."""

    def __init__(self, ep: Endpoint, db: str, lo: int, hi: int, seed: int) -> None:
        super().__init__(name=f"writer {ep.port}/{db}", daemon=True)
        self.ep, self.db, self.lo, self.hi = ep, db, lo, hi
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.seq = 0
        self.committed = 0
        self.failures = 0
        self.reconnects = 0
        self.error: BaseException | None = None

    def _connect(self) -> pymysql.Connection[Any]:
        return pymysql.connect(
            host=self.ep.host,
            port=self.ep.port,
            user=self.ep.user,
            password=self.ep.resolved_password(),
            database=self.db,
            autocommit=True,
            connect_timeout=2,
            read_timeout=10,
            write_timeout=10,
        )

    def run(self) -> None:
        conn: pymysql.Connection[Any] | None = None
        try:
            while not self.stopping.is_set():
                try:
                    if conn is None:
                        conn = self._connect()
                        self.reconnects += 1
                    self.seq += 1
                    key = self.rng.randrange(self.lo, self.hi)
                    with conn.cursor() as cur:
                        if self.rng.random() < 0.7:
                            cur.execute(
                                "REPLACE INTO items VALUES (%s, %s, %s)",
                                (key, self.seq, f"w{self.seq}"),
                            )
                        else:
                            cur.execute("DELETE FROM items WHERE id = %s", (key,))
                    self.committed += 1
                    time.sleep(0.003)
                except pymysql.err.MySQLError:
                    self.failures += 1
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn = None
                    self.stopping.wait(0.2)
        except BaseException as exc:
            self.error = exc
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def finish(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the writer did not stop"
        assert self.error is None, repr(self.error)


@contextlib.contextmanager
def writing(ep: Endpoint, db: str, lo: int, hi: int, seed: int) -> Iterator[Writer]:
    writer = Writer(ep, db, lo, hi, seed)
    writer.start()
    try:
        yield writer
    finally:
        writer.stopping.set()
        writer.join(30)


def recovery_seconds(writer: Writer, target: Endpoint, db: str, timeout: float) -> float | None:
    """Seconds from now (the killed server serving again) until the target holds a
    row the writer wrote after now; None if it did not within *timeout*."""
    start = time.monotonic()
    mark = writer.seq
    while time.monotonic() - start < timeout:
        if _max_v(target, db, writer.lo, writer.hi) > mark:
            return time.monotonic() - start
        time.sleep(0.2)
    return None


RECOVERY: dict[str, float | None] = {}


def _report(case: str, seconds: float | None, extra: str = "") -> None:
    RECOVERY[case] = seconds
    shown = "never" if seconds is None else f"{seconds:.1f}s"
    say(f"{case}: recovery (serving again -> first new row applied) {shown} {extra}")


def _history(home: Path, name: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = task_show(home, name)["history"]
    return history


# -- a/b/d: kill -9 during incremental sync -----------------------------------------------


def _kill_during_incremental(
    tmp_path: Path,
    box: Sandbox,
    case: str,
    source: Endpoint,
    src_db: str,
    target: Endpoint,
    dst_db: str,
    victim: str,
) -> None:
    _load_items(source, src_db, 1, 2000)
    spec = _spec(
        tmp_path / "task.yaml",
        case,
        _url(source),
        _url(target),
        _sync_body(src_db, dst_db, "retry_for: 10m, write_concurrency: 4"),
    )
    home = tmp_path / "home"
    with (
        running(home, tmp_path / "migrate.log", "migrate", "-f", str(spec)) as proc,
        writing(source, src_db, 1, 4000, seed=7) as writer,
    ):
        wait_state(home, case, {"incremental_monitoring"}, proc)
        time.sleep(3)
        kill9(box, victim)
        killed_at = time.monotonic()
        time.sleep(DOWN)
        served = restart(box)
        say(f"{case}: {victim} down {served - killed_at:.1f}s")
        seconds = recovery_seconds(writer, target, dst_db, CONVERGE)
        time.sleep(5)
        writer.finish()
        assert proc.alive(), f"the task exited after the restart:\n{proc.output()}"
        took = converge([(source, src_db, target, dst_db)], ["items"], [proc])
        _report(
            case,
            seconds,
            f"(converged {took:.1f}s after the writer stopped; writer: {writer.committed}"
            f" writes, {writer.failures} failed, {writer.reconnects} connections)",
        )
        assert writer.committed > 1000, "too few writes during the test"
        retries = [e for e in _history(home, case) if e["kind"] != "state"]
        say(f"{case}: events {[(e['kind'], e['detail'][:120]) for e in retries]}")


@pytest.mark.parametrize(
    ("victim_side", "victim"),
    [
        ("source", "faultmaria"),
        ("target", "faultmaria"),
        ("source", "faultob"),
        ("target", "faultob"),
    ],
    ids=["source-mariadb", "target-mariadb", "source-oceanbase", "target-oceanbase"],
)
def test_kill_during_incremental(
    victim_side: str,
    victim: str,
    tmp_path: Path,
    box: Sandbox,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """The killed server is the source or the target; the other side is the shared
    mariadb1."""
    killed = endpoint(box, victim)
    case = f"heal-{'src' if victim_side == 'source' else 'dst'}-{victim.removeprefix('fault')}"
    if victim_side == "source":
        src_db, dst_db = private_database(killed, "src"), fresh_database(mariadb1, "dst")
        _kill_during_incremental(tmp_path, box, case, killed, src_db, mariadb1, dst_db, victim)
    else:
        src_db, dst_db = fresh_database(mariadb1, "src"), private_database(killed, "dst")
        _kill_during_incremental(tmp_path, box, case, mariadb1, src_db, killed, dst_db, victim)


# -- c: kill -9 during the full copy ---------------------------------------------------------

BIG_ROWS = 300_000


def _wait_copied(
    proc: Proc, target: Endpoint, db: str, table: str, at_least: int, timeout: float
) -> int:
    """Wait until the copy has put *at_least* rows into *table*; how many it has."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.alive(), proc.output()
        try:
            copied = int(query(target, f"SELECT COUNT(*) FROM `{db}`.`{table}`")[0][0])
        except pymysql.err.MySQLError:
            copied = 0
        if copied >= at_least:
            return copied
        assert time.monotonic() < deadline, f"the copy never started:\n{proc.output()}"
        time.sleep(0.3)


@pytest.mark.soak
@pytest.mark.parametrize("victim_side", ["source", "target", "ob-target"])
def test_kill_during_full_copy(
    tmp_path: Path,
    box: Sandbox,
    victim_side: str,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """300k narrow rows copied at 15k rows/s; the source's or the target's server is
    killed -9 in the middle of the copy and restarted; the copy resumes and the
    target ends equal to the source: same count, same checksum, same rows."""
    victim = "faultob" if victim_side.startswith("ob-") else "faultmaria"
    faulty = endpoint(box, victim)
    if victim_side == "source":
        source, src_db = faulty, private_database(faulty, "src")
        target, dst_db = mariadb1, fresh_database(mariadb1, "dst")
    else:
        source, src_db = mariadb1, fresh_database(mariadb1, "src")
        target, dst_db = faulty, private_database(faulty, "dst")
    run_sql(
        source,
        [
            "CREATE TABLE big (id INT PRIMARY KEY, a INT NOT NULL, b CHAR(8) NOT NULL)",
            "INSERT INTO big SELECT seq, seq * 7919 MOD 100003, LEFT(MD5(seq), 8)"
            f" FROM seq_1_to_{BIG_ROWS}",
        ],
        src_db,
    )
    name = f"heal-full-{victim_side}"
    spec = _spec(
        tmp_path / "task.yaml",
        name,
        _url(source),
        _url(target),
        f"""types: [schema, full]
select: {{databases: [{src_db}]}}
rename: {{databases: {{{src_db}: {dst_db}}}}}
options: {{retry_for: 10m, chunk_rows: 5000, rate_rows_per_second: 15000}}
""",
    )
    home = tmp_path / "home"
    with running(home, tmp_path / "migrate.log", "migrate", "-f", str(spec)) as proc:
        # in the middle of the copy: some rows there, most not
        copied = _wait_copied(proc, target, dst_db, "big", BIG_ROWS // 5, 120)
        kill9(box, victim)
        time.sleep(DOWN)
        assert proc.alive(), f"the task exited while the server was down:\n{proc.output()}"
        served = restart(box)
        say(f"{name}: killed with {copied} of {BIG_ROWS} rows on the target")
        try:
            proc.popen.wait(300)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the copy did not finish in time:\n{proc.output()}") from None
        finished = time.monotonic() - served
        assert proc.popen.returncode == 0, proc.output()
        say(f"{name}: copy finished {finished:.1f}s after the restart")
    count = "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, a, b))) FROM `{}`.big"
    assert query(target, count.format(dst_db)) == query(source, count.format(src_db))
    assert table_rows(target, dst_db, "big") == table_rows(source, src_db, "big")
    history = _history(home, name)
    say(f"{name}: history {[(e['kind'], e['to'], e['detail'][:100]) for e in history]}")
    RECOVERY[name] = finished


def _load_big_items(ep: Endpoint, db: str, rows: int) -> None:
    """``items`` with *rows* rows, generated by the server (a 1000-row table crossed
    with itself: OceanBase has no sequence engine)."""
    digits = ", ".join(f"({i})" for i in range(1000))
    run_sql(
        ep,
        [
            ITEMS,
            "CREATE TABLE gen (n INT PRIMARY KEY)",
            f"INSERT INTO gen VALUES {digits}",
            "INSERT INTO items SELECT a.n * 1000 + b.n + 1, 0, CONCAT('seed', a.n * 1000 + b.n)"
            f" FROM gen a, gen b WHERE a.n * 1000 + b.n < {rows}",
            "DROP TABLE gen",
        ],
        db,
    )


@pytest.mark.soak
@pytest.mark.parametrize("victim", ["faultmaria", "faultob"])
def test_kill_source_during_full_copy_under_writes(
    tmp_path: Path,
    box: Sandbox,
    victim: str,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """Schema, full and incremental, a writer changing random rows all along; the
    source is killed -9 in the middle of the copy and restarted. The copy resumes,
    the incremental phase starts from the handover position taken before the copy
    (binlog, or the OceanBase trigger log), and the target converges."""
    source = endpoint(box, victim)
    src_db = private_database(source, "src")
    dst_db = fresh_database(mariadb1, "dst")
    _load_big_items(source, src_db, BIG_ROWS)
    name = f"heal-copy-writes-{victim}"
    spec = _spec(
        tmp_path / "task.yaml",
        name,
        _url(source),
        _url(mariadb1),
        _sync_body(src_db, dst_db, "retry_for: 10m, chunk_rows: 5000, rate_rows_per_second: 15000"),
    )
    home = tmp_path / "home"
    with (
        running(home, tmp_path / "migrate.log", "migrate", "-f", str(spec)) as proc,
        writing(source, src_db, 1, BIG_ROWS + 20_000, seed=9) as writer,
    ):
        copied = _wait_copied(proc, mariadb1, dst_db, "items", BIG_ROWS // 4, 180)
        kill9(box, victim)
        time.sleep(DOWN)
        assert proc.alive(), f"the task exited while the server was down:\n{proc.output()}"
        restart(box)
        say(f"{name}: killed with {copied} of {BIG_ROWS} rows on the target")
        wait_state(home, name, {"incremental_running", "incremental_monitoring"}, proc, 300)
        time.sleep(3)
        writer.finish()
        took = converge([(source, src_db, mariadb1, dst_db)], ["items"], [proc], 180)
        say(
            f"{name}: converged {took:.1f}s after the writer stopped (writer: {writer.committed}"
            f" writes, {writer.failures} failed)"
        )
    history = _history(home, name)
    fulls = [e for e in history if e["kind"] == "state" and e["to"] == "full_migration"]
    assert len(fulls) == 1, [(e["kind"], e["from"], e["to"], e["detail"]) for e in history]


# -- e: a broken link ----------------------------------------------------------------------


#: seconds of chaos on each link: resets, stalls and refusals every few seconds, so
#: dozens of faults (45 s keeps the whole test run within its time budget)
CHAOS_SECONDS = 45


@pytest.mark.soak
@pytest.mark.parametrize("source_name", ["faultmaria", "faultob"])
def test_chaos_on_both_links(
    tmp_path: Path,
    box: Sandbox,
    source_name: str,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """duosync reaches both servers through fault proxies that stall, reset, refuse
    and black-hole connections at random for 60 s while a writer runs; afterwards
    the target equals the source, and the task never stopped.

    The source is a private server: a shared one may have its binlogs purged by
    another test while our reader is cut off (seen: error 1236, then fatal)."""
    source = endpoint(box, source_name)
    src_db = private_database(source, "src")
    if source_name == "faultmaria":
        target, dst_db = mariadb1, fresh_database(mariadb1, "dst")
    else:
        target = endpoint(box, "faultmaria")
        dst_db = private_database(target, "dst")
    _load_items(source, src_db, 1, 2000)
    with (
        FaultProxy(source.host, source.port) as src_proxy,
        FaultProxy(target.host, target.port) as dst_proxy,
    ):
        name = f"heal-chaos-{source_name}"
        spec = _spec(
            tmp_path / "task.yaml",
            name,
            src_proxy.endpoint_url(source.flavor.value),
            dst_proxy.endpoint_url(target.flavor.value),
            _sync_body(
                src_db, dst_db, "retry_for: 10m, write_concurrency: 4, heartbeat_seconds: 1"
            ),
        )
        home = tmp_path / "home"
        with (
            running(home, tmp_path / "migrate.log", "migrate", "-f", str(spec)) as proc,
            writing(source, src_db, 1, 4000, seed=3) as writer,
        ):
            wait_state(home, name, {"incremental_monitoring"}, proc)
            say("chaos begins")
            src_proxy.chaos(CHAOS_SECONDS, random.Random(1))
            dst_proxy.chaos(CHAOS_SECONDS, random.Random(2))
            src_proxy.wait_chaos(90)
            dst_proxy.wait_chaos(90)
            healed = time.monotonic()
            say(f"chaos ended; source link: {src_proxy.events}")
            say(f"target link: {dst_proxy.events}")
            seconds = recovery_seconds(writer, target, dst_db, CONVERGE)
            time.sleep(3)
            writer.finish()
            assert proc.alive(), f"the task exited during the chaos:\n{proc.output()}"
            took = converge([(source, src_db, target, dst_db)], ["items"], [proc])
            _report(
                name,
                seconds,
                f"(chaos ended -> first new row applied; converged {took:.1f}s after the"
                f" writer stopped, {time.monotonic() - healed:.1f}s after the chaos ended;"
                f" proxies accepted {src_proxy.accepted}+{dst_proxy.accepted} connections)",
            )


@pytest.mark.soak
@pytest.mark.parametrize("link", ["source", "target", "ob-source"])
def test_half_open_connections_are_noticed(
    tmp_path: Path,
    box: Sandbox,
    link: str,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """Beyond the brief's cases: a silent partition. Every connection duosync has
    on one link goes half-open (the server side reset, no FIN or RST reaching
    duosync, as when a host vanishes or a firewall drops state) and stays so for
    the rest of the test; new connections work. A self-healing task must notice
    (a read timeout, keepalive) and carry on over new connections: the target
    converges within the usual bound while the old connections are still silent."""
    source = endpoint(box, "faultob" if link == "ob-source" else "faultmaria")
    src_db = private_database(source, "src")
    dst_db = fresh_database(mariadb1, "dst")
    _load_items(source, src_db, 1, 2000)
    with (
        FaultProxy(source.host, source.port) as src_proxy,
        FaultProxy(mariadb1.host, mariadb1.port) as dst_proxy,
    ):
        name = f"heal-half-open-{link}"
        spec = _spec(
            tmp_path / "task.yaml",
            name,
            # io_timeout: how long a silent link is waited for (default 60 s), short
            # here so that the test sees the recovery without waiting a minute
            src_proxy.endpoint_url(source.flavor.value) + "?io_timeout=10",
            dst_proxy.endpoint_url("mariadb") + "?io_timeout=10",
            _sync_body(src_db, dst_db, "retry_for: 10m, write_concurrency: 4"),
        )
        home = tmp_path / "home"
        proxy = dst_proxy if link == "target" else src_proxy
        with (
            running(home, tmp_path / "migrate.log", "migrate", "-f", str(spec)) as proc,
            writing(source, src_db, 1, 4000, seed=5) as writer,
        ):
            wait_state(home, name, {"incremental_monitoring"}, proc)
            time.sleep(2)
            severed = proxy.sever(CONVERGE + 180)
            say(f"{name}: {severed} connections on the {link} link half-open from now on")
            seconds = recovery_seconds(writer, mariadb1, dst_db, CONVERGE)
            time.sleep(3)
            writer.finish()
            assert proc.alive(), f"the task exited:\n{proc.output()}"
            try:
                took = converge([(source, src_db, mariadb1, dst_db)], ["items"], [proc])
            finally:
                say(f"{name}: task output:\n{proc.output(3000)}")
            _report(
                name,
                seconds,
                f"(severed -> first new row applied; converged {took:.1f}s after the writer"
                " stopped)",
            )


# -- f: down for longer than retry_for --------------------------------------------------------


def test_gives_up_after_retry_for_then_resumes_in_place(
    tmp_path: Path,
    box: Sandbox,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """retry_for 10s, the source down 25 s: the run ends failed, saying it gave up;
    run again with the server back it resumes in place (no second full copy)."""
    source = endpoint(box, "faultmaria")
    src_db = private_database(source, "src")
    dst_db = fresh_database(mariadb1, "dst")
    _load_items(source, src_db, 1, 2000)
    name = "heal-give-up"
    spec = _spec(
        tmp_path / "task.yaml",
        name,
        _url(source),
        _url(mariadb1),
        _sync_body(src_db, dst_db, "retry_for: 10s"),
    )
    home = tmp_path / "home"
    log = tmp_path / "migrate.log"
    with running(home, log, "migrate", "-f", str(spec)) as proc:
        wait_state(home, name, {"incremental_monitoring"}, proc)
        run_sql(source, ["UPDATE items SET v = 1 WHERE id <= 100"], src_db)
        time.sleep(2)
        kill9(box, "faultmaria")
        killed = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(25)
        exited_after = time.monotonic() - killed
        time.sleep(max(0.0, 25 - exited_after))
        restart(box)
        if proc.alive():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)
        assert not proc.alive(), f"still running 25 s into a 10 s retry_for:\n{proc.output()}"
        code = proc.popen.returncode
        say(f"{name}: migrate exited {code} {exited_after:.1f}s after the kill")
        out = proc.output()
        assert code != 0, out
        assert "gave up after retrying" in out, out
        assert name in out, out
    shown = task_show(home, name)
    assert shown["state"] == "failed", shown
    assert "gave up" in (shown["error"] or ""), shown

    run_sql(
        source,
        [
            "DELETE FROM items WHERE id BETWEEN 101 AND 300",
            "REPLACE INTO items VALUES (5000, 2, 'after'), (7, 3, 'changed')",
        ],
        src_db,
    )
    with running(home, tmp_path / "migrate2.log", "migrate", "-f", str(spec)) as again:
        wait_state(home, name, {"incremental_running", "incremental_monitoring"}, again)
        took = converge([(source, src_db, mariadb1, dst_db)], ["items"], [again])
        say(f"{name}: converged {took:.1f}s after the second run started")
    history = _history(home, name)
    fulls = [e for e in history if e["kind"] == "state" and e["to"] == "full_migration"]
    assert len(fulls) == 1, [(e["kind"], e["from"], e["to"], e["detail"]) for e in history]


# -- g: two-way sync -------------------------------------------------------------------------


@pytest.mark.soak
def test_two_way_sync_through_a_kill(
    tmp_path: Path,
    box: Sandbox,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    private_database: Callable[..., str],
) -> None:
    """Forward and reverse tasks both run; faultmaria (the forward task's target
    and the reverse task's source) is killed -9 and restarted while both sides are
    written on disjoint keys; both sides end identical."""
    side_b = endpoint(box, "faultmaria")
    db_a = fresh_database(mariadb1, "a")
    db_b = private_database(side_b, "b")
    _load_items(mariadb1, db_a, 1, 1000)
    name = "heal-two-way"
    spec = _spec(
        tmp_path / "task.yaml",
        name,
        _url(mariadb1),
        _url(side_b),
        f"""topology: two-way
types: [schema, full, incremental]
select: {{databases: [{db_a}]}}
rename: {{databases: {{{db_a}: {db_b}}}}}
options: {{retry_for: 10m}}
reverse: {{retry_for: 10m}}
""",
    )
    home = tmp_path / "home"
    with running(home, tmp_path / "forward.log", "migrate", "-f", str(spec)) as forward:
        wait_state(home, name, {"incremental_monitoring"}, forward)
        with running(home, tmp_path / "reverse.log", "reverse", "-f", str(spec)) as reverse:
            wait_state(home, f"{name}.reverse", {"incremental_monitoring"}, reverse)
            with (
                writing(mariadb1, db_a, 1, 100_000, seed=21) as writer_a,
                writing(side_b, db_b, 1_000_000, 1_100_000, seed=22) as writer_b,
            ):
                time.sleep(3)
                kill9(box, "faultmaria")
                time.sleep(DOWN)
                restart(box)
                forward_s = recovery_seconds(writer_a, side_b, db_b, CONVERGE)
                time.sleep(5)
                writer_a.finish()
                writer_b.finish()
            assert forward.alive(), forward.output()
            assert reverse.alive(), reverse.output()
            took = converge([(mariadb1, db_a, side_b, db_b)], ["items"], [forward, reverse])
            _report(
                name,
                forward_s,
                f"(forward direction; both sides equal {took:.1f}s after the writers stopped;"
                f" writers {writer_a.committed}+{writer_b.committed})",
            )
            b_keys = query(mariadb1, f"SELECT COUNT(*) FROM `{db_a}`.items WHERE id >= 1000000")
            assert b_keys[0][0] > 0, "nothing written on side b reached side a"
