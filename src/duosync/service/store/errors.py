"""How the metadata store fails, and the one failure it mends itself.

``StoreUnavailable`` is retriable (the API answers 503); ``StoreConflict`` is a
deadlock victim, run again by ``rerun_on_conflict``; ``IntegrityViolation`` is a
broken key, which the store's methods turn into the error their callers expect.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from duosync.errors import FatalError, RetriableError


class StoreUnavailable(RetriableError):
    """The metadata store cannot be used right now: its server is down or
    restarting, the connection was lost, or a lock wait timed out (SQLite:
    "database is locked"). Retry later; the API answers 503. The change the call
    was making was rolled back, except when the connection was lost during the
    commit itself: then it may or may not have been saved."""


class StoreConflict(StoreUnavailable):
    """The server rolled the write transaction back to break a deadlock (or a
    serialization failure on PostgreSQL). Nothing of it was saved and the
    connection is still good, so the store runs the transaction again
    (``CONFLICT_ATTEMPTS`` times in all) before this reaches the caller."""


#: times a write transaction is run before a deadlock reaches its caller
CONFLICT_ATTEMPTS = 5


_P = ParamSpec("_P")
_T = TypeVar("_T")


def rerun_on_conflict(write: Callable[_P, _T]) -> Callable[_P, _T]:
    """*write* (one store transaction, no effect outside it) run again when the
    server broke a deadlock by rolling it back: two processes creating the same
    task can deadlock on InnoDB's duplicate-key locks, and the run after the
    rollback sees the other's row (``TaskExists``). The pause is short and random,
    so the two do not meet again at once."""

    @functools.wraps(write)
    def rerun(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return write(*args, **kwargs)
            except StoreConflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    return rerun


class IntegrityViolation(FatalError):
    """A write broke a key or a reference (a duplicate task name, a row of a task
    that does not exist); the store's methods turn it into ``TaskExists`` or
    ``ConfigError`` where they expect it."""
