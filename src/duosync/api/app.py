"""The REST API and the web console of ``duosync serve`` (FastAPI).

Every route under ``/api/v1`` and ``/metrics`` needs ``Authorization: Bearer
TOKEN``; the console's static files do not (they hold no data, and the page asks
for the token). The routes are thin: each calls one function of
``service.runtime.tasks`` (the same the CLI calls) and shows the result through
``service.views``. Errors are JSON ``{"error", "task", "hint"}``: 404 for an
unknown task, 409 for an action the task's state does not allow, 422 for invalid
input, 502 when a database the action needs cannot be reached.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, ValidationError

from duosync import __version__
from duosync.api.cluster_routes import add_cluster_routes
from duosync.api.metrics import metrics_text
from duosync.cluster.runs import ClusterRuns
from duosync.errors import ConfigError, DuosyncError
from duosync.service import views
from duosync.service.conflicts import task_conflicts
from duosync.service.runtime import tasks
from duosync.service.runtime.states import IllegalTransition
from duosync.service.runtime.supervisor import Supervisor
from duosync.service.store.metadata import (
    MetadataStore,
    StoreLocation,
    StoreUnavailable,
    TaskExists,
    TaskNotFound,
)
from duosync.spec import ReverseOptions, TaskSpec
from duosync.specfile import parse_spec
from duosync.verify import verify_task

API = "/api/v1"


async def _store(request: Request) -> MetadataStore:
    # One store for the app: it gives every request thread a connection of its own.
    # async: a plain lookup, so it runs on the event loop, not in a worker thread
    # (each hop to the thread pool costs more than the lookup).
    store: MetadataStore = request.app.state.store
    return store


Store = Annotated[MetadataStore, Depends(_store)]


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: failed pre-check items to skip (recorded with the task)
    skip: list[str] = []


def create_app(
    db: StoreLocation,
    token: str,
    *,
    supervisor: Supervisor | None = None,
    cluster: ClusterRuns | None = None,
) -> FastAPI:
    """The app over the metadata store *db*. With *supervisor* None, one is made
    (a node of *cluster* if given) and started with the app (and stopped with it):
    tasks started here run here, or on the node the cluster assigns them to."""
    own = supervisor is None
    sup = supervisor if supervisor is not None else Supervisor(db, cluster=cluster)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if own:
            sup.start()
        try:
            yield
        finally:
            if own:
                sup.shutdown()
            store.close()

    app = FastAPI(
        title="duosync",
        version=__version__,
        description="Data migration and two-way synchronization tasks: create, start,"
        " pause, resume, release, pre-checks, progress and conflicts.",
        lifespan=lifespan,
    )
    store = MetadataStore(db)
    app.state.supervisor = sup
    app.state.db = db
    app.state.store = store

    async def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise _UnauthorizedError

    auth = [Depends(authorized)]

    @app.exception_handler(_UnauthorizedError)
    async def _unauthorized(_r: Request, _e: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": "missing or wrong API token", "hint": "send Authorization: Bearer TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(DuosyncError)
    async def _duosync_error(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DuosyncError)
        status = (
            404
            if isinstance(exc, TaskNotFound)
            else 409
            if isinstance(exc, IllegalTransition | TaskExists)
            else 422
            if isinstance(exc, ConfigError)
            else 502
        )
        body = {"error": str(exc), "message": exc.message, "task": exc.task, "hint": exc.hint}
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StoreUnavailable)
    async def _store_error(_r: Request, exc: Exception) -> JSONResponse:
        # The store waits for its locks (busy timeout) before this happens, or its
        # server is unreachable: a passing condition, which the client may retry.
        logging.getLogger(__name__).warning("metadata store: %s", exc)
        return JSONResponse(
            {
                "error": f"the metadata store is busy or unreachable: {exc}",
                "hint": "retry the request",
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    def shown(st: MetadataStore, name: str, detail: bool = True) -> dict[str, Any]:
        record = st.get_task(name)
        fn = views.task_detail if detail else views.task_summary
        return fn(st, record, sup.live(name)) | placed(name)

    def placed(name: str, assigned: dict[str, Any] | None = None) -> dict[str, Any]:
        """In a cluster: the node the task is assigned to, and the epoch."""
        if sup.cluster is None:
            return {}
        if assigned is None:
            a = sup.cluster.coord.assignment(name)
            assigned = {} if a is None else {name: {"node": a.node, "epoch": a.epoch}}
        got = assigned.get(name) or {}
        return {"node": got.get("node"), "epoch": got.get("epoch")}

    @app.get(f"{API}/tasks", dependencies=auth, tags=["tasks"])
    def list_tasks(st: Store) -> list[dict[str, Any]]:
        """Every task, with its state, allowed actions and live progress (and in a
        cluster the node it is assigned to)."""
        assigned = (
            {
                t: {"node": a.node, "epoch": a.epoch}
                for t, a in sup.cluster.coord.assignments().items()
            }
            if sup.cluster is not None
            else {}
        )
        return [
            views.task_summary(st, r, sup.live(r.name)) | placed(r.name, assigned)
            for r in st.list_tasks()
        ]

    @app.post(f"{API}/tasks", dependencies=auth, status_code=201, tags=["tasks"])
    def create_task(st: Store, body: dict[str, Any]) -> dict[str, Any]:
        """Create a task from a spec: the fields of a YAML task spec, as JSON. It is
        not started: POST .../start runs its pre-checks, then its phases.

        Next to the spec's fields, ``objects_text`` (a string) may list objects to
        select, in the format of a ``select.import`` file (one ``db.table
        [target_db.target_table]`` per line); ``select.import`` itself is refused,
        as it would read a file on the server."""
        fields = dict(body)
        text = fields.pop("objects_text", None)
        if text is not None and not isinstance(text, str):
            raise ConfigError(
                "request body: objects_text: give the lines as one string",
                hint="one db.table [target_db.target_table] per line",
            )
        spec = parse_spec(fields, "request body", base_dir=None, objects_text=text)
        tasks.create_task(st, spec)
        return shown(st, spec.name)

    @app.get(f"{API}/tasks/{{name}}", dependencies=auth, tags=["tasks"])
    def get_task(st: Store, name: str) -> dict[str, Any]:
        """A task: state, spec (no passwords), pre-checks, history, progress."""
        return shown(st, name)

    @app.post(f"{API}/tasks/{{name}}/start", dependencies=auth, tags=["actions"])
    def start(st: Store, name: str, body: StartRequest | None = None) -> dict[str, Any]:
        tasks.start(st, name, (body or StartRequest()).skip)
        return shown(st, name)

    @app.post(f"{API}/tasks/{{name}}/pause", dependencies=auth, tags=["actions"])
    def pause(st: Store, name: str) -> dict[str, Any]:
        """Pause at the next checkpoint (waits up to 30 s for the runner to stop)."""
        tasks.pause(st, name, wait=30.0)
        return shown(st, name)

    @app.post(f"{API}/tasks/{{name}}/resume", dependencies=auth, tags=["actions"])
    def resume(st: Store, name: str) -> dict[str, Any]:
        tasks.resume(st, name)
        return shown(st, name)

    @app.post(f"{API}/tasks/{{name}}/release", dependencies=auth, tags=["actions"])
    def release(st: Store, name: str) -> dict[str, Any]:
        tasks.release(st, name)
        return shown(st, name)

    @app.post(f"{API}/tasks/{{name}}/reverse", dependencies=auth, status_code=201, tags=["actions"])
    def configure_reverse(
        st: Store, name: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Configure the reverse task of a two-way sync (options only: its objects
        come from the forward task); allowed while the forward task is in
        incremental sync and monitoring. Start it with POST .../NAME.reverse/start."""
        options = None
        if body:
            try:
                options = ReverseOptions.model_validate(body)
            except ValidationError as exc:
                raise ConfigError(
                    "reverse options: "
                    + "; ".join(
                        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                    ),
                    task=name,
                ) from None
        record = tasks.configure_reverse(st, name, options)
        return shown(st, record.name)

    @app.get(f"{API}/tasks/{{name}}/prechecks", dependencies=auth, tags=["tasks"])
    def prechecks(st: Store, name: str) -> list[dict[str, Any]]:
        st.get_task(name)
        return views.prechecks(st, name)

    @app.post(f"{API}/tasks/{{name}}/prechecks/{{item}}/skip", dependencies=auth, tags=["actions"])
    def skip_check(st: Store, name: str, item: str) -> dict[str, Any]:
        """Skip a failed pre-check item; recorded with the task. Start it again after."""
        tasks.skip_check(st, name, item)
        return shown(st, name)

    @app.get(f"{API}/tasks/{{name}}/progress", dependencies=auth, tags=["tasks"])
    def progress(st: Store, name: str) -> dict[str, Any]:
        """Phase and live figures (rows/s, bytes/s, lag, conflicts) of a task this
        service runs; only the state for one run elsewhere."""
        record = st.get_task(name)
        live = sup.live(name)
        return {"name": name, "state": record.state.value, "health": views.health(record)} | (
            live.snapshot(chart=True) if live is not None else {"phase": record.state.value}
        )

    @app.get(f"{API}/tasks/{{name}}/conflicts", dependencies=auth, tags=["tasks"])
    def conflicts(
        st: Store, name: str, limit: Annotated[int, Query(ge=1, le=10000)] = 100
    ) -> dict[str, Any]:
        """The task's conflict log (with before, after and target images)."""
        st.get_task(name)
        return task_conflicts(st, name, None, limit=limit).as_json()

    @app.post(f"{API}/tasks/{{name}}/verify", dependencies=auth, tags=["actions"])
    def verify(st: Store, name: str) -> dict[str, Any]:
        """Compare the task's source and target now (chunk checksums, then the rows
        of differing chunks; rows in flight rechecked after the sync's lag). The
        same as ``duosync verify -f SPEC``, answered when done."""
        spec = TaskSpec.model_validate(st.get_task(name).spec)
        report = verify_task(spec, say=logging.getLogger(f"duosync.task.{name}").info)
        return {
            "task": report.task,
            "differs": report.differs,
            "rows": report.rows,
            "seconds": round(report.seconds, 3),
            "tables": [asdict(t) for t in report.tables],
            "recheck": None if report.recheck is None else asdict(report.recheck),
        }

    @app.get("/metrics", dependencies=auth, tags=["metrics"])
    def metrics(st: Store) -> Response:
        """Prometheus metrics per task: rows/s, bytes/s, lag, conflicts, phase."""
        body, content_type = metrics_text(st, sup)
        return Response(body, media_type=content_type)

    add_cluster_routes(app, API, auth, sup.cluster)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/console/")

    static = resources.files("duosync.web") / "static"
    app.mount("/console", StaticFiles(directory=str(static), html=True), name="console")
    return app


class _UnauthorizedError(Exception):
    pass
