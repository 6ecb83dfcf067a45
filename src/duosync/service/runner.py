"""Running one task: its pre-checks, then its phases, under a lease in the store.

A ``TaskRun`` runs the task the store says is active (prechecking or a phase): the
service functions (``service.tasks``) only move states; whoever runs the task
(``duosync migrate`` in the foreground, or ``duosync serve``'s runner threads)
does it here, so both behave the same.

Ownership: the run holds a lease on the task in the store, renewed every
``RENEW`` seconds. A second process cannot run the task meanwhile; a task whose
runner died (kill -9: the lease expires, or at once when its pid on this host is
gone) is taken over and resumed where its checkpoints say. The renewing thread
also reads requests other processes leave in the store (``pause``) and stops the
run at its next checkpoint.

How a run ends: paused on request (state ``paused``), failed on an error (state
``failed`` with the message), completed when a task without incremental sync
copied everything, or left as it is when the process shuts down (the next
``duosync serve`` resumes it).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from duosync.errors import ConfigError, DuosyncError
from duosync.service.live import Live
from duosync.service.migration import MigrationReport, run_phases
from duosync.service.prechecks import CheckResult, Status
from duosync.service.states import ACTIVE, State
from duosync.service.store import MetadataStore, TaskRecord
from duosync.service.twoway import forward_of, run_reverse
from duosync.spec import MigrationType, TaskSpec

log = logging.getLogger(__name__)
Say = Callable[[str], None]

#: seconds a lease lasts, and between renewals
LEASE = 15.0
RENEW = 1.0

PAUSE = "pause"


def new_owner() -> str:
    """host:pid:random, unique per run, so a restarted process never mistakes a
    lease of its predecessor for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_dead(owner: str | None) -> bool:
    """Whether *owner* was a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: only its lease expiry tells
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, another user's
    return False


def runnable(record: TaskRecord) -> bool:
    """An active task nobody runs (never picked up, or its runner died)."""
    if record.state not in ACTIVE:
        return False
    return (
        record.owner is None
        or owner_dead(record.owner)
        or (record.lease_until is not None and record.lease_until < time.time())
    )


PrecheckFn = Callable[[TaskSpec], list[CheckResult]]


@dataclass
class TaskRun:
    """One run of the stored task *name*; ``run`` blocks until it ends."""

    #: the metadata store's file (each thread opens its own connection)
    db: Path
    name: str
    say: Say
    prechecks: PrecheckFn
    owner: str = field(default_factory=new_owner)
    stop: threading.Event = field(default_factory=threading.Event)
    live: Live = field(default_factory=Live)
    paused: bool = False
    #: set when the process shuts down: leave the state, the next service resumes
    shutdown: bool = False
    #: a foreground run (duosync migrate): *stop* is the user's Ctrl-C, a pause
    pause_on_stop: bool = False
    report: MigrationReport = field(default_factory=MigrationReport)

    def run(self) -> State:
        """Run the task from its current state; the state it ends in. A
        ``DuosyncError`` is recorded (failed) and raised again."""
        with MetadataStore(self.db) as store:
            record = store.get_task(self.name)
            if record.state not in ACTIVE:
                raise ConfigError(
                    f"task is {record.state.value}: start or resume it first", task=self.name
                )
            stale = record.owner if owner_dead(record.owner) else None
            if not store.claim(self.name, self.owner, LEASE, stale):
                raise ConfigError(
                    f"task is being run by {record.owner}",
                    task=self.name,
                    hint="pause it there first, or wait for that process to end",
                )
            keeper = threading.Thread(
                target=self._keep_lease, name=f"lease {self.name}", daemon=True
            )
            done = threading.Event()
            self._done = done
            keeper.start()
            try:
                return self._run(store)
            finally:
                done.set()
                keeper.join()
                store.unclaim(self.name, self.owner)

    def _run(self, store: MetadataStore) -> State:
        try:
            record = store.get_task(self.name)
            if record.state is State.PRECHECKING and not self._precheck(store, record):
                return State.FAILED
            if not self.stop.is_set():  # a pause asked during the pre-checks: no phase
                self._phases(store, store.get_task(self.name))
        except DuosyncError as exc:
            if not self.shutdown:
                store.enter_state(self.name, State.FAILED, str(exc))
            raise
        except KeyboardInterrupt:
            raise  # an abort: left as it is, resumed from checkpoints
        except Exception as exc:  # a bug: the task must not look alive
            store.enter_state(self.name, State.FAILED, f"internal error: {exc!r}")
            raise
        state = store.get_task(self.name).state
        if self.paused or (self.pause_on_stop and self.stop.is_set() and not self.shutdown):
            store.set_request(self.name, None)
            why = "paused on request" if self.paused else "stopped by the user (Ctrl-C)"
            store.enter_state(self.name, State.PAUSED, why, "pause")
        elif not self.stop.is_set() and state in (State.SCHEMA_MIGRATION, State.FULL_MIGRATION):
            store.enter_state(self.name, State.COMPLETED)
        return store.get_task(self.name).state

    def _precheck(self, store: MetadataStore, record: TaskRecord) -> bool:
        self.live.phase = State.PRECHECKING.value
        spec = TaskSpec.model_validate(record.spec)
        results = self.prechecks(spec)
        store.save_prechecks(self.name, [(r.name, r.status.value, r.detail) for r in results])
        skips = store.precheck_skips(self.name)
        failed = []
        for r in results:
            skipped = r.status is Status.FAIL and r.name in skips
            self.say(f"{r}{' (skipped)' if skipped else ''}")
            if r.status is Status.FAIL and not skipped:
                failed.append(r)
        if failed:
            # every failed item by name, and the first one's explanation (the
            # pre-check results hold all of them)
            detail = (
                f"pre-checks failed: {', '.join(r.name for r in failed)}."
                f" {failed[0].name}: {failed[0].detail}"
            )
            store.enter_state(self.name, State.FAILED, detail)
            raise ConfigError(
                detail,
                task=self.name,
                hint="fix them and start again, or skip an item: duosync task skip-check"
                f" {self.name} ITEM",
            )
        return True

    def _phases(self, store: MetadataStore, record: TaskRecord) -> None:
        spec = TaskSpec.model_validate(record.spec)
        forward = forward_of(store, self.name)
        if forward is not None:
            if record.state is State.PRECHECKING:
                store.enter_state(self.name, State.INCREMENTAL_RUNNING)
            stats = run_reverse(forward, store, self.say, self.stop, live=self.live)
            self.report.synced_rows = stats.rows
            self.report.sync_conflicts = stats.conflicts
            return
        first = (
            State.SCHEMA_MIGRATION
            if MigrationType.SCHEMA in spec.types
            else State.FULL_MIGRATION
            if MigrationType.FULL in spec.types
            else State.INCREMENTAL_RUNNING
        )
        if record.state is State.PRECHECKING:
            store.enter_state(self.name, first)
        self.report = run_phases(spec, store, self.say, self.stop, live=self.live)

    def _keep_lease(self) -> None:
        """Renew the lease and watch for requests, until the run ends."""
        with MetadataStore(self.db) as store:
            while not self._done.wait(RENEW):
                try:
                    if not store.claim(self.name, self.owner, LEASE):
                        log.error("task %s: lost its lease; stopping", self.name)
                        self.stop.set()
                        continue
                    self.live.sample()
                    if store.get_task(self.name).request == PAUSE and not self.paused:
                        self.say(f"task {self.name}: pausing at the next checkpoint")
                        self.paused = True
                        self.stop.set()
                except (DuosyncError, sqlite3.Error) as exc:  # busy store: try again
                    log.warning("task %s: lease renewal failed: %s", self.name, exc)
