"""The web console of ``duosync serve``, end to end, in a real browser (the system's
Chromium through Playwright): a user creates a task with the form, starts it, watches
the pre-checks, the full copy's progress and the switch to incremental sync, the
task's health, timeline and last-hour chart, pauses and resumes it, and sees the API's
own error messages for bad input. A retrying task (which a healthy sandbox does not
produce on demand) is shown from canned API answers.

Set ``DUOSYNC_CONSOLE_SCREENSHOTS`` to a directory to keep screenshots of the pages.

The page's counters are only watched; the verdict on the data is a comparison of
every source row with every target row."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import duosync.web
from duosync.config import Endpoint
from tests.helpers import query, run_sql

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
TABLES = ("orders", "items")
ROWS = {"orders": 5000, "items": 3000}
INCREMENTAL = re.compile(r"^incremental_(running|monitoring)$")
#: a hard limit for every wait (seconds)
WAIT = 120.0
#: the console's health indicator of a task in the list
HEALTH = re.compile(r"^(healthy|retrying( \(attempt \d+\))?)$")
#: the phases every run of the test's task goes through, in order
PHASES = ("prechecking", "schema_migration", "full_migration", "incremental_running")
STATIC = Path(duosync.web.__file__).parent / "static"


@dataclass
class Serve:
    base: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=headers, timeout=60, **kw)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``duosync serve`` in a subprocess, with a random token; every task it runs is
    paused through the API before the service is stopped."""
    port = _free_port()
    token = secrets.token_urlsafe(24)
    log = tmp_path / "serve.log"
    env = dict(os.environ, DUOSYNC_API_TOKEN=token, DUOSYNC_PLAIN="1")
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "duosync.cli", "--home", str(home), "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Serve(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"duosync serve exited early: {server.log_tail()}")
            try:
                if server.api("GET", "/tasks").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"duosync serve did not answer: {server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        try:
            if proc.poll() is None:
                for task in server.api("GET", "/tasks").json():
                    if "pause" in task["actions"]:
                        server.api("POST", f"/tasks/{quote(task['name'], safe='')}/pause")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install the Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _make_source(endpoint: Endpoint, db: str) -> None:
    run_sql(
        endpoint,
        [
            "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40) NOT NULL,"
            " amount DECIMAL(10,2) NOT NULL, placed_at DATETIME NOT NULL, note TEXT)",
            "CREATE TABLE items (id BIGINT PRIMARY KEY, order_id INT NOT NULL,"
            " sku VARCHAR(20) NOT NULL, qty INT NOT NULL, KEY order_idx (order_id))",
            f"INSERT INTO orders SELECT seq, CONCAT('customer-', seq % 97), seq * 1.25,"
            f" '2024-01-01' + INTERVAL seq MINUTE, IF(seq % 3 = 0, NULL, REPEAT('x', seq % 50))"
            f" FROM seq_1_to_{ROWS['orders']}",
            f"INSERT INTO items SELECT seq, 1 + seq % {ROWS['orders']}, CONCAT('SKU', seq * 7),"
            f" seq % 9 FROM seq_1_to_{ROWS['items']}",
        ],
        database=db,
    )


def _url(endpoint: Endpoint) -> str:
    """The URL a user types into the form (the sandbox's root has no password)."""
    return f"{endpoint.flavor.value}://{endpoint.user}@{endpoint.host}:{endpoint.port}"


def _rows(endpoint: Endpoint, db: str, table: str) -> list[tuple[Any, ...]]:
    return query(endpoint, f"SELECT * FROM `{db}`.`{table}` ORDER BY id")


