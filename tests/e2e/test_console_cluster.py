"""The console's cluster view, end to end in a real browser (the system's Chromium
through Playwright): two ``duosync serve --cluster`` nodes (the session's ZooKeeper,
a MariaDB metadata store of their own) run one small MariaDB-to-MariaDB task. The
page lists both nodes, the leader, their labels and the task under the node that
runs it; the task list has a node column; the task's page shows its node, epoch
and placement history. A drain clicked on the page moves the task to the other
node, the page follows, and the drain is ended from the page too. A single
service's console shows no cluster view.

Set ``DUOSYNC_CONSOLE_SCREENSHOTS`` to a directory to keep screenshots of the pages.

The page is only watched; that the task runs on after its move is read off the
target's rows."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import duosync.web
from duosync.api.app import create_app
from duosync.config import Endpoint
from tests.cluster import TOKEN, Node, free_port, wait_for
from tests.helpers import query, run_sql
from tests.servers import ZooKeeperServer

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
LABELS = {"n1": ("dc=east", "rack=r1"), "n2": ("dc=west",)}
#: Playwright's wait for what the page shows (ms): the task moves within seconds
SHOWN = 30_000
STATIC = Path(duosync.web.__file__).parent / "static"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module's tests (each has a page of its own)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install the Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_page(browser: Any) -> Iterator[Any]:
    """A fresh page; JavaScript errors and console errors fail the test."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(SHOWN)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: m.type == "error" and errors.append(f"{m.text} {m.location}"))
        # the drain buttons ask first: the user says yes
        page.on("dialog", lambda d: d.accept())
        yield page
        assert not errors, errors
    finally:
        context.close()


@pytest.fixture
def nodes(
    zookeeper: ZooKeeperServer,
    mariadb1: Endpoint,
    fresh_database: Callable[..., str],
    tmp_path: Path,
) -> Iterator[dict[str, Node]]:
    """Two nodes with labels, under a ZooKeeper path of their own, sharing a fresh
    metadata store database on mariadb1 (dropped after the nodes stopped). Started,
    not waited for: they boot while the test prepares (``wait_answering``)."""
    store_db = fresh_database(mariadb1, "store")
    store = f"mariadb://root@{mariadb1.host}:{mariadb1.port}/{store_db}"
    url = f"zk://{zookeeper.hosts}/duosync-console-{secrets.token_hex(4)}"
    cluster = {
        name: Node(name, url, store, tmp_path / name, labels) for name, labels in LABELS.items()
    }
    try:
        for n in cluster.values():
            n.start(wait=False)
        yield cluster
    finally:
        for n in cluster.values():
            n.stop()


