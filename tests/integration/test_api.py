"""The REST API over real sandbox servers: tasks created, started, paused, resumed
and released through it, bad input refused with a 4xx that says why, passwords
never returned. Sync results are checked by comparing the two sides' rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from duosync.api.app import create_app
from duosync.config import Endpoint
from tests.helpers import query, run_sql

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "s3cret-Api-pass"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(tmp_path / "duosync.db", TOKEN)
    with TestClient(app, headers=AUTH) as c:  # the lifespan runs the supervisor
        yield c


def _url(endpoint: Endpoint, user: str = "root", password: str = "") -> str:
    secret = f":{password}" if password else ""
    return f"{endpoint.flavor.value}://{user}{secret}@{endpoint.host}:{endpoint.port}"


def _wait_state(
    client: TestClient, name: str, wanted: set[str], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = client.get(f"/api/v1/tasks/{name}")
        assert got.status_code == 200, got.text
        task: dict[str, Any] = got.json()
        if task["state"] in wanted:
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stayed {task['state']} ({task['error']})")
        time.sleep(0.3)


def _rows(endpoint: Endpoint, table: str) -> list[tuple[Any, ...]]:
    return query(endpoint, f"SELECT * FROM {table} ORDER BY id")


def test_token_is_required_and_the_console_and_schema_are_served(client: TestClient) -> None:
    for path in ("/api/v1/tasks", "/metrics"):
        assert client.get(path, headers={"Authorization": ""}).status_code == 401
        wrong = client.get(path, headers={"Authorization": "Bearer nope-nope-nope-nope"})
        assert wrong.status_code == 401
        assert "API token" in wrong.json()["error"]
    assert client.get("/api/v1/tasks").json() == []
    schema = client.get("/openapi.json").json()
    for path in ("/api/v1/tasks", "/api/v1/tasks/{name}/start", "/api/v1/tasks/{name}/reverse"):
        assert path in schema["paths"]
    page = client.get("/console/", headers={"Authorization": ""})
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_bad_input_gets_a_4xx_that_says_why(
    client: TestClient, mariadb1: Endpoint, mariadb2: Endpoint
) -> None:
    spec = {
        "name": "bad-input",
        "source": _url(mariadb1),
        "target": _url(mariadb2),
        "select": {"databases": ["nowhere"]},
    }
    unknown = client.post("/api/v1/tasks", json={**spec, "bogus": 1})
    assert unknown.status_code == 422
    assert "bogus: unknown field" in unknown.json()["error"]
    invalid = client.post("/api/v1/tasks", json={**spec, "options": {"write_concurrency": 0}})
    assert invalid.status_code == 422
    assert "options.write_concurrency" in invalid.json()["error"]
    assert client.post("/api/v1/tasks", json=[1, 2]).status_code == 422
    assert client.get("/api/v1/tasks").json() == []  # nothing was stored

    assert client.post("/api/v1/tasks", json=spec).status_code == 201
    again = client.post("/api/v1/tasks", json=spec)
    assert again.status_code == 409 and "already exists" in again.json()["error"]

    missing = client.post("/api/v1/tasks/ghost/start")
    assert missing.status_code == 404 and "no task named 'ghost'" in missing.json()["error"]
    for action in ("resume", "pause"):
        got = client.post(f"/api/v1/tasks/bad-input/{action}")
        assert got.status_code == 409, got.text
        assert f"task is not_started: cannot {action}" in got.json()["error"]
    skip = client.post("/api/v1/tasks/bad-input/start", json={"skip": [], "force": True})
    assert skip.status_code == 422 and "force" in skip.json()["error"]
    reverse = client.post("/api/v1/tasks/bad-input/reverse", json={"conflict": "ignore"})
    assert reverse.status_code == 422 and "not a two-way sync" in reverse.json()["error"]
    # release, then nothing more
    assert client.post("/api/v1/tasks/bad-input/release").json()["state"] == "released"
    start = client.post("/api/v1/tasks/bad-input/start")
    assert start.status_code == 409
    assert "task is released: cannot start" in start.json()["error"]


def test_objects_text_selects_and_renames_and_a_bad_line_is_named(client: TestClient) -> None:
    # creating a task connects to no server: no sandbox needed
    spec = {
        "name": "listed",
        "source": "mariadb://root@127.0.0.1:13306",
        "target": "oceanbase://root@127.0.0.1:12881",
        "select": {"databases": ["billing"]},
    }
    bad = client.post("/api/v1/tasks", json={**spec, "objects_text": "shop.a\n# x\nshop\n"})
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("request body: objects_text:3: 'shop' is not db.table")
    twice = client.post("/api/v1/tasks", json={**spec, "objects_text": "shop.a\nshop.a x.a"})
    assert twice.status_code == 422 and "lines 1 and 2" in twice.json()["error"]
    not_text = client.post("/api/v1/tasks", json={**spec, "objects_text": ["shop.a"]})
    assert not_text.status_code == 422 and "objects_text" in not_text.json()["error"]
    # the API never reads a file on the server
    server_file = client.post("/api/v1/tasks", json={**spec, "select": {"import": "/etc/hostname"}})
    assert server_file.status_code == 422
    assert "select.import: not accepted here" in server_file.json()["error"]
    assert client.get("/api/v1/tasks").json() == []  # nothing was stored

    text = "shop.orders\nshop.customers crm.clients  # renamed\n"
    created = client.post("/api/v1/tasks", json={**spec, "objects_text": text})
    assert created.status_code == 201, created.text
    stored = created.json()["spec"]
    assert stored["select"]["databases"] == ["billing"]
    assert stored["select"]["objects"] == ["shop.orders", "shop.customers"]
    assert stored["rename"]["tables"] == {"shop.customers": "crm.clients"}
    assert "objects_text" not in stored and "import" not in stored["select"]


def test_a_task_s_life_through_the_api(
    client: TestClient,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            f"CREATE USER IF NOT EXISTS 'api_user'@'%' IDENTIFIED BY '{PASSWORD}'",
            "GRANT ALL PRIVILEGES ON *.* TO 'api_user'@'%'",
        ],
    )
    run_sql(
        mariadb1,
        [
            "CREATE TABLE acct (id INT PRIMARY KEY, balance INT NOT NULL, note TEXT)",
            "INSERT INTO acct SELECT seq, seq * 10, REPEAT('x', 100) FROM seq_1_to_20000",
        ],
        database=src,
    )
    spec = {
        "name": "api-life",
        "source": _url(mariadb1, "api_user", PASSWORD),
        "target": _url(mariadb2),
        "types": ["schema", "full", "incremental"],
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
        "options": {"chunk_rows": 1000, "rate_rows_per_second": 8000},
    }
    created = client.post("/api/v1/tasks", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "not_started"
    assert created.json()["actions"] == ["start", "release"]
    started = client.post("/api/v1/tasks/api-life/start")
    assert started.status_code == 200 and started.json()["state"] == "prechecking"

    # the copy is rate-limited to ~2.5 s: its progress shows while it runs
    task = _wait_state(client, "api-life", {"full_migration"})
    seen_rows = 0
    while task["state"] == "full_migration":
        progress = client.get("/api/v1/tasks/api-life/progress").json()
        seen_rows = max(seen_rows, progress["rows"])
        time.sleep(0.2)
        task = client.get("/api/v1/tasks/api-life").json()
    assert seen_rows > 0
    task = _wait_state(client, "api-life", {"incremental_monitoring"})
    checks = {c["name"]: c["status"] for c in task["prechecks"]}
    assert checks["source.connectivity"] == "pass" and checks["source.binlog"] == "pass"
    assert [e["to"] for e in task["history"]][:4] == [
        "not_started",
        "prechecking",
        "schema_migration",
        "full_migration",
    ]

    run_sql(mariadb1, [f"UPDATE {src}.acct SET balance = -1 WHERE id <= 100"])
    deadline = time.monotonic() + 60
    while query(mariadb2, f"SELECT COUNT(*) FROM {dst}.acct WHERE balance = -1") != [(100,)]:
        assert time.monotonic() < deadline, "the update did not arrive"
        time.sleep(0.2)
    assert _rows(mariadb2, f"{dst}.acct") == _rows(mariadb1, f"{src}.acct")

    verified = client.post("/api/v1/tasks/api-life/verify").json()
    assert verified["differs"] is False and verified["rows"] == 20000
    assert verified["tables"][0]["target"] == f"{dst}.acct"

    verified = client.post("/api/v1/tasks/api-life/verify").json()
    assert verified["differs"] is False and verified["rows"] == 20000
    assert verified["tables"][0]["target"] == f"{dst}.acct"

    progress = client.get("/api/v1/tasks/api-life/progress").json()
    assert progress["synced_rows"] >= 100 and progress["lag_seconds"] is not None
    metrics = client.get("/metrics").text
    assert 'duosync_task_phase{phase="incremental_monitoring",task="api-life"} 1.0' in metrics
    assert 'duosync_task_rows_per_second{task="api-life"}' in metrics
    assert 'duosync_task_lag_seconds{task="api-life"}' in metrics
    assert 'duosync_task_conflicts_total{task="api-life"} 0.0' in metrics

    # no password anywhere the API answers
    for path in ("/api/v1/tasks", "/api/v1/tasks/api-life", "/metrics"):
        assert PASSWORD not in client.get(path).text
    assert client.get("/api/v1/tasks/api-life").json()["spec"]["source"]["password"] == "********"

    refused = client.post("/api/v1/tasks/api-life/release")
    assert refused.status_code == 409 and "pause it first" in refused.json()["error"]
    paused = client.post("/api/v1/tasks/api-life/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
    run_sql(mariadb1, [f"DELETE FROM {src}.acct WHERE id > 19000"])  # while paused
    assert client.post("/api/v1/tasks/api-life/resume").json()["state"] == "incremental_running"
    _wait_state(client, "api-life", {"incremental_monitoring"})
    deadline = time.monotonic() + 60
    while _rows(mariadb2, f"{dst}.acct") != _rows(mariadb1, f"{src}.acct"):
        assert time.monotonic() < deadline, "the deletes made while paused did not arrive"
        time.sleep(0.3)

    conflicts = client.get("/api/v1/tasks/api-life/conflicts").json()
    assert conflicts["total"] == 0 and conflicts["conflicts"] == []
    assert client.post("/api/v1/tasks/api-life/pause").json()["state"] == "paused"
    released = client.post("/api/v1/tasks/api-life/release")
    assert released.json()["state"] == "released" and released.json()["actions"] == []
    run_sql(mariadb1, ["DROP USER IF EXISTS 'api_user'@'%'"])


def test_failed_pre_check_is_skipped_explicitly_and_recorded(
    client: TestClient,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, [f"CREATE TABLE {src}.t (id INT PRIMARY KEY, v INT)"])
    run_sql(mariadb1, ["INSERT INTO t SELECT seq, seq FROM seq_1_to_50"], database=src)
    # the target table exists and holds rows the source does not have
    run_sql(mariadb2, [f"CREATE TABLE {dst}.t (id INT PRIMARY KEY, v INT)"])
    run_sql(mariadb2, [f"INSERT INTO {dst}.t VALUES (1000, 1)"])
    spec = {
        "name": "skipper",
        "source": _url(mariadb1),
        "target": _url(mariadb2),
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
    }
    assert client.post("/api/v1/tasks", json=spec).status_code == 201
    client.post("/api/v1/tasks/skipper/start")
    task = _wait_state(client, "skipper", {"failed"})
    assert "target.non_empty_tables" in task["error"]
    failed = [c for c in task["prechecks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["target.non_empty_tables"]
    assert f"{dst}.t" in failed[0]["detail"]
    assert query(mariadb2, f"SELECT COUNT(*) FROM {dst}.t") == [(1,)]  # nothing copied

    passed = client.post("/api/v1/tasks/skipper/prechecks/source.connectivity/skip")
    assert passed.status_code == 422 and "did not fail" in passed.json()["error"]
    unknown = client.post("/api/v1/tasks/skipper/prechecks/no.such/skip")
    assert unknown.status_code == 422 and "no pre-check item 'no.such'" in unknown.json()["error"]
    skipped = client.post("/api/v1/tasks/skipper/prechecks/target.non_empty_tables/skip")
    assert skipped.status_code == 200, skipped.text
    row = next(c for c in skipped.json()["prechecks"] if c["name"] == "target.non_empty_tables")
    assert row["skipped"] is True
    notes = [e["detail"] for e in skipped.json()["history"]]
    assert any(n.startswith("pre-check target.non_empty_tables skipped") for n in notes)

    client.post("/api/v1/tasks/skipper/start")
    task = _wait_state(client, "skipper", {"completed", "failed"})
    assert task["state"] == "completed", task["error"]
    # the target's own row is kept, the source's rows are added
    assert _rows(mariadb2, f"{dst}.t") == [*_rows(mariadb1, f"{src}.t"), (1000, 1)]
