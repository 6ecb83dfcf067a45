"""Running one task: its pre-checks, then its phases, under a lease in the store.

A ``TaskRun`` runs the task the store says is active (prechecking or a phase): the
service functions (``service.runtime.tasks``) only move states; whoever runs the task
(``duosync migrate`` in the foreground, or ``duosync serve``'s runner threads)
does it here, so both behave the same.

Ownership: the run holds a lease on the task in the store, renewed every
``RENEW`` seconds. A second process cannot run the task meanwhile; a task whose
runner died (kill -9: the lease expires, or at once when its pid on this host is
gone) is taken over and resumed where its checkpoints say. The renewing thread
also reads requests other processes leave in the store (``pause``) and stops the
run at its next checkpoint.

Healing (``service.runtime.healing``): a phase that fails with a ``RetriableError`` is
run again after a back-off, resuming from its checkpoints, for as long as the
task's ``options.retry_for`` allows; the streak (attempts, last error, next
attempt) is kept on the task in the store and each retry and recovery is a task
event. Each attempt gets a stop event of its own (the phases set theirs when they
end, to stop their reader threads); the run's ``stop`` is passed on to it.

In a cluster (``duosync.cluster``) a run holds an *epoch*, the assignment that
sent the task to this node: it takes the store's lease over from whoever held it
(ZooKeeper, not the lease, says who runs the task there), and its commits on the
target are fenced by the epoch. A run whose commit is fenced (a newer assignment
runs elsewhere) ends at once and leaves the task's state to the new owner.

How a run ends: paused on request (state ``paused``), failed on an error that no
retry fixes or after retrying for longer than ``retry_for`` (state ``failed``
with the message), completed when a task without incremental sync copied
everything, or left as it is when the process shuts down (the next ``duosync
serve`` resumes it).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from duosync.config import Endpoint
from duosync.endpoints import escaped_driver_error
from duosync.errors import ConfigError, DuosyncError, FatalError, Fenced, RetriableError
from duosync.service.phases.migration import MigrationReport, run_phases
from duosync.service.phases.twoway import forward_of, run_reverse
from duosync.service.prechecks.checks import CheckResult, Status
from duosync.service.runtime import healing
from duosync.service.runtime.live import Live
from duosync.service.runtime.states import ACTIVE, INCREMENTAL, State
from duosync.service.store.metadata import MetadataStore, StoreLocation, TaskRecord
from duosync.spec import MigrationType, TaskSpec
from duosync.sync.checkpoint import Tenure

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


#: see ``service.runtime.tasks.Prechecks``
PrecheckFn = Callable[[TaskSpec, frozenset[str]], list[CheckResult]]


@dataclass
class TaskRun:
    """One run of the stored task *name*; ``run`` blocks until it ends."""

    #: the metadata store (each thread opens its own connection)
    db: StoreLocation
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
    #: the current streak of retried failures
    streak: healing.Streak = field(default_factory=healing.Streak)
    #: the stop event of the attempt under way (see the module docstring)
    _attempt: threading.Event = field(default_factory=threading.Event)
    #: Live.progress() when the last retry began: more means recovered
    _retry_mark: int = 0
    #: the streak is written by the run's thread and ended by the lease thread
    _heal_lock: threading.Lock = field(default_factory=threading.Lock)
    #: a cluster run: the epoch of its assignment (None: no cluster), and whether
    #: the node's membership is confirmed right now (``sync.checkpoint.Tenure``)
    epoch: int | None = None
    confirmed: Callable[[], bool] | None = None
    #: set when the run ended because a newer assignment fenced its commit
    fenced: bool = False

    def give_up(self) -> None:
        """Stop at the next checkpoint and leave the task's state as it is (for
        the next service, or another cluster node, to resume)."""
        self.shutdown = True
        self.stop.set()
        self._attempt.set()

    def run(self) -> State:
        """Run the task from its current state; the state it ends in. A
        ``DuosyncError`` is recorded (failed) and raised again."""
        with MetadataStore(self.db) as store:
            record = store.get_task(self.name)
            if record.state not in ACTIVE:
                raise ConfigError(
                    f"task is {record.state.value}: start or resume it first", task=self.name
                )
            # a cluster run takes the task over: its assignment is the authority
            stale = record.owner if owner_dead(record.owner) or self.epoch is not None else None
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
                self._healing_phases(store)
        except Fenced as exc:
            self.fenced = True
            self.say(f"task {self.name}: {exc.describe(task=False)}; giving the task up")
            self._note_fenced(store, exc)
            return store.get_task(self.name).state
        except DuosyncError as exc:
            if not self.shutdown:
                store.enter_state(self.name, State.FAILED, str(exc))
            raise
        except KeyboardInterrupt:
            raise  # an abort: left as it is, resumed from checkpoints
        except Exception as exc:  # a bug: the task must not look alive
            store.enter_state(self.name, State.FAILED, f"internal error: {exc!r}")
            raise
        finally:
            self.live.ended = True
            self.live.retrying = False
            if self.streak.attempts:
                store.clear_retry(self.name)
        state = store.get_task(self.name).state
        if self.paused or (self.pause_on_stop and self.stop.is_set() and not self.shutdown):
            store.set_request(self.name, None)
            why = "paused on request" if self.paused else "stopped by the user (Ctrl-C)"
            store.enter_state(self.name, State.PAUSED, why, "pause")
        elif not self.stop.is_set() and state in (State.SCHEMA_MIGRATION, State.FULL_MIGRATION):
            store.enter_state(self.name, State.COMPLETED)
        return store.get_task(self.name).state

    def _note_fenced(self, store: MetadataStore, exc: Fenced) -> None:
        try:
            store.note(self.name, f"{self.owner}: {exc.describe(task=False)}", "fenced")
        except DuosyncError as error:  # the store may be what cut this node off
            log.warning("task %s: cannot record the fence: %s", self.name, error)

    def _precheck(self, store: MetadataStore, record: TaskRecord) -> bool:
        self.live.phase = State.PRECHECKING.value
        spec = TaskSpec.model_validate(record.spec)
        results = self.prechecks(spec, store.copied_tables(self.name))
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

    def _healing_phases(self, store: MetadataStore) -> None:
        """Run the phases; retry them after a back-off while they fail with a
        transient fault (see the module docstring)."""
        spec = TaskSpec.model_validate(store.get_task(self.name).spec)
        waiter = healing.Waiter(self.stop)
        while not self.stop.is_set():
            self._attempt = threading.Event()
            try:
                self._attempt_phases(store, spec)
                return
            except RetriableError as exc:
                if exc.task is None:
                    exc.task = self.name
                if self.stop.is_set():
                    return  # paused or shut down while failing: resumed from checkpoints
                if self.confirmed is not None and not self.confirmed():
                    # a cluster node unsure it still holds the task records nothing
                    # on it (another node may run it now); its supervisor runs it
                    # again if ZooKeeper says it is still ours
                    self.give_up()
                    return
                now = time.time()
                with self._heal_lock:
                    self.streak.fail(exc.describe(task=False), now)
                    if healing.give_up(self.streak, exc, spec.options.retry_for, now):
                        raise self._gave_up(exc, now) from None
                    # the last attempt falls at the limit, not a whole back-off past it
                    delay = min(
                        healing.backoff(self.streak.attempts),
                        healing.time_left(self.streak, exc, spec.options.retry_for, now),
                    )
                    self.streak.next_at = now + delay
                    self.live.retrying = True
                    self._retry_mark = self.live.progress()
                    assert self.streak.since is not None
                    store.record_retry(
                        self.name,
                        self.streak.attempts,
                        self.streak.since,
                        self.streak.next_at,
                        exc.describe(task=False),
                    )
                self.say(
                    f"task {self.name}: {exc.describe(task=False)}; retrying in"
                    f" {delay:.1f}s (attempt {self.streak.attempts}, failing for"
                    f" {now - self.streak.since:.0f}s)"
                )
                waiter.wait(delay, _address(exc, spec))

    def _attempt_phases(self, store: MetadataStore, spec: TaskSpec) -> None:
        try:
            self._phases(store, store.get_task(self.name))
        except DuosyncError:
            raise
        except Exception as exc:
            # A driver exception that escaped translation is a bug to fix, but a
            # server going away must still heal the task, not kill it.
            error = escaped_driver_error(exc, (spec.source, spec.target))
            if error is None:
                raise
            log.exception("task %s: untranslated driver error (a bug)", self.name)
            error.task = self.name
            raise error from None

    def _gave_up(self, exc: RetriableError, now: float) -> FatalError:
        since = self.streak.since if self.streak.since is not None else now
        return FatalError(
            f"gave up after retrying for {_duration(now - since)} ({self.streak.attempts}"
            f" attempts): {exc.message}",
            task=exc.task,
            endpoint=exc.endpoint,
            table=exc.table,
            position=exc.position,
            hint="fix the cause and start the task again: it resumes where it stopped"
            " (options.retry_for sets how long transient faults are retried)",
        )

    def _check_recovered(self, store: MetadataStore) -> None:
        """Called every second: a streak ends when the phase shows progress."""
        with self._heal_lock:
            if not self.streak.attempts or self.live.progress() <= self._retry_mark:
                return
            since = self.streak.since or time.time()
            detail = (
                f"recovered after {self.streak.attempts} failed attempt"
                f"{'s' if self.streak.attempts > 1 else ''} over"
                f" {_duration(time.time() - since)} (last: {self.streak.last_error})"
            )
            self.streak.clear()
            self.live.retrying = False
            store.record_recovered(self.name, detail)
        self.say(f"task {self.name}: {detail}")

    def _phases(self, store: MetadataStore, record: TaskRecord) -> None:
        spec = TaskSpec.model_validate(record.spec)
        forward = forward_of(store, self.name)
        if forward is not None:
            if record.state is State.PRECHECKING:
                store.enter_state(self.name, State.INCREMENTAL_RUNNING)
            stats = run_reverse(
                forward, store, self.say, self._attempt, live=self.live, tenure=self._tenure()
            )
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
            # a failed task started again resumes in the phase it had reached
            reached = reached_phase(store, self.name)
            store.enter_state(self.name, reached or first, "resumed in place" if reached else "")
        self.report = run_phases(
            spec, store, self.say, self._attempt, live=self.live, tenure=self._tenure()
        )

    def _tenure(self) -> Tenure | None:
        if self.epoch is None:
            return None
        if self.confirmed is None:
            return Tenure(self.epoch)
        return Tenure(self.epoch, self.confirmed)

    def _keep_lease(self) -> None:
        """Renew the lease and watch for requests, until the run ends."""
        with MetadataStore(self.db) as store:
            while not self._done.wait(RENEW):
                try:
                    if not store.claim(self.name, self.owner, LEASE):
                        if not self.shutdown:
                            log.error("task %s: lost its lease; stopping", self.name)
                        # another runner has the task: nothing here may write its state
                        self.shutdown = True
                        self.stop.set()
                        continue
                    self.live.sample()
                    if store.get_task(self.name).request == PAUSE and not self.paused:
                        self.say(f"task {self.name}: pausing at the next checkpoint")
                        self.paused = True
                        self.stop.set()
                    if self.stop.is_set():
                        self._attempt.set()
                    self._check_recovered(store)
                except DuosyncError as exc:  # a busy or unreachable store: try again
                    log.warning("task %s: lease renewal failed: %s", self.name, exc)


def _address(exc: DuosyncError, spec: TaskSpec) -> healing.Address | None:
    """Where the endpoint the error names listens (for the wait's probe)."""
    for endpoint in (spec.source, spec.target):
        if isinstance(endpoint, Endpoint) and exc.endpoint == endpoint.display:
            return healing.Address(endpoint.host, endpoint.port)
    return None


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def reached_phase(store: MetadataStore, name: str) -> State | None:
    """The phase a failed task had reached when it last failed in one (since it
    was first started): where starting it again resumes. None: it never failed
    in a phase."""
    for event in reversed(store.history(name)):
        if event.kind != "state" or event.from_state is None:
            continue
        if event.from_state == State.NOT_STARTED.value:
            break
        if event.to_state != State.FAILED.value:
            continue
        was = State(event.from_state)
        if was in INCREMENTAL:
            return State.INCREMENTAL_RUNNING
        if was in (State.SCHEMA_MIGRATION, State.FULL_MIGRATION):
            return was
    return None