def _wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # e.g. a table not created on the target yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def _screenshot(page: Any, name: str) -> None:
    where = os.environ.get("DUOSYNC_CONSOLE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


def _timeline(page: Any) -> list[tuple[str, str]]:
    """The timeline's (kind, to-state) pairs, as shown (newest first)."""
    rows = page.get_by_test_id("history-row")
    return [
        (r.get_attribute("data-kind") or "", r.get_attribute("data-to") or "") for r in rows.all()
    ]


_READ_DETAIL = """() => {
  const get = (id) => document.querySelector(`[data-testid="${id}"]`);
  const bar = get("progress-bar");
  const copy = get("copy");
  return {
    state: get("task-state") ? get("task-state").textContent : null,
    phase: get("task-phase") ? get("task-phase").textContent : null,
    rows: get("rows") ? get("rows").getAttribute("data-value") : null,
    fraction: bar && copy && !copy.hidden ? bar.getAttribute("data-value") : null,
    prechecks: document.querySelectorAll('[data-testid="precheck-row"]').length,
  };
}"""


def test_console_creates_runs_and_pauses_a_sync(
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    serve: Serve,
    browser_page: Any,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    src_db = fresh_database(mariadb1, "src")
    dst_db = fresh_database(mariadb2, "dst")
    _make_source(mariadb1, src_db)
    name = f"console-{secrets.token_hex(3)}"

    # -- the token comes in the hash once, then lives in sessionStorage only ----------
    page.goto(f"{serve.base}/console/#token={serve.token}")
    expect(page.get_by_test_id("task-list")).to_be_visible()
    assert serve.token not in page.url
    assert page.evaluate("() => sessionStorage.getItem('duosync.apiToken')") == serve.token

    # -- create the task with the form ------------------------------------------------
    page.get_by_test_id("new-task").click()
    expect(page.get_by_test_id("create-form")).to_be_visible()
    page.get_by_test_id("field-name").fill(name)
    page.get_by_test_id("field-source").fill(_url(mariadb1))
    page.get_by_test_id("field-target").fill(_url(mariadb2))
    expect(page.get_by_test_id("type-schema")).to_be_checked()
    expect(page.get_by_test_id("type-full")).to_be_checked()
    page.get_by_test_id("type-incremental").check()
    page.get_by_test_id("field-databases").fill(src_db)
    page.get_by_test_id("field-renames").fill(f"{src_db}={dst_db}")
    page.get_by_test_id("field-write-concurrency").fill("2")
    page.get_by_test_id("field-rate").fill("2000")  # ~4 s of copy: progress is visible
    page.get_by_test_id("field-chunk-rows").fill("500")
    page.get_by_test_id("create-submit").click()

    expect(page.get_by_test_id("task-name")).to_have_text(name, timeout=30_000)
    assert page.url.endswith("#/tasks/" + quote(name, safe=""))
    expect(page.get_by_test_id("task-state")).to_have_text("not_started")
    expect(page.get_by_test_id("action-start")).to_be_visible()

    # -- start it and watch: pre-checks, the full copy, then incremental sync --------
    page.get_by_test_id("action-start").click()
    expect(page.get_by_test_id("precheck-row").first).to_be_visible(timeout=60_000)

    seen_phases: list[str] = []
    copy_seen = False  # rows > 0 or a copy fraction > 0 while in full_migration
    deadline = time.monotonic() + WAIT
    while True:
        shown = page.evaluate(_READ_DETAIL)
        phase = shown["phase"] or ""
        if not seen_phases or seen_phases[-1] != phase:
            seen_phases.append(phase)
        if phase == "full_migration" and (
            float(shown["rows"] or 0) > 0 or float(shown["fraction"] or 0) > 0
        ):
            copy_seen = True
        if INCREMENTAL.match(shown["state"] or ""):
            break
        if shown["state"] == "failed":
            raise AssertionError(
                f"task failed: {page.get_by_test_id('task-error').text_content()}"
                f" (pre-checks: {page.get_by_test_id('prechecks').inner_text()})"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no incremental sync in {WAIT:.0f} s; phases {seen_phases}")
        time.sleep(0.2)
    assert "full_migration" in seen_phases, seen_phases
    assert copy_seen, f"no copy progress shown during full_migration (phases {seen_phases})"
    assert page.get_by_test_id("precheck-row").count() > 0
    expect(page.get_by_test_id("action-pause")).to_be_visible()
    expect(page.get_by_test_id("history-row").first).to_be_visible()

    # -- health, timeline and chart of the running task --------------------------------
    banner = page.get_by_test_id("health-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("data-health", re.compile(r"^(healthy|retrying)$"))
    if banner.get_attribute("data-health") == "healthy":
        expect(page.get_by_test_id("health-summary")).to_have_text(
            re.compile(r"^healthy \(\d+ retr(y|ies) in all\)$")
        )
    for phase in PHASES:  # every phase change is on the timeline, with its local time
        event = page.locator(f'[data-testid="history-row"][data-kind="phase"][data-to="{phase}"]')
        expect(event.first).to_be_visible()
        expect(event.first.locator("time")).not_to_have_text("")
    shown_phases = [to for kind, to in _timeline(page) if kind == "phase"]
    assert [p for p in shown_phases if p in PHASES][::-1][: len(PHASES)] == list(PHASES), (
        f"timeline not newest first: {shown_phases}"
    )
    expect(page.get_by_test_id("chart-card")).to_be_visible()
    # the run is this service's: its chart has points (the first one at its start)
    expect(page.get_by_test_id("chart-svg")).to_be_visible()
    expect(page.get_by_test_id("chart-rows").locator("polyline")).to_have_count(1)
    expect(page.get_by_test_id("chart-svg")).to_contain_text("rows/s")
    _screenshot(page, "detail-incremental")

    # -- a real sync: a new source row reaches the target, and every row is equal -----
    run_sql(
        mariadb1,
        "INSERT INTO orders VALUES (900001, 'console', 12.50, '2025-06-01 10:00:00', 'new')",
        database=src_db,
    )
    _wait_for(
        "the new row on the target",
        lambda: bool(query(mariadb2, "SELECT 1 FROM orders WHERE id = 900001", database=dst_db)),
    )
    for table in TABLES:
        _wait_for(
            f"{table} equal on both sides",
            lambda t=table: _rows(mariadb1, src_db, t) == _rows(mariadb2, dst_db, t),
            timeout=60,
        )
    assert len(_rows(mariadb2, dst_db, "orders")) == ROWS["orders"] + 1
    assert len(_rows(mariadb2, dst_db, "items")) == ROWS["items"]

    # -- pause and resume from the page --------------------------------------------
    page.get_by_test_id("action-pause").click()
    expect(page.get_by_test_id("task-state")).to_have_text("paused", timeout=60_000)
    expect(page.get_by_test_id("action-resume")).to_be_visible()
    pause_event = page.locator('[data-testid="history-row"][data-kind="pause"]')
    expect(pause_event.first).to_be_visible()
    expect(pause_event.first).to_have_attribute("data-to", "paused")
    expect(page.get_by_test_id("history-row").first).to_have_attribute("data-kind", "pause")
    page.get_by_test_id("action-resume").click()
    expect(page.get_by_test_id("task-state")).to_have_text(INCREMENTAL, timeout=60_000)
    expect(page.get_by_test_id("action-error")).to_be_hidden()
    # the resume is the newest event: a phase change from paused
    expect(page.get_by_test_id("history-row").first).to_have_attribute("data-kind", "phase")
    expect(page.get_by_test_id("history-row").first.get_by_test_id("history-from")).to_have_text(
        "paused"
    )
    _screenshot(page, "detail-resumed")

    # changes made after the resume arrive too
    run_sql(mariadb1, "UPDATE items SET qty = qty + 100 WHERE id <= 10", database=src_db)
    _wait_for(
        "items equal after the resume",
        lambda: _rows(mariadb1, src_db, "items") == _rows(mariadb2, dst_db, "items"),
    )

    # -- the task list shows it ---------------------------------------------------
    page.get_by_test_id("nav-tasks").click()
    row = page.locator(f'[data-testid="task-row"][data-name="{name}"]')
    expect(row).to_be_visible()
    expect(row.get_by_test_id("task-state")).to_have_text(INCREMENTAL)
    expect(row.get_by_test_id("action-pause")).to_be_visible()
    expect(row.get_by_test_id("task-health")).to_be_visible()
    expect(row.get_by_test_id("task-health")).to_have_text(HEALTH)
    # this service runs it: live figures, not the "no progress" dash
    expect(row.get_by_test_id("rows-per-second")).to_have_text(re.compile(r"^\d[\d,]*(\.\d)?$"))
    expect(row.get_by_test_id("lag")).to_be_visible()
    _screenshot(page, "list")

    # -- bad input: the API's messages are shown next to the form ----------------------
    page.get_by_test_id("new-task").click()
    page.get_by_test_id("field-name").fill(name)
    page.get_by_test_id("field-source").fill(_url(mariadb1))
    page.get_by_test_id("field-target").fill(_url(mariadb2))
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("select: Field required")
    page.get_by_test_id("field-databases").fill(src_db)
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("already exists")
    expect(page.get_by_test_id("create-form")).to_be_visible()  # stayed on the form

    page.get_by_test_id("advanced").locator("summary").click()
    bad_spec = (
        f'{{"name": "{name}-2", "source": "{_url(mariadb1)}", "target": "{_url(mariadb2)}",'
        f' "select": {{"databases": ["{src_db}"]}}, "optoins": {{}}}}'
    )
    page.get_by_test_id("field-json").fill(bad_spec)
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("unknown field")
    expect(page.get_by_test_id("form-error")).to_contain_text("optoins")
    assert serve.api("GET", f"/tasks/{name}-2").status_code == 404

    # -- leave nothing running: pause through the API --------------------------------
    paused = serve.api("POST", f"/tasks/{quote(name, safe='')}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"] == "paused"
    assert not page_errors, page_errors


# -- a retrying task, from canned API answers -------------------------------------------


def _canned_task(name: str, state: str, now: float, **changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": name,
        "state": state,
        "error": None,
        "kind": "one-way",
        "forward_task": None,
        "source": "mariadb://root@127.0.0.1:3306",
        "target": "oceanbase://root@127.0.0.1:2881",
        "types": ["schema", "full", "incremental"],
        "created_at": now - 600,
        "updated_at": now,
        "runner": None,
        "actions": ["pause"],
        "reverse_task": None,
        "health": {
            "healthy": True,
            "retrying": False,
            "attempts": 0,
            "since": None,
            "next_attempt_at": None,
            "last_error": None,
            "last_error_at": None,
            "retries_total": 0,
        },
        "progress": None,
        "spec": {"name": name},
        "prechecks": [],
        "history": [],
    }
    task.update(changes)
    return task


def test_console_shows_a_retrying_task(browser_page: Any) -> None:
    """The health indicator, banner (reason, attempts, countdown), every kind of
    timeline event and the chart, for a task the API says is retrying; the page is
    the console's real files, the API answers are canned (page.route)."""
    from playwright.sync_api import Route, expect

    page = browser_page
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    now = time.time()
    error = "target unreachable: <b>2003</b> Can't connect to '127.0.0.1:2881'"

    def event(ago: float, kind: str, frm: str, to: str, detail: str | None) -> dict[str, Any]:
        return {"at": now - ago, "kind": kind, "from": frm, "to": to, "detail": detail}

    run = "incremental_running"
    retrying = _canned_task(
        "shop",
        run,
        now,
        health={
            "healthy": False,
            "retrying": True,
            "attempts": 3,
            "since": now - 90,
            "next_attempt_at": now + 40,
            "last_error": error,
            "last_error_at": now - 5,
            "retries_total": 7,
        },
        progress={
            "phase": run,
            "rows": 1000,
            "bytes": 64000,
            "rows_per_second": 0.0,
            "bytes_per_second": 0.0,
            "lag_seconds": 12.0,
            "conflicts": 0,
            "synced_rows": 10,
            "echoes_dropped": 0,
            "retrying": True,
            "copy": None,
            "chart": [
                {"at": now - 60 + 10 * i, "rows_per_second": 100.0 * i, "lag_seconds": lag}
                for i, lag in enumerate([None, 0.5, 1.0, 4.0, 8.0, 12.0])
            ],
        },
        history=[
            event(300, "state", "not_started", "prechecking", None),
            event(290, "state", "prechecking", "full_migration", None),
            event(280, "state", "full_migration", "failed", error),
            event(270, "state", "failed", "prechecking", None),
            event(260, "state", "prechecking", run, None),
            event(250, "state", run, "paused", None),
            event(240, "state", "paused", run, None),
            event(200, "note", run, run, "pre-check skipped"),
            event(150, "retry", run, run, "attempt 1 failed: " + error),
            event(120, "recovered", run, run, "recovered"),
            event(5, "retry", run, run, "attempt 3 failed: " + error),
        ],
    )
    failed = _canned_task("old", "failed", now, error=error, actions=["start", "release"])
    failed["health"] |= {"healthy": False, "last_error": error, "last_error_at": now - 9}
    fresh = _canned_task("fresh", "not_started", now, actions=["start", "release"])
    answers = {f"/api/v1/tasks/{t['name']}": t for t in (retrying, failed, fresh)}
    answers["/api/v1/tasks"] = [
        {k: v for k, v in t.items() if k not in ("spec", "prechecks", "history")}
        for t in (retrying, failed, fresh)
    ]
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

    def answer(route: Route) -> None:
        path = "/" + route.request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        if path.startswith("/console/"):
            file = STATIC / (path.removeprefix("/console/") or "index.html")
            route.fulfill(body=file.read_bytes(), content_type=types[file.suffix])
        elif path in answers:
            route.fulfill(body=json.dumps(answers[path]), content_type="application/json")
        else:
            route.fulfill(status=404, body='{"error": "no such task"}')

    page.route("http://console.test/**", answer)
    page.goto("http://console.test/console/#token=canned")

    # -- the list: one indicator per task -------------------------------------------
    health = {
        n: page.locator(f'[data-testid="task-row"][data-name="{n}"]').get_by_test_id("task-health")
        for n in ("shop", "old", "fresh")
    }
    expect(health["shop"]).to_have_text("retrying (attempt 3)")
    expect(health["old"]).to_have_text("failed")
    expect(health["fresh"]).to_have_text("healthy")
    fresh_row = page.locator('[data-testid="task-row"][data-name="fresh"]')
    expect(fresh_row.get_by_test_id("rows-per-second")).to_have_text("\u2014")
    expect(fresh_row.get_by_test_id("lag")).to_have_text("\u2014")
    shop_row = page.locator('[data-testid="task-row"][data-name="shop"]')
    expect(shop_row.get_by_test_id("lag")).to_have_text("12 s")

    # -- the retrying task: banner, countdown, timeline, chart --------------------------
    page.goto("http://console.test/console/#/tasks/shop")
    banner = page.get_by_test_id("health-banner")
    expect(banner).to_have_attribute("data-health", "retrying")
    expect(page.get_by_test_id("health-state")).to_have_text("retrying (attempt 3)")
    expect(page.get_by_test_id("health-reason")).to_have_text(error)  # as text, not HTML
    expect(banner.locator("b")).to_have_count(0)
    expect(page.get_by_test_id("health-attempts")).to_have_text("3 failed attempts")
    expect(page.get_by_test_id("health-summary")).to_contain_text("7 retries in all")
    expect(page.get_by_test_id("health-since")).to_contain_text("ago")
    countdown = page.get_by_test_id("health-countdown")
    expect(countdown).to_have_text(re.compile(r"^in \d+ s$"))
    first = int(re.sub(r"\D", "", countdown.text_content() or ""))
    expect(countdown).not_to_have_text(f"in {first} s", timeout=5_000)  # it counts down
    assert 0 < int(re.sub(r"\D", "", countdown.text_content() or "")) < first

    kinds = [kind for kind, _to in _timeline(page)]
    assert kinds == [
        "retry",
        "recovered",
        "retry",
        "note",
        "phase",
        "pause",
        "phase",
        "phase",
        "failure",
        "phase",
        "phase",
    ], kinds
    labels = page.get_by_test_id("history-kind").all_text_contents()
    assert labels[:2] == ["retry", "recovered"] and "failed" in labels and "paused" in labels
    expect(page.get_by_test_id("history-row").first.locator("time")).to_have_text(re.compile(r"\d"))

    expect(page.get_by_test_id("chart-svg")).to_be_visible()
    expect(page.get_by_test_id("chart-rows").locator("polyline")).to_have_count(1)
    expect(page.get_by_test_id("chart-lag").locator("polyline")).to_have_count(1)
    expect(page.get_by_test_id("chart-svg")).to_contain_text("max 500 rows/s")
    expect(page.get_by_test_id("chart-svg")).to_contain_text("lag max 12 s")
    lag_points = page.get_by_test_id("chart-lag").locator("polyline").get_attribute("points")
    assert lag_points is not None and len(lag_points.split()) == 5  # the None is left out
    _screenshot(page, "canned-retrying")

    # -- a failed task and one that never ran -----------------------------------------
    page.goto("http://console.test/console/#/tasks/old")
    expect(page.get_by_test_id("health-summary")).to_have_text("failed (0 retries in all)")
    expect(page.get_by_test_id("chart-empty")).to_have_text("no data yet")
    page.goto("http://console.test/console/#/tasks/fresh")
    expect(page.get_by_test_id("health-summary")).to_have_text("healthy (0 retries in all)")
    expect(page.get_by_test_id("health-banner")).to_have_attribute("data-health", "healthy")
    expect(page.get_by_test_id("chart-empty")).to_be_visible()
    expect(page.get_by_test_id("no-history")).to_be_visible()
    assert not page_errors, page_errors
