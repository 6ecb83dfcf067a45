"""Back-off for retrying transient faults (``errors.RetriableError``).

``backoff(n)`` is the wait before attempt n + 1 of a streak of failures: 1 s
doubling up to 60 s, scaled by a random factor in [0.5, 1] ("equal jitter": two
clients cut off by the same server restart do not knock on it in step), never
under 1 s. The task runner (``service.runtime.healing``) uses it for whole phases;
``retry_call`` for short jobs that have no runner (verify's recheck).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from duosync.errors import RetriableError

T = TypeVar("T")

#: seconds of the first wait, and the longest
FIRST = 1.0
CAP = 60.0


def backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt *attempt* + 1 of a streak (*attempt* >= 1)."""
    base = min(CAP, FIRST * float(2 ** min(max(0, attempt - 1), 16)))
    return max(FIRST, base * (0.5 + 0.5 * rand()))


def retry_call(
    fn: Callable[[], T],
    *,
    budget: float,
    say: Callable[[str], None],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, called again after a back-off while it raises ``RetriableError``,
    for at most *budget* seconds in all; then the last error is raised. *fn* must
    be safe to repeat (it reconnects and redoes its step)."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except RetriableError as exc:
            attempt += 1
            delay = backoff(attempt)
            if time.monotonic() - started + delay > budget:
                raise
            say(f"{what}: {exc}; retrying in {delay:.1f}s (attempt {attempt})")
            sleep(delay)
