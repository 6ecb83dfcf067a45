"""The runners of ``duosync serve``: one thread per running task.

Every ``POLL`` seconds the supervisor looks in the store for active tasks nobody
runs (just started or resumed through the API or CLI, or cut off by a crash or a
service restart: their runner's lease expired or its process is gone) and runs
each in a thread of its own (``runner.TaskRun``). Shutting down stops every run at
its next checkpoint and leaves its state as it is, so the next ``serve`` resumes
it: that is how tasks survive a service restart.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from duosync.errors import DuosyncError
from duosync.service.live import Live
from duosync.service.runner import TaskRun, runnable
from duosync.service.store import MetadataStore
from duosync.service.tasks import Prechecks, default_prechecks

log = logging.getLogger(__name__)

#: seconds between looks for tasks to run
POLL = 1.0


@dataclass
class _Running:
    run: TaskRun
    thread: threading.Thread


class Supervisor:
    def __init__(self, db: Path, prechecks: Prechecks = default_prechecks) -> None:
        self.db = db
        self.prechecks = prechecks
        self._runs: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def live(self, name: str) -> Live | None:
        """The live figures of a task this service runs (or ran since it started)."""
        with self._lock:
            got = self._runs.get(name)
        return got.run.live if got is not None else None

    def running(self) -> dict[str, Live]:
        with self._lock:
            return {n: r.run.live for n, r in self._runs.items()}

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every run at its next checkpoint, leaving its state for the next
        service to resume."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            runs = list(self._runs.values())
        for r in runs:
            r.run.shutdown = True
            r.run.stop.set()
        for r in runs:
            r.thread.join(timeout)

    def _loop(self) -> None:
        with MetadataStore(self.db) as store:
            while not self._stop.is_set():
                try:
                    self._pick_up(store)
                except (DuosyncError, sqlite3.Error) as exc:
                    log.warning("supervisor: cannot read the task list: %s", exc)
                self._stop.wait(POLL)

    def _pick_up(self, store: MetadataStore) -> None:
        for record in store.list_tasks():
            with self._lock:
                mine = self._runs.get(record.name)
                if mine is not None and mine.thread.is_alive():
                    continue
            if not runnable(record):
                continue
            run = TaskRun(self.db, record.name, _logger(record.name), self.prechecks)
            thread = threading.Thread(
                target=_run, args=(run,), name=f"task {record.name}", daemon=True
            )
            with self._lock:
                self._runs[record.name] = _Running(run, thread)
            log.info("task %s: running it (state %s)", record.name, record.state.value)
            thread.start()


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