def _screenshot(page: Any, name: str) -> None:
    where = os.environ.get("DUOSYNC_CONSOLE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


def _spec(name: str, src: Endpoint, dst: Endpoint, src_db: str, dst_db: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": f"{src.flavor.value}://root@{src.host}:{src.port}",
        "target": f"{dst.flavor.value}://root@{dst.host}:{dst.port}",
        "types": ["schema", "full", "incremental"],
        "select": {"databases": [src_db]},
        "rename": {"databases": {src_db: dst_db}},
        "options": {"write_concurrency": 1, "heartbeat_seconds": 1},
    }


def _runner(node: Node, task: str) -> str | None:
    """The node that runs *task* and is assigned it (no handover under way)."""
    with node.api as api:
        status = api.get("/api/v1/cluster").json()
    runs = [n["name"] for n in status["nodes"] if task in n["tasks"]]
    assigned = status["assignments"].get(task, {}).get("node")
    return runs[0] if runs == [assigned] else None


def test_the_cluster_view_follows_a_drain(
    nodes: dict[str, Node],
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
    browser_page: Any,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    n1 = nodes["n1"]  # the console is n1's
    src_db = fresh_database(mariadb1, "src")
    dst_db = fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
            "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_50",
        ],
        database=src_db,
    )
    name = f"console-cl-{secrets.token_hex(3)}"
    for n in nodes.values():
        n.wait_answering()
    with n1.api as api:
        created = api.post("/api/v1/tasks", json=_spec(name, mariadb1, mariadb2, src_db, dst_db))
        assert created.status_code == 201, created.text
        assert api.post(f"/api/v1/tasks/{name}/start").status_code == 200
    runner = wait_for(f"{name} to run on a node", lambda: _runner(n1, name), timeout=30)
    other = next(n for n in nodes if n != runner)

    # -- the cluster view: both nodes, the leader, labels, the task where it runs ------
    page.goto(f"http://127.0.0.1:{n1.port}/console/#token={TOKEN}")
    expect(page.get_by_test_id("task-list")).to_be_visible()
    page.get_by_test_id("nav-cluster").click()
    view = page.get_by_test_id("cluster-view")
    expect(view).to_have_attribute("data-enabled", "true")
    rows = page.get_by_test_id("node-row")
    expect(rows).to_have_count(2)
    row = {n: page.locator(f'[data-testid="node-row"][data-name="{n}"]') for n in nodes}
    expect(page.locator('[data-testid="node-row"][data-leader="true"]')).to_have_count(1)
    expect(page.get_by_test_id("node-leader")).to_have_count(1)
    leader = page.locator('[data-testid="node-row"][data-leader="true"]').get_attribute("data-name")
    expect(page.get_by_test_id("cluster-leader")).to_have_text(leader or "?")
    expect(row["n1"]).to_have_attribute("data-self", "true")  # this console's node
    expect(row["n1"].get_by_test_id("node-self")).to_have_text("this node")
    expect(row["n2"].get_by_test_id("node-self")).to_have_count(0)
    for n, labels in LABELS.items():
        expect(row[n].get_by_test_id("node-label")).to_have_text(list(labels))
    running = f'[data-testid="node-task"][data-name="{name}"]'
    expect(row[runner].locator(running)).to_be_visible()
    expect(row[other].locator(running)).to_have_count(0)
    expect(page.get_by_test_id("cluster-url")).to_have_text(n1.cluster)
    _screenshot(page, "cluster-view")

    # -- the task list's node column ----------------------------------------------------
    page.get_by_test_id("nav-tasks").click()
    expect(page.get_by_test_id("task-list").locator("thead th")).to_contain_text(["Node"])
    task_row = page.locator(f'[data-testid="task-row"][data-name="{name}"]')
    expect(task_row.get_by_test_id("task-node")).to_have_text(runner)
    _screenshot(page, "cluster-list")

    # -- the task's page: its node and epoch, its placement history ----------------------
    task_row.get_by_test_id("task-link").click()
    expect(page.get_by_test_id("task-name")).to_have_text(name)
    with n1.api as api:
        epoch = api.get(f"/api/v1/tasks/{name}").json()["epoch"]
    expect(page.get_by_test_id("task-node")).to_have_text(f"{runner} \u00b7 epoch {epoch}")
    first_move = page.get_by_test_id("move-row").last  # newest first: the oldest is last
    expect(first_move).to_have_attribute("data-node", runner)
    expect(first_move.get_by_test_id("move-reason")).to_have_text("placed (stick)")
    placed = page.locator('[data-testid="history-row"][data-kind="placement"]').last
    expect(placed.get_by_test_id("history-kind")).to_have_text("placement")
    expect(placed.get_by_test_id("history-node")).to_have_text(
        f"\u2192 node {runner} \u00b7 epoch {epoch}"
    )

    # -- drain the runner from the page: the task moves to the other node ----------------
    page.get_by_test_id("nav-cluster").click()
    row[runner].get_by_test_id("node-drain").click()
    expect(row[runner]).to_have_attribute("data-draining", "true")
    expect(row[runner].get_by_test_id("node-draining")).to_be_visible()
    expect(row[other].locator(running)).to_be_visible()
    expect(row[runner].locator(running)).to_have_count(0)
    expect(row[runner].get_by_test_id("node-idle")).to_have_text("none (draining)")
    _screenshot(page, "cluster-drained")
    # it runs on over there: a row written now reaches the target
    run_sql(mariadb1, "INSERT INTO t VALUES (1000, 'after the move')", database=src_db)
    wait_for(
        "the row written after the move on the target",
        lambda: query(mariadb2, "SELECT v FROM t WHERE id = 1000", database=dst_db),
        timeout=30,
    )

    page.locator(f'{running} [data-testid="node-task-link"]').click()
    expect(page.get_by_test_id("task-node")).to_contain_text(other)
    moved = page.get_by_test_id("move-row").first
    expect(moved).to_have_attribute("data-node", other)
    expect(moved.get_by_test_id("move-reason")).to_have_text(f"node {runner} is draining (stick)")
    expect(page.get_by_test_id("move-row")).to_have_count(2)
    newest_placement = page.locator('[data-testid="history-row"][data-kind="placement"]').first
    expect(newest_placement.get_by_test_id("history-node")).to_contain_text(f"node {other}")
    _screenshot(page, "task-moved")

    # -- end the drain from the page ----------------------------------------------------
    page.get_by_test_id("nav-cluster").click()
    row[runner].get_by_test_id("node-undrain").click()
    expect(row[runner]).to_have_attribute("data-draining", "false")
    expect(row[runner].get_by_test_id("node-drain")).to_be_visible()
    with n1.api as api:
        status = api.get("/api/v1/cluster").json()
    assert not [n["name"] for n in status["nodes"] if n["draining"]], status
    assert status["drains"] == [], status


