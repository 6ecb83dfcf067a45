"""The runners of ``duosync serve``: one thread per running task.

Alone (no cluster), every ``POLL`` seconds the supervisor looks in the store for
active tasks nobody runs (just started or resumed through the API or CLI, or cut
off by a crash or a service restart: their runner's lease expired or its process
is gone) and runs each in a thread of its own (``runner.TaskRun``).

In a cluster (``duosync.cluster``), it runs exactly the tasks ZooKeeper assigns to
this node, each under its assignment's epoch, and gives up (at the next
checkpoint) any task assigned elsewhere since; see ``cluster.runs``.

Shutting down stops every run at its next checkpoint and leaves its state as it
is, so the next ``serve`` (or another node) resumes it: that is how tasks survive
a service restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from duosync.errors import DuosyncError
from duosync.service.runtime.live import Figures
from duosync.service.runtime.runner import TaskRun, runnable
from duosync.service.runtime.tasks import Prechecks, default_prechecks
from duosync.service.store.metadata import MetadataStore, StoreLocation

if TYPE_CHECKING:
    from duosync.cluster.runs import ClusterRuns

log = logging.getLogger(__name__)

#: seconds between looks for tasks to run
POLL = 1.0


@dataclass
class Running:
    run: TaskRun
    thread: threading.Thread

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


class Supervisor:
    def __init__(
        self,
        db: StoreLocation,
        prechecks: Prechecks = default_prechecks,
        cluster: ClusterRuns | None = None,
    ) -> None:
        self.db = db
        self.prechecks = prechecks
        self.cluster = cluster
        self._runs: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def live(self, name: str) -> Figures | None:
        """The live figures of a task this service runs (or ran since it started),
        or in a cluster those its node publishes."""
        with self._lock:
            got = self._runs.get(name)
        if got is not None and (got.alive or self.cluster is None):
            return got.run.live
        if self.cluster is not None:
            return self.cluster.remote_live(name)
        return None

    def running(self) -> dict[str, Figures]:
        with self._lock:
            here: dict[str, Figures] = {n: r.run.live for n, r in self._runs.items()}
        if self.cluster is not None:
            for name, figures in self.cluster.remote_lives().items():
                if name not in here or not self._runs[name].alive:
                    here[name] = figures
        return here

    def runs(self) -> dict[str, Running]:
        """This process's runs (alive or ended), by task."""
        with self._lock:
            return dict(self._runs)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every run at its next checkpoint, leaving its state for the next
        service to resume."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            runs = list(self._runs.values())
        for r in runs:
            r.run.give_up()
        for r in runs:
            r.thread.join(timeout)
        if self.cluster is not None:
            self.cluster.close()

    def _loop(self) -> None:
        with MetadataStore(self.db) as store:
            while not self._stop.is_set():
                try:
                    if self.cluster is not None:
                        self.cluster.tick(self, store)
                    else:
                        self._pick_up(store)
                except DuosyncError as exc:
                    log.warning("supervisor: cannot read the task list: %s", exc)
                self._stop.wait(POLL if self.cluster is None else self.cluster.poll)

    def _pick_up(self, store: MetadataStore) -> None:
        for record in store.list_tasks():
            with self._lock:
                mine = self._runs.get(record.name)
                if mine is not None and mine.alive:
                    continue
            if not runnable(record):
                continue
            self.start_run(record.name, record.state.value)

    def start_run(
        self,
        name: str,
        state: str,
        epoch: int | None = None,
        confirmed: Callable[[], bool] | None = None,
    ) -> TaskRun:
        """Run task *name* in a thread of its own (in a cluster, under *epoch*
        while *confirmed*, see ``runner.TaskRun``)."""
        run = TaskRun(
            self.db, name, _logger(name), self.prechecks, epoch=epoch, confirmed=confirmed
        )
        thread = threading.Thread(target=_run, args=(run,), name=f"task {name}", daemon=True)
        with self._lock:
            self._runs[name] = Running(run, thread)
        log.info(
            "task %s: running it (state %s%s)",
            name,
            state,
            "" if epoch is None else f", epoch {epoch}",
        )
        thread.start()
        return run


def _logger(name: str) -> Callable[[str], None]:
    task_log = logging.getLogger(f"duosync.task.{name}")
    return task_log.info


def _run(run: TaskRun) -> None:
    try:
        state = run.run()
        log.info("task %s: run ended, %s", run.name, state.value)
    except DuosyncError as exc:
        log.error("task %s: %s", run.name, exc)  # recorded as failed with the message
    except Exception:
        log.exception("task %s: internal error", run.name)
