"""``duosync demo``: a MariaDB <-> OceanBase two-way sync on the local sandbox.

It starts the sandbox, loads a small shop schema into MariaDB, runs the forward
task (schema, full copy, incremental) until it is caught up, starts the reverse
task, writes both sides at once (disjoint keys, as the reference page asks of
two-way users) while showing progress, then waits until both sides hold the same
rows (and ``duosync verify`` agrees) and says so. Rerunning it starts over: the
demo's databases, tasks and capture are removed first.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import connect, driver_errors
from duosync.endpoints.oceanbase import capture
from duosync.errors import ConfigError, FatalError
from duosync.sandbox import Sandbox
from duosync.service.runtime.live import Live
from duosync.service.runtime.states import State
from duosync.service.runtime.tasks import run_reverse_foreground, run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.specfile import parse_spec
from duosync.sync.runner import SyncStats
from duosync.verify import verify_task

Say = Callable[[str], None]

TASK = "demo"
DATABASE = "duosync_demo"
TABLES = ("customers", "orders")
_SCHEMA = (
    f"CREATE DATABASE {DATABASE}",
    f"CREATE TABLE {DATABASE}.customers (id BIGINT NOT NULL PRIMARY KEY,"
    " email VARCHAR(120) NOT NULL, name VARCHAR(80) NOT NULL, balance DECIMAL(12,2) NOT NULL,"
    " updated_at DATETIME(6) NOT NULL, UNIQUE KEY uk_email (email))",
    f"CREATE TABLE {DATABASE}.orders (id BIGINT NOT NULL PRIMARY KEY,"
    " customer_id BIGINT NOT NULL, status ENUM('new','paid','shipped','cancelled') NOT NULL,"
    " total DECIMAL(12,2) NOT NULL, placed_at DATETIME(3) NOT NULL,"
    " KEY k_customer (customer_id),"
    " CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id))",
)
_CUSTOMERS = 1000
_ORDERS = 3000
#: first new key of each side's writer: the two sides never write the same key
_FIRST_KEY = {"mariadb": 1_000_000, "oceanbase": 2_000_000}


@dataclass
class DemoResult:
    equal: bool
    rows: dict[str, int]
    writes: dict[str, int]
    forward: SyncStats
    reverse: SyncStats
    seconds: float


def run_demo(home: Path, sandbox_dir: Path, seconds: float, say: Say) -> DemoResult:
    started = time.monotonic()
    say(f"demo: starting the sandbox in {sandbox_dir} (the first start takes a minute)")
    urls = {s.name: s.url for s in Sandbox(sandbox_dir).up(timeout=240)}
    maria = Endpoint.from_url(urls["mariadb1"])
    ob = Endpoint.from_url(urls["oceanbase1"])
    spec = parse_spec(
        {
            "name": TASK,
            "topology": "two-way",
            "source": urls["mariadb1"],
            "target": urls["oceanbase1"],
            "types": ["schema", "full", "incremental"],
            "select": {"databases": [DATABASE]},
            "options": {"write_concurrency": 2, "conflict": "overwrite"},
            "reverse": {"write_concurrency": 2, "conflict": "overwrite"},
        },
        "demo",
    )
    with MetadataStore.in_home(home) as store:
        _reset(store, maria, ob)
    _load(maria)
    say(
        f"demo: loaded {DATABASE} ({_CUSTOMERS} customers, {_ORDERS} orders) into"
        f" {maria.display}; two-way sync with {ob.display}"
    )
    forward, reverse = SyncStats(), SyncStats()
    stop_forward, stop_reverse = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    quiet: Say = lambda line: say(f"  {line}")  # noqa: E731 - one-line adapter

    def forward_task() -> None:
        with MetadataStore.in_home(home) as store:
            run_spec(spec, store, quiet, stop_forward, live=Live(sync=forward))

    def reverse_task() -> None:
        with MetadataStore.in_home(home) as store:
            run_reverse_foreground(store, spec, quiet, stop_reverse, live=Live(sync=reverse))

    threads = [_thread(forward_task, errors, "forward")]
    writers: list[_Writer] = []
    try:
        _wait(home, TASK, errors, say, "forward task (schema, full copy, then incremental)")
        threads.append(_thread(reverse_task, errors, "reverse"))
        _wait(home, spec.reverse_name, errors, say, "reverse task")
        writers = [_Writer(maria, "mariadb", 1), _Writer(ob, "oceanbase", 0)]
        for w in writers:
            w.start()
        say(f"demo: writing both sides for {seconds:.0f}s")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(2.0, max(0.0, end - time.monotonic())))
            _check(errors, writers)
            say(_progress(writers, forward, reverse))
        for w in writers:
            w.stop.set()
            w.join()
        _check(errors, writers)
        say("demo: writers stopped; waiting until both sides hold the same rows")
        equal, rows = _settle(maria, ob, errors)
        # The verdict of duosync verify too: checksums computed inside each server.
        report = verify_task(spec, say=quiet)
        say(
            f"demo: duosync verify: {report.rows} rows compared by chunk checksums,"
            f" {sum(t.missing for t in report.tables)} missing,"
            f" {sum(t.extra for t in report.tables)} extra,"
            f" {sum(t.different for t in report.tables)} different"
        )
        equal = equal and not report.differs
    finally:
        for w in writers:
            w.stop.set()
        stop_reverse.set()
        stop_forward.set()
        for t in reversed(threads):
            t.join(timeout=60)
    _check(errors, [])
    return DemoResult(
        equal=equal,
        rows=rows,
        writes={w.side: w.transactions for w in writers},
        forward=forward,
        reverse=reverse,
        seconds=time.monotonic() - started,
    )


def _thread(body: Callable[[], None], errors: list[BaseException], name: str) -> threading.Thread:
    def run() -> None:
        try:
            body()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def _check(errors: list[BaseException], writers: list[_Writer]) -> None:
    for w in writers:
        if w.error is not None:
            errors.append(w.error)
    if errors:
        raise errors[0]


def _wait(home: Path, task: str, errors: list[BaseException], say: Say, what: str) -> None:
    say(f"demo: starting the {what}")
    deadline = time.monotonic() + 600
    while True:
        _check(errors, [])
        with MetadataStore.in_home(home) as store:
            try:
                state = store.get_task(task).state
            except Exception:
                state = None
        if state is State.INCREMENTAL_MONITORING:
            say(f"demo: {task} is caught up (monitoring)")
            return
        if time.monotonic() > deadline:
            raise FatalError(f"{task} did not catch up within 10 minutes", task=task)
        time.sleep(0.5)


def _progress(writers: list[_Writer], forward: SyncStats, reverse: SyncStats) -> str:
    def lag(s: SyncStats) -> str:
        return "?" if s.lag is None else f"{s.lag:.1f}s"

    writes = ", ".join(f"{w.side} {w.transactions}" for w in writers)
    return (
        f"demo: transactions written: {writes} | forward: {forward.rows} rows applied,"
        f" lag {lag(forward)} | reverse: {reverse.rows} rows applied, lag {lag(reverse)},"
        f" {forward.echoes + reverse.echoes} echoes dropped"
    )


def _reset(store: MetadataStore, maria: Endpoint, ob: Endpoint) -> None:
    """Remove what an earlier demo left: tasks, OceanBase capture, databases."""
    for task in (f"{TASK}.reverse", TASK):
        with contextlib.suppress(ConfigError):  # it never ran
            store.delete_task(task)
        capture.remove(ob, task)
    for endpoint in (maria, ob):
        _execute(endpoint, [f"DROP DATABASE IF EXISTS {DATABASE}"])


def _load(maria: Endpoint) -> None:
    rnd = random.Random(7)
    customers = [
        (i, f"c{i}@example.com", f"customer {i}", f"{rnd.randint(0, 99999)}.{i % 100:02d}", _now())
        for i in range(1, _CUSTOMERS + 1)
    ]
    orders = [
        (i, rnd.randint(1, _CUSTOMERS), rnd.choice(("new", "paid", "shipped")), "19.99", _now())
        for i in range(1, _ORDERS + 1)
    ]
    conn = connect(maria)
    try:
        with driver_errors(maria), conn.cursor() as cur:
            for sql in _SCHEMA:
                cur.execute(sql)
            cur.executemany(
                f"INSERT INTO {DATABASE}.customers VALUES (%s, %s, %s, %s, %s)", customers
            )
            cur.executemany(f"INSERT INTO {DATABASE}.orders VALUES (%s, %s, %s, %s, %s)", orders)
    finally:
        conn.close()


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**6:06d}"


def _execute(endpoint: Endpoint, statements: list[str]) -> None:
    conn = connect(endpoint)
    try:
        with driver_errors(endpoint), conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


class _Writer(threading.Thread):
    """Shop traffic on one side: new orders, balance updates, status changes and
    cancellations, on customers and orders only this side writes (odd or even
    seed customers, and keys from its own range)."""

    def __init__(self, endpoint: Endpoint, side: str, parity: int) -> None:
        super().__init__(name=f"demo-{side}", daemon=True)
        self.endpoint, self.side = endpoint, side
        self.customers = [i for i in range(1, _CUSTOMERS + 1) if i % 2 == parity]
        self.orders: list[int] = []
        self.next_key = _FIRST_KEY[side]
        self.stop = threading.Event()
        self.transactions = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rnd = random.Random(self.side)
        conn = connect(self.endpoint)
        try:
            conn.autocommit(False)
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    self._transaction(cur, rnd)
                    conn.commit()
                    self.transactions += 1
                    time.sleep(rnd.random() * 0.01)
        except BaseException as exc:
            self.error = exc
        finally:
            conn.close()

    def _transaction(self, cur: Any, rnd: random.Random) -> None:
        db = DATABASE
        key = self.next_key
        self.next_key += 1
        if rnd.random() < 0.2:
            cur.execute(
                f"INSERT INTO {db}.customers VALUES (%s, %s, %s, 0, %s)",
                (key, f"{self.side}{key}@example.com", f"new {self.side} customer", _now()),
            )
            self.customers.append(key)
            return
        customer = rnd.choice(self.customers)
        total = f"{rnd.randint(1, 500)}.{rnd.randint(0, 99):02d}"
        cur.execute(
            f"INSERT INTO {db}.orders VALUES (%s, %s, 'new', %s, %s)",
            (key, customer, total, _now()),
        )
        cur.execute(
            f"UPDATE {db}.customers SET balance = balance + %s, updated_at = %s WHERE id = %s",
            (total, _now(), customer),
        )
        self.orders.append(key)
        if len(self.orders) > 5 and rnd.random() < 0.5:
            order = rnd.choice(self.orders[:-1])
            cur.execute(
                f"UPDATE {db}.orders SET status = %s WHERE id = %s",
                (rnd.choice(("paid", "shipped")), order),
            )
        if len(self.orders) > 20 and rnd.random() < 0.1:
            order = self.orders.pop(rnd.randrange(len(self.orders) - 1))
            cur.execute(f"DELETE FROM {db}.orders WHERE id = %s", (order,))


def _rows(endpoint: Endpoint, table: str) -> list[tuple[Any, ...]]:
    conn = connect(endpoint)
    try:
        with driver_errors(endpoint), conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {DATABASE}.{table} ORDER BY id")
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def _settle(
    maria: Endpoint, ob: Endpoint, errors: list[BaseException], timeout: float = 120
) -> tuple[bool, dict[str, int]]:
    """Compare every row of both sides until they are equal (or *timeout*)."""
    deadline = time.monotonic() + timeout
    while True:
        _check(errors, [])
        left = {t: _rows(maria, t) for t in TABLES}
        if all(left[t] == _rows(ob, t) for t in TABLES):
            return True, {t: len(rows) for t, rows in left.items()}
        if time.monotonic() > deadline:
            return False, {t: len(rows) for t, rows in left.items()}
        time.sleep(1)