@pytest.fixture
def single_service(tmp_path: Path) -> Iterator[str]:
    """The API and console of a service that runs alone (create_app without a
    cluster), served by uvicorn on a thread; its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(tmp_path / "duosync.db", TOKEN), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for("the single service to serve", lambda: server.started, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_single_service_shows_no_cluster_view(
    single_service: str, mariadb1: Endpoint, mariadb2: Endpoint, browser_page: Any
) -> None:
    import httpx
    from playwright.sync_api import expect

    page = browser_page
    spec = _spec("alone", mariadb1, mariadb2, "shop", "shop_copy")
    created = httpx.post(
        f"{single_service}/api/v1/tasks",
        json=spec,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    page.goto(f"{single_service}/console/#token={TOKEN}")
    expect(page.locator('[data-testid="task-row"][data-name="alone"]')).to_be_visible()
    headers = page.get_by_test_id("task-list").locator("thead th")
    expect(headers).to_have_text(
        ["Name", "State", "Health", "Source \u2192 target", "Rows/s", "Lag", "Actions"]
    )
    expect(page.get_by_test_id("task-node")).to_have_count(0)
    expect(page.get_by_test_id("nav-cluster")).to_be_hidden()
    page.get_by_test_id("task-link").click()
    expect(page.get_by_test_id("task-name")).to_have_text("alone")
    expect(page.get_by_test_id("task-state")).to_have_text("not_started")
    expect(page.get_by_test_id("task-node")).to_be_hidden()
    expect(page.get_by_test_id("task-moves")).to_be_hidden()
    # the view's own address: it says the service runs alone
    page.goto(f"{single_service}/console/#/cluster")
    expect(page.get_by_test_id("cluster-disabled")).to_be_visible()
    expect(page.get_by_test_id("node-row")).to_have_count(0)
    expect(page.get_by_test_id("nav-cluster")).to_be_hidden()
    assert re.search(r"not in a cluster", page.get_by_test_id("cluster-disabled").inner_text())


# -- what a live test does not produce on demand, from canned API answers ---------------


def _canned(name: str, state: str, node: str | None, **changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": name,
        "state": state,
        "error": None,
        "kind": "one-way",
        "source": "mariadb://root@127.0.0.1:3306",
        "target": "mariadb://root@127.0.0.1:3307",
        "types": ["schema", "full", "incremental"],
        "actions": ["pause"],
        "reverse_task": None,
        "health": {"healthy": True, "retrying": False, "retries_total": 0},
        "progress": None,
        "node": node,
        "epoch": None if node is None else 7,
        "spec": {"name": name},
        "prechecks": [],
        "history": [],
    }
    return task | changes


def test_tasks_between_nodes_and_fenced_runs(browser_page: Any) -> None:
    """A task assigned to a node that is gone, one handed over (still on its old
    node, assigned to another), one waiting for a node, the drain of a node that is
    not alive, and a task's fenced and waiting events; the page is the console's
    real files, the API answers are canned (page.route)."""
    from playwright.sync_api import Route, expect

    page = browser_page
    now = time.time()
    node = {"host": "h", "pid": 1, "started_at": now - 60, "draining": False}
    status = {
        "enabled": True,
        "node": "n1",
        "cluster": "zk://zk.test:2181/duosync",
        "leader": "n2",
        "nodes": [
            node
            | {"name": "n1", "api": "http://n1", "labels": {}, "tasks": ["a"], "leader": False},
            node | {"name": "n2", "api": "http://n2", "labels": {}, "tasks": ["b"], "leader": True},
        ],
        "drains": ["n3"],
        "assignments": {
            t: {"node": n, "epoch": 7, "reason": "r", "at": now - 5}
            for t, n in (("a", "n1"), ("b", "n1"), ("c", "n3"))
        },
    }
    run = "incremental_running"

    def event(ago: float, kind: str, detail: str) -> dict[str, Any]:
        return {"at": now - ago, "kind": kind, "from": run, "to": run, "detail": detail}

    c = _canned(
        "c",
        run,
        "n3",
        history=[
            event(30, "placement", "assigned to node n3 (epoch 7): placed (stick)"),
            event(20, "fenced", "h:1:x: a newer assignment of the task holds its checkpoint"),
            event(10, "placement", "waiting for a node: no live node that is not draining"),
        ],
    )
    tasks = [_canned("a", run, "n1"), _canned("b", run, "n1"), c, _canned("d", run, None)]
    answers: dict[str, Any] = {"/api/v1/cluster": status, "/api/v1/tasks": tasks}
    answers |= {f"/api/v1/tasks/{t['name']}": t for t in tasks}
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

    def answer(route: Route) -> None:
        path = "/" + route.request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        if path.startswith("/console/"):
            file = STATIC / (path.removeprefix("/console/") or "index.html")
            route.fulfill(body=file.read_bytes(), content_type=types[file.suffix])
        else:
            route.fulfill(body=json.dumps(answers[path]), content_type="application/json")

    page.route("http://console.test/**", answer)
    page.goto("http://console.test/console/#/cluster&token=canned")
    row = {n: page.locator(f'[data-testid="node-row"][data-name="{n}"]') for n in ("n1", "n2")}
    handed = row["n2"].locator('[data-testid="node-task"][data-name="b"]')
    expect(handed.get_by_test_id("node-task-note")).to_have_text("moving to n1")
    expect(row["n1"].locator('[data-testid="node-task-starting"][data-name="b"]')).to_be_visible()
    gone = page.locator('[data-testid="moving-row"][data-name="c"]')
    expect(gone).to_contain_text("assigned to node n3 (epoch 7")
    expect(gone).to_contain_text("which is gone")
    expect(page.locator('[data-testid="waiting-row"][data-name="d"]')).to_be_visible()
    expect(page.locator('[data-testid="moving-row"]')).to_have_count(1)
    drain = page.locator('[data-testid="gone-drain"][data-name="n3"]')
    expect(drain.get_by_test_id("node-undrain")).to_be_visible()
    expect(page.get_by_test_id("cluster-leader")).to_have_text("n2")
    _screenshot(page, "canned-cluster")

    page.goto("http://console.test/console/#/tasks/c")
    kinds = page.get_by_test_id("history-row")
    expect(kinds).to_have_count(3)
    assert [r.get_attribute("data-kind") for r in kinds.all()] == [
        "placement",
        "fenced",
        "placement",
    ]
    expect(page.get_by_test_id("history-kind")).to_have_text(["placement", "fenced", "placement"])
    expect(page.get_by_test_id("history-node")).to_have_text(
        ["no node", "\u2192 node n3 \u00b7 epoch 7"]
    )
    moves = page.get_by_test_id("move-row")
    expect(moves).to_have_count(2)  # placements only
    expect(moves.get_by_test_id("move-node")).to_have_text(["waiting", "n3"])
    expect(moves.first.get_by_test_id("move-reason")).to_have_text(
        "no live node that is not draining"
    )
    page.goto("http://console.test/console/#/tasks/d")
    expect(page.get_by_test_id("task-node")).to_have_text("none yet: waiting for a node")
    expect(page.get_by_test_id("no-moves")).to_be_visible()
