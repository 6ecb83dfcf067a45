"""Triggers, procedures, functions and events (``schema.routines``, options.routines)
on a Sakila-like schema (routines_schema.sql), against real servers: the pre-check
names every one, and the task leaves them behind or creates them as documented."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import connect
from duosync.schema import routines
from duosync.service.phases.cutover import cutover
from duosync.service.prechecks.checks import Status
from duosync.service.prechecks.items import task_prechecks
from duosync.service.runtime.states import INCREMENTAL, IllegalTransition, State
from duosync.service.runtime.tasks import run_spec
from duosync.service.store.metadata import MetadataStore
from duosync.spec import TaskSpec
from duosync.specfile import parse_spec
from tests.helpers import admin_connection, query, run_sql

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).with_name("routines_schema.sql")
TRIGGERS = ("ins_film", "upd_film", "del_film")
PROCEDURES = ("film_in_stock", "rewards_report")
FUNCTIONS = ("get_rate", "title_case")
EVENTS = ("purge_audit",)


def _load(endpoint: Endpoint, db: str) -> None:
    chunks = [c.strip() for c in SCHEMA.read_text().split("\n\n")]
    statements = [
        c for c in chunks if c and not all(line.startswith("--") for line in c.splitlines())
    ]
    run_sql(endpoint, statements, database=db)


def _url(endpoint: Endpoint) -> str:
    return f"{endpoint.flavor.value}://root@{endpoint.host}:{endpoint.port}"


def _spec(
    name: str, source: Endpoint, target: Endpoint, src: str, dst: str, **body: Any
) -> TaskSpec:
    return parse_spec(
        {
            "name": name,
            "source": _url(source),
            "target": _url(target),
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            **body,
        },
        name,
    )


def _objects(endpoint: Endpoint, db: str) -> dict[str, set[str]]:
    """The target's triggers, procedures, functions and events in *db*, by kind."""
    found: dict[str, set[str]] = {"trigger": set(), "procedure": set(), "function": set()}
    for (name,) in query(
        endpoint,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
        (db,),
    ):
        found["trigger"].add(name)
    for name, kind in query(
        endpoint,
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES"
        " WHERE ROUTINE_SCHEMA = %s",
        (db,),
    ):
        found[str(kind).lower()].add(name)
    if endpoint.flavor.value != "oceanbase":
        found["event"] = {
            r[0]
            for r in query(
                endpoint,
                "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
                (db,),
            )
        }
    return found


