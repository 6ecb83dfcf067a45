"""OceanBase trigger capture: exact values, commit order under concurrent writers,
resume, purge, DDL refresh, install/remove. Every check reads the servers."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from duosync.config import Endpoint
from duosync.core.events import Fragment, Heartbeat, Op, RowChange, Transaction
from duosync.core.positions import TriggerLogPosition
from duosync.endpoints.oceanbase import capture
from duosync.service.phases.inspection import inspect_endpoint
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.specfile import load_spec
from tests.helpers import admin_connection, query, run_sql
from tests.integration.test_copy import FIDELITY, _canonical

pytestmark = pytest.mark.integration


def _install(ob: Endpoint, db: str, consumer: str, *tables: str) -> TriggerLogPosition:
    catalog = inspect_endpoint(ob, [db]).database(db)
    return capture.install(ob, consumer, [catalog.table(t) for t in tables])


@pytest.fixture
def consumers(oceanbase: Endpoint) -> Iterator[list[str]]:
    """Consumers a test installs; removed afterwards (the log is shared)."""
    names: list[str] = []
    yield names
    for name in names:
        capture.remove(oceanbase, name)


def _drain(
    stream: capture.TriggerLogStream,
    until: Callable[[list[Transaction]], bool],
    timeout: float = 60,
) -> list[Transaction]:
    """Transactions read until *until* holds at an idle moment (a Heartbeat)."""
    got: list[Transaction] = []
    stop = threading.Event()
    deadline = time.monotonic() + timeout
    for item in stream.read(stop):
        if isinstance(item, Transaction):
            got.append(item)
        elif isinstance(item, Heartbeat) and until(got):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"stream did not reach the expected state; read {len(got)}")
    return got


def _in(db: str) -> Callable[[str, str], bool]:
    """The tests' filter: the log is shared with other tests' (and benches') tables."""
    return lambda database, _table: database == db


def _rows(txns: list[Transaction]) -> list[RowChange]:
    return [c for t in txns for c in t.changes if isinstance(c, RowChange)]


def _spec(tmp_path: Path, name: str, source: Endpoint, target: Endpoint, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        f"source: oceanbase://root@{source.host}:{source.port}\n"
        f"target: mariadb://root@{target.host}:{target.port}\n" + body
    )
    return path


def test_every_type_round_trips_through_capture_and_apply(
    tmp_path: Path,
    oceanbase: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    consumers: list[str],
) -> None:
    """Inserts, updates and deletes of every column type on OceanBase reach MariaDB
    exactly (the update from a +08:00 session, OceanBase's own default)."""
    src, dst = fresh_database(oceanbase, "src"), fresh_database(mariadb2, "dst")
    create, inserts = FIDELITY.split(";\n", 1)
    run_sql(oceanbase, [create], database=src)
    spec = load_spec(
        _spec(
            tmp_path,
            "cap-types",
            oceanbase,
            mariadb2,
            f"types: [schema, incremental]\nselect: {{databases: [{src}]}}\n"
            f"rename: {{databases: {{{src}: {dst}}}}}\n",
        )
    )
    consumers.append(spec.name)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with MetadataStore.in_home(tmp_path / "home") as store:
                run_spec(spec, store, lambda _line: None, stop)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _wait(lambda: capture.status(oceanbase) is not None and _is_consumer(oceanbase, spec.name))
        writer = admin_connection(oceanbase, src)
        with writer.cursor() as cur:
            for statement in inserts.split(";"):  # in UTC: the values are UTC limits
                if statement.strip():
                    cur.execute(statement)
            cur.execute("SET time_zone = '+08:00'")
            cur.execute("BEGIN")
            cur.execute(
                "UPDATE fidelity SET vc = 'moved', ts = '2001-02-03 04:05:06.5' WHERE id = 4"
            )
            cur.execute("UPDATE fidelity SET id = 40 WHERE id = 4")  # a key change
            cur.execute("COMMIT")
            cur.execute("DELETE FROM fidelity WHERE id = 3")
        writer.close()
        table = inspect_endpoint(oceanbase, [src]).database(src).table("fidelity")
        _wait(
            lambda: _canonical(mariadb2, dst, table) == _canonical(oceanbase, src, table),
            what="MariaDB equals the OceanBase source",
        )
        assert len(_canonical(mariadb2, dst, table)) == 3
    finally:
        stop.set()
        worker.join(60)
    assert not errors, errors


def _is_consumer(ob: Endpoint, name: str) -> bool:
    got = capture.status(ob)
    return got is not None and any(c.consumer == name for c in got.consumers)


def _wait(check: Callable[[], bool], timeout: float = 90, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # a table or the log not there yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.3)


def test_concurrent_writers_are_read_whole_in_commit_order(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    """Writers sleep a random time between writing and committing, so transactions
    commit in another order than they wrote the log; a reader running alongside
    yields every transaction once, whole, in commit-version order."""
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY, w INT, n INT)"], database=db)
    consumers.append("cap-order")
    start = _install(oceanbase, db, "cap-order", "t")
    writers, per_writer, rows_per_txn = 6, 15, 3
    committed: dict[str, list[int]] = {}
    lock = threading.Lock()

    def write(w: int) -> None:
        rng = random.Random(w)
        conn = admin_connection(oceanbase, db)
        with conn.cursor() as cur:
            for n in range(per_writer):
                cur.execute("BEGIN")
                ids = [w * 10000 + n * 10 + i for i in range(rows_per_txn)]
                for i in ids:
                    cur.execute("INSERT INTO t VALUES (%s, %s, %s)", (i, w, n))
                cur.execute("SELECT ob_transaction_id()")
                txid = str(cur.fetchone()[0])
                time.sleep(rng.uniform(0, 0.08))
                cur.execute("COMMIT")
                with lock:
                    committed[txid] = ids
        conn.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    with capture.TriggerLogStream(
        oceanbase, start, consumer="cap-order", tables=_in(db), poll_seconds=0.01
    ) as s:
        got = _drain(
            s,
            lambda txns: (
                len(txns) >= writers * per_writer and not any(t.is_alive() for t in threads)
            ),
        )
    for t in threads:
        t.join()
    assert sorted(t.id for t in got) == sorted(committed)  # each once, none missed
    for txn in got:  # whole: all rows of a transaction arrive together
        assert (
            sorted(c.after[0] for c in txn.changes if isinstance(c, RowChange)) == committed[txn.id]
        )
    positions = [t.position for t in got]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # The commit versions the table itself reports agree with the order read.
    scn = dict(query(oceanbase, f"SELECT id, ORA_ROWSCN FROM `{db}`.t"))
    order = [scn[t.changes[0].after[0]] for t in got]  # type: ignore[union-attr]
    assert order == sorted(order)
    # The interesting case happened: some transaction wrote the log (seq) before
    # another but committed after it.
    seqs = dict(
        (int(r[0]), int(r[1]))
        for r in query(oceanbase, "SELECT tx, MIN(seq) FROM oms.duosync_changelog GROUP BY tx")
    )
    read_seqs = [seqs[int(t.id)] for t in got]
    assert read_seqs != sorted(read_seqs)


def test_resume_after_restart_yields_exactly_the_rest(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))"], database=db)
    consumers.append("cap-resume")
    start = _install(oceanbase, db, "cap-resume", "t")
    run_sql(oceanbase, [f"INSERT INTO t VALUES ({i}, 'v{i}')" for i in range(10)], database=db)
    with capture.TriggerLogStream(oceanbase, start, consumer="cap-resume", tables=_in(db)) as s:
        first = _drain(s, lambda txns: len(txns) >= 10)[:4]
    resumed_at = first[-1].position
    run_sql(
        oceanbase,
        ["UPDATE t SET v = 'late' WHERE id < 3", "DELETE FROM t WHERE id = 9"],
        database=db,
    )
    with capture.TriggerLogStream(
        oceanbase, resumed_at, consumer="cap-resume", tables=_in(db)
    ) as s:
        rest = _drain(s, lambda txns: len(txns) >= 8)
    assert [c.after[0] for c in _rows(first)] == [0, 1, 2, 3]  # type: ignore[index]
    changes = _rows(rest)
    assert [(c.op, (c.after or c.before)[0]) for c in changes] == (  # type: ignore[index]
        [(Op.INSERT, i) for i in range(4, 10)]
        + [(Op.UPDATE, i) for i in range(3)]
        + [(Op.DELETE, 9)]
    )


def test_purge_keeps_only_what_a_consumer_still_needs_and_warns(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY)"], database=db)
    consumers.extend(["cap-purge-a", "cap-purge-b"])
    start_a = _install(oceanbase, db, "cap-purge-a", "t")
    start_b = _install(oceanbase, db, "cap-purge-b", "t")
    run_sql(oceanbase, [f"INSERT INTO t VALUES ({i})" for i in range(20)], database=db)

    def mine() -> int:
        return int(
            query(
                oceanbase,
                "SELECT COUNT(*) FROM oms.duosync_changelog WHERE db = %s AND op <> 'S'",
                (db,),
            )[0][0]
        )

    assert mine() == 20
    lines: list[str] = []
    with capture.TriggerLogStream(
        oceanbase,
        start_a,
        consumer="cap-purge-a",
        tables=_in(db),
        purge_seconds=0.1,
        warn_rows=5,
        say=lines.append,
    ) as a:
        txns = _drain(a, lambda t: len(t) >= 20)
        a.confirm(txns[9].position)
        _drain(a, lambda _t: True)  # a purge round runs
    # b has confirmed nothing: everything stays, and the growth is reported.
    assert mine() == 20
    assert any("change log holds" in line and "slowest consumer" in line for line in lines)
    with capture.TriggerLogStream(
        oceanbase, start_b, consumer="cap-purge-b", tables=_in(db), purge_seconds=0.1
    ) as b:
        txns_b = _drain(b, lambda t: len(t) >= 20)
        b.confirm(txns_b[-1].position)
        _drain(b, lambda _t: True)
    # Now the floor is a's confirmation (unless another consumer of the shared log,
    # from elsewhere, is further behind): what is below it is gone, the rest stays.
    floor = int(query(oceanbase, "SELECT MIN(scn) FROM oms.duosync_capture_consumer")[0][0])
    assert floor <= txns[9].position.scn
    expected = sum(1 for t in txns if t.position.scn >= floor)
    _wait(lambda: mine() == expected, timeout=10, what=f"purge down to {expected} rows")


def test_column_changes_refresh_the_triggers(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    """ADD and DROP COLUMN on a captured table: writes keep working, each row
    arrives with the columns it was written with, and none is recorded twice."""
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT)"], database=db)
    consumers.append("cap-ddl")
    start = _install(oceanbase, db, "cap-ddl", "t")
    lines: list[str] = []
    stop = threading.Event()
    got: list[Transaction] = []
    with capture.TriggerLogStream(
        oceanbase,
        start,
        consumer="cap-ddl",
        tables=_in(db),
        watch_seconds=0.2,
        say=lines.append,
        ddl=False,  # DML only: the rows as written (DDL: tests/integration/test_oceanbase_ddl.py)
    ) as s:
        reader = threading.Thread(
            target=lambda: got.extend(i for i in s.read(stop) if isinstance(i, Transaction))
        )
        reader.start()
        try:
            run_sql(
                oceanbase,
                ["INSERT INTO t VALUES (1, 1, 1)", "ALTER TABLE t ADD COLUMN c INT"],
                database=db,
            )
            _wait(lambda: any("triggers refreshed" in line for line in lines), 20, "a refresh")
            run_sql(oceanbase, ["INSERT INTO t VALUES (2, 2, 2, 2)"], database=db)
            run_sql(oceanbase, ["ALTER TABLE t DROP COLUMN b"], database=db)
            _wait(
                lambda: sum("triggers refreshed" in line for line in lines) >= 2, 20, "2 refreshes"
            )
            run_sql(oceanbase, ["UPDATE t SET c = 30 WHERE id = 2"], database=db)
            _wait(lambda: len(_rows(got)) >= 3, 20, "three row changes")
        finally:
            stop.set()
            reader.join(10)
    rows = _rows(got)
    assert [(c.op, c.columns, c.after) for c in rows] == [
        (Op.INSERT, ("id", "a", "b"), (1, 1, 1)),
        (Op.INSERT, ("id", "a", "b", "c"), (2, 2, 2, 2)),
        (Op.UPDATE, ("id", "a", "c"), (2, 2, 30)),
    ]
    names = [r[0] for r in query(oceanbase, f"SHOW TRIGGERS FROM `{db}`")]
    assert len(names) == 3 and all("_v3_" in n for n in names), names


def test_install_is_idempotent_and_remove_cleans_up(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    db = fresh_database(oceanbase)
    run_sql(
        oceanbase,
        ["CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY)"],
        database=db,
    )
    consumers.extend(["cap-x", "cap-y"])
    first = _install(oceanbase, db, "cap-x", "t", "u")
    again = _install(oceanbase, db, "cap-x", "t", "u")
    assert again == first  # a second install changes nothing, not even the start
    _install(oceanbase, db, "cap-y", "t")

    def triggers() -> dict[str, int]:
        rows = query(oceanbase, f"SHOW TRIGGERS FROM `{db}`")
        out: dict[str, int] = {}
        for r in rows:
            out[str(r[2])] = out.get(str(r[2]), 0) + 1
        return out

    assert triggers() == {"t": 3, "u": 3}
    assert capture.remove(oceanbase, "cap-x") == [(db, "u")]  # t is still y's
    assert triggers() == {"t": 3}
    run_sql(oceanbase, ["INSERT INTO u VALUES (1)"], database=db)  # uncaptured now
    capture.remove(oceanbase, "cap-y")
    capture.remove(oceanbase, "cap-y")  # harmless twice
    assert triggers() == {}
    status = capture.status(oceanbase)
    assert status is None or all(c.consumer not in ("cap-x", "cap-y") for c in status.consumers)
    run_sql(oceanbase, ["INSERT INTO t VALUES (1)"], database=db)  # writes unaffected


def test_a_large_transaction_comes_in_fragments(
    oceanbase: Endpoint, fresh_database: Callable[..., str], consumers: list[str]
) -> None:
    """With a fragment size, a large transaction's rows come in fragments, then the
    transaction with the rest: the same rows in the same order as read whole; a
    small transaction after it comes whole."""
    db = fresh_database(oceanbase)
    run_sql(oceanbase, ["CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))"], database=db)
    consumers.append("cap-frag")
    start = _install(oceanbase, db, "cap-frag", "t")
    values = ", ".join(f"({i}, 'v{i}')" for i in range(450))
    run_sql(
        oceanbase,
        ["BEGIN", f"INSERT INTO t VALUES {values}", "UPDATE t SET v = 'u' WHERE id < 50", "COMMIT"],
        database=db,
    )
    run_sql(oceanbase, ["INSERT INTO t VALUES (1000, 'last')"], database=db)
    with capture.TriggerLogStream(oceanbase, start, consumer="cap-frag", tables=_in(db)) as s:
        whole = _drain(s, lambda txns: len(txns) >= 2)
    got: list[Transaction | Fragment] = []
    stop = threading.Event()
    with capture.TriggerLogStream(
        oceanbase, start, consumer="cap-frag", tables=_in(db), fragment_rows=100
    ) as s:
        for item in s.read(stop):
            if isinstance(item, Transaction | Fragment):
                got.append(item)
            if len([i for i in got if isinstance(i, Transaction)]) >= 2:
                break
    fragments = [i for i in got if isinstance(i, Fragment)]
    done = [i for i in got if isinstance(i, Transaction)]
    assert len(whole[0].changes) == 500 and len(fragments) == 4
    assert all(len(f.changes) == 100 for f in fragments)
    assert {f.id for f in fragments} == {whole[0].id} and {f.follows for f in fragments} == {start}
    assert done[0].fragments == 4 and done[0].position == whole[0].position
    assert [*(c for f in fragments for c in f.changes), *done[0].changes] == list(whole[0].changes)
    assert done[1] == whole[1] and done[1].fragments == 0
