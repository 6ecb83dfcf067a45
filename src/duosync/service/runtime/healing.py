"""Self-healing: how long a task waits before trying a phase again, and when it
gives up.

Contract. A phase that fails with a ``RetriableError`` (a lost or refused
connection, a server restarting, a read-only target during a failover, a lock
wait timeout, a deadlock, a binlog dump cut off ...) is run again by the task
runner after a back-off, from where its checkpoints say: the full copy from its
chunk progress in the metadata store, incremental sync from the partitions'
checkpoints in the target's ``oms`` database, OceanBase capture from its log
position. Resuming is the same code path as a restart after kill -9, so a retry
loses and duplicates nothing that a crash would not.

A *streak* of failures starts at the first failure after the task was healthy
and ends when the phase shows progress again (a chunk copied, a batch applied, a
change read from an idle source): the back-off then starts over from ``FIRST``.
Within a streak the n-th wait is ``retrying.backoff(n)``: 1 s doubling up to
60 s, scaled by a random factor in [0.5, 1] ("equal jitter": two tasks cut off by
the same restart do not knock on the server in step), never under 1 s. A streak longer
than the task's ``options.retry_for`` (default 24 h; 0 fails at once) ends the
task ``failed``, with the last error and how long it was retried. An error may
carry a shorter limit of its own (``RetriableError.give_up_after``): one whose
transience is only likely (e.g. an OceanBase "invalid argument" seen right after
a DDL) is not retried for a day.

While waiting, the runner probes the endpoint that failed (a TCP connect, once a
second): a server that was unreachable and accepts connections again ends the
wait at once, so recovery after a restart takes about a second, not the rest of
a back-off that grew while the server was down.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from duosync.errors import RetriableError
from duosync.retrying import backoff

__all__ = ["Address", "Streak", "Waiter", "backoff", "give_up", "reachable", "time_left"]

#: seconds between probes of an unreachable endpoint while waiting
PROBE_EVERY = 1.0


@dataclass
class Streak:
    """The failures since the task was last healthy (none: ``attempts`` 0)."""

    attempts: int = 0
    #: time.time() of the streak's first failure
    since: float | None = None
    last_error: str | None = None
    #: time.time() of the next attempt, while waiting
    next_at: float | None = None

    def fail(self, error: str, now: float) -> None:
        if self.since is None:
            self.since = now
        self.attempts += 1
        self.last_error = error

    def clear(self) -> None:
        self.attempts = 0
        self.since = None
        self.last_error = None
        self.next_at = None


def time_left(streak: Streak, error: RetriableError, retry_for: float, now: float) -> float:
    """Seconds the streak may still last under the task's (or the error's) limit."""
    limit = retry_for
    if error.give_up_after is not None:
        limit = min(limit, error.give_up_after)
    since = streak.since if streak.since is not None else now
    return max(0.0, since + limit - now)


def give_up(streak: Streak, error: RetriableError, retry_for: float, now: float) -> bool:
    """Whether the streak has lasted as long as the task (or the error) allows."""
    return time_left(streak, error, retry_for, now) <= 0.0


@dataclass(frozen=True)
class Address:
    """Where a failed endpoint listens, for the reachability probe."""

    host: str
    port: int


def reachable(address: Address, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Waiter:
    """Waits out a back-off; ends early on *stop*, or when the probed endpoint
    turns reachable after having been unreachable."""

    stop: threading.Event
    probe: Callable[[Address], bool] = reachable
    #: what the wait ended on: "stop", "reachable" or "elapsed"
    ended: str = field(default="", init=False)

    def wait(self, seconds: float, address: Address | None) -> str:
        deadline = time.monotonic() + seconds
        was_down = address is not None and not self.probe(address)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.ended = "elapsed"
                return self.ended
            if self.stop.wait(min(left, PROBE_EVERY)):
                self.ended = "stop"
                return self.ended
            if address is not None and was_down and self.probe(address):
                self.ended = "reachable"
                return self.ended