def _calls(endpoint: Endpoint, db: str) -> list[Any]:
    """What the procedures and functions answer on *endpoint*."""
    conn = admin_connection(endpoint, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT get_rate(1), get_rate(4), title_case('ACADEMY DINOSAUR')")
            functions = list(cur.fetchall())
            cur.execute("CALL film_in_stock(1, @n)")
            cur.execute("SELECT @n")
            in_stock = list(cur.fetchall())
            cur.execute("CALL rewards_report(2)")
            report = list(cur.fetchall())
        return [functions, in_stock, report]
    finally:
        conn.close()


def _run(tmp_path: Path, spec: TaskSpec) -> tuple[Any, list[str], list[str]]:
    """Run *spec* to its end: (its report, the lines it said, its history notes)."""
    said: list[str] = []
    with MetadataStore.in_home(tmp_path / "home") as store:
        result = run_spec(spec, store, said.append)
        history = [e.detail for e in store.history(spec.name) if e.kind == "note"]
    return result.report, said, history


def _every_name(text: str, src: str) -> None:
    for name in (*TRIGGERS, *PROCEDURES, *FUNCTIONS, *EVENTS):
        assert f"{src}.{name}" in text, name


def test_precheck_lists_every_object_and_its_fate(
    mariadb1: Endpoint, oceanbase: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src = fresh_database(mariadb1, "src")
    _load(mariadb1, src)
    off = _spec("rt-pre-off", mariadb1, oceanbase, src, "unused_db", types=["schema", "full"])
    item = {r.name: r for r in task_prechecks(off)}["source.routines"]
    print(item)
    assert item.status is Status.WARN
    _every_name(item.detail, src)
    assert item.detail.count("left behind (options.routines is false)") == 8
    assert f"trigger {src}.ins_film (on {src}.film)" in item.detail
    assert "options.routines: true" in item.detail

    on = _spec(
        "rt-pre-on",
        mariadb1,
        oceanbase,
        src,
        "unused_db",
        types=["schema", "full", "incremental"],
        options={"routines": True},
    )
    item = {r.name: r for r in task_prechecks(on)}["source.routines"]
    print(item)
    assert item.status is Status.WARN
    _every_name(item.detail, src)
    assert f"procedure {src}.film_in_stock: created as unused_db.film_in_stock" in item.detail
    assert item.detail.count("left behind, to create at cutover") == 3
    assert f"event {src}.purge_audit: created disabled" in item.detail
    assert "OceanBase has no events" in item.detail  # said before the task runs
    assert "definers are not kept" in item.detail


def test_routines_false_creates_nothing_and_the_report_names_them(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _load(mariadb1, src)
    spec = _spec("rt-off", mariadb1, mariadb2, src, dst, types=["schema", "full"])
    report, said, history = _run(tmp_path, spec)
    assert _objects(mariadb2, dst) == {
        "trigger": set(),
        "procedure": set(),
        "function": set(),
        "event": set(),
    }
    notes = "\n".join(map(str, report.notes))
    _every_name(notes, src)
    assert notes.count("left behind (options.routines is false)") == 8
    assert any("note: procedure" in line for line in said)
    (event,) = [h for h in history if "objects beyond tables and views" in h]
    _every_name(event, src)
    # the rows are there, and film_text as the source's triggers made it
    assert query(mariadb2, f"SELECT * FROM {dst}.film_text ORDER BY film_id") == query(
        mariadb1, f"SELECT * FROM {src}.film_text ORDER BY film_id"
    )


def test_routines_true_full_task_to_mariadb(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _load(mariadb1, src)
    spec = _spec(
        "rt-mdb", mariadb1, mariadb2, src, dst, types=["schema", "full"], options={"routines": True}
    )
    report, _said, history = _run(tmp_path, spec)
    print("\n".join(map(str, report.notes)))
    assert _objects(mariadb2, dst) == {
        "trigger": set(TRIGGERS),
        "procedure": set(PROCEDURES),
        "function": set(FUNCTIONS),
        "event": set(EVENTS),
    }
    assert _calls(mariadb2, dst) == _calls(mariadb1, src)
    # the triggers came after the copy: film_text holds each source row once
    text = "SELECT * FROM {}.film_text ORDER BY film_id"
    assert query(mariadb2, text.format(dst)) == query(mariadb1, text.format(src))
    # ... and they work on the target (the renamed database)
    run_sql(mariadb2, ["INSERT INTO film (film_id, title) VALUES (9, 'ZORRO ARK')"], dst)
    assert query(mariadb2, f"SELECT title FROM {dst}.film_text WHERE film_id = 9") == [
        ("ZORRO ARK",)
    ]
    # the event is there, disabled, and no definer was kept
    ((status, definer, comment),) = query(
        mariadb2,
        "SELECT STATUS, DEFINER, EVENT_COMMENT FROM information_schema.EVENTS"
        " WHERE EVENT_SCHEMA = %s",
        (dst,),
    )
    assert (status, comment) == ("DISABLED", "keep a day of audit")
    conn = connect(spec.target)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None and definer == row[0]
    assert query(
        mariadb1, "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (src,)
    ) == [("ENABLED",)]
    notes = "\n".join(history)
    assert f"procedure {src}.film_in_stock: created as {dst}.film_in_stock" in notes
    assert f"trigger {src}.ins_film (on {src}.film): created as {dst}.ins_film" in notes
    assert "DISABLED (enable it at cutover" in notes
    assert "definers: not kept" in notes
    # a rerun (a task resumed after a failure) keeps what is there
    plans = _plans(spec, src)
    again = [
        *routines.create_objects(spec.source, spec.target, plans, routines.Stage.SCHEMA),
        *routines.create_objects(spec.source, spec.target, plans, routines.Stage.AFTER_COPY),
    ]
    assert len(again) == 8 and all(o.existed and not o.created for o in again)


def test_routines_true_full_task_to_oceanbase(
    tmp_path: Path,
    mariadb1: Endpoint,
    oceanbase: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(oceanbase, "dst")
    _load(mariadb1, src)
    spec = _spec(
        "rt-ob", mariadb1, oceanbase, src, dst, types=["schema", "full"], options={"routines": True}
    )
    report, _said, history = _run(tmp_path, spec)
    print("\n".join(map(str, report.notes)))
    assert _objects(oceanbase, dst) == {
        "trigger": set(TRIGGERS),
        "procedure": set(PROCEDURES),
        "function": set(FUNCTIONS),
    }
    assert _calls(oceanbase, dst) == _calls(mariadb1, src)
    text = "SELECT * FROM {}.film_text ORDER BY film_id"
    assert query(oceanbase, text.format(dst)) == query(mariadb1, text.format(src))
    run_sql(oceanbase, ["UPDATE film SET title = 'ACE GOLDFINGERS' WHERE film_id = 2"], dst)
    assert query(oceanbase, f"SELECT title FROM {dst}.film_text WHERE film_id = 2") == [
        ("ACE GOLDFINGERS",)
    ]
    # OceanBase refuses the event: a note naming it and the server's error, no failure
    notes = "\n".join(history)
    assert f"event {src}.purge_audit: not created on the target ({dst}.purge_audit):" in notes
    assert "the target refused it" in notes and "syntax" in notes


def test_incremental_task_leaves_triggers_for_cutover(
    tmp_path: Path,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    _load(mariadb1, src)
    spec = _spec(
        "rt-inc",
        mariadb1,
        mariadb2,
        src,
        dst,
        types=["schema", "full", "incremental"],
        options={"routines": True},
    )
    stop = threading.Event()
    errors: list[BaseException] = []
    said: list[str] = []

    def run() -> None:
        try:
            with MetadataStore.in_home(tmp_path / "home") as store:
                run_spec(spec, store, said.append, stop)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        with MetadataStore.in_home(tmp_path / "home") as store:
            _wait(
                lambda: (
                    store.find_task(spec.name) is not None
                    and store.get_task(spec.name).state in INCREMENTAL
                )
            )
            history = "\n".join(e.detail for e in store.history(spec.name) if e.kind == "note")
        assert history.count("left behind, to create at cutover") == 3
        got = _objects(mariadb2, dst)
        assert got["trigger"] == set()
        assert got["procedure"] == set(PROCEDURES) and got["function"] == set(FUNCTIONS)
        assert got["event"] == set(EVENTS)
        # a row the source's trigger makes reaches the target once, through replication
        run_sql(mariadb1, ["INSERT INTO film (film_id, title) VALUES (7, 'BIRD CAGE')"], src)
        _wait(
            lambda: (
                query(mariadb2, f"SELECT COUNT(*) FROM {dst}.film_text WHERE film_id = 7") == [(1,)]
            )
        )
        assert _objects(mariadb2, dst)["trigger"] == set()
    finally:
        stop.set()
        worker.join(60)
        run_sql(mariadb2, ["DELETE FROM oms.duosync_checkpoint WHERE task = 'rt-inc'"])
    assert not errors, errors
    # at cutover (the task stopped), the triggers are created and the task released
    with MetadataStore.in_home(tmp_path / "home") as store:
        assert store.get_task(spec.name).state not in INCREMENTAL
        outcomes = cutover(store, spec.name, said.append)
        assert store.get_task(spec.name).state is State.RELEASED
        with pytest.raises(IllegalTransition):
            cutover(store, spec.name, said.append)
    assert sorted(o.planned.obj.name for o in outcomes if o.created) == sorted(TRIGGERS)
    assert _objects(mariadb2, dst)["trigger"] == set(TRIGGERS)


def _plans(spec: TaskSpec, src: str) -> list[routines.Planned]:
    """What *spec* does with the objects of *src* (whose four tables it selects)."""
    conn = connect(spec.source)
    try:
        with conn.cursor() as cur:
            return routines.plan(
                routines.inspect(cur, [src]),
                routines=spec.options.routines,
                schema=True,
                incremental="incremental" in spec.types,
                target_flavor=spec.target.flavor,
                tables=[(src, t) for t in ("film", "film_text", "rental", "audit_log")],
                database_renames=spec.rename.databases,
                rename_table=spec.rename.table,
            )
    finally:
        conn.close()


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_oceanbase_source_objects_reach_mariadb(
    tmp_path: Path,
    oceanbase: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    """OceanBase has no events, and reports a trigger's whole text as its statement;
    duosync's own capture triggers (of other tests) are never listed."""
    src, dst = fresh_database(oceanbase, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        oceanbase,
        [
            "CREATE TABLE film (film_id INT PRIMARY KEY, title VARCHAR(100) NOT NULL)",
            "CREATE TABLE film_text (film_id INT PRIMARY KEY, title VARCHAR(100) NOT NULL)",
            "CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW"
            " INSERT INTO film_text (film_id, title) VALUES (NEW.film_id, NEW.title)",
            "CREATE FUNCTION title_case(s VARCHAR(100)) RETURNS VARCHAR(100) DETERMINISTIC"
            " RETURN CONCAT(UPPER(LEFT(s, 1)), LOWER(SUBSTRING(s, 2)))",
            "INSERT INTO film VALUES (1, 'ACADEMY DINOSAUR')",
        ],
        src,
    )
    spec = _spec(
        "rt-obsrc",
        oceanbase,
        mariadb2,
        src,
        dst,
        types=["schema", "full"],
        options={"routines": True},
    )
    item = {r.name: r for r in task_prechecks(spec)}["source.routines"]
    assert "duosync_" not in item.detail
    assert f"trigger {src}.ins_film (on {src}.film): created after the full copy" in item.detail
    assert f"function {src}.title_case: created as {dst}.title_case" in item.detail
    _run(tmp_path, spec)
    assert _objects(mariadb2, dst) == {
        "trigger": {"ins_film"},
        "procedure": set(),
        "function": {"title_case"},
        "event": set(),
    }
    assert query(mariadb2, f"SELECT {dst}.title_case('ACE')") == [("Ace",)]
    assert query(mariadb2, f"SELECT * FROM {dst}.film_text") == [(1, "ACADEMY DINOSAUR")]
    run_sql(mariadb2, ["INSERT INTO film VALUES (2, 'ACE GOLDFINGER')"], dst)
    assert query(mariadb2, f"SELECT title FROM {dst}.film_text WHERE film_id = 2") == [
        ("ACE GOLDFINGER",)
    ]
