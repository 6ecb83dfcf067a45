"""A token bucket shared by all writer threads: rows per second and bytes per second."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Blocks ``acquire`` until the rows and bytes it asks for fit the configured rates.

    The bucket holds at most one second of budget, so an idle period does not let a
    later burst exceed the limit by more than one second's worth.
    """

    def __init__(self, rows_per_second: int | None, bytes_per_second: int | None) -> None:
        self.rows_rate = rows_per_second
        self.bytes_rate = bytes_per_second
        self._lock = threading.Lock()
        self._rows = float(rows_per_second or 0)
        self._bytes = float(bytes_per_second or 0)
        self._stamp = time.monotonic()

    @property
    def unlimited(self) -> bool:
        return self.rows_rate is None and self.bytes_rate is None

    def acquire(self, rows: int, nbytes: int) -> None:
        if self.unlimited:
            return
        with self._lock:  # one writer waits at a time: the rest queue behind it, in order
            now = time.monotonic()
            elapsed = now - self._stamp
            self._stamp = now
            wait = 0.0
            if self.rows_rate:
                self._rows = min(self._rows + elapsed * self.rows_rate, float(self.rows_rate))
                self._rows -= rows
                if self._rows < 0:
                    wait = max(wait, -self._rows / self.rows_rate)
            if self.bytes_rate:
                self._bytes = min(self._bytes + elapsed * self.bytes_rate, float(self.bytes_rate))
                self._bytes -= nbytes
                if self._bytes < 0:
                    wait = max(wait, -self._bytes / self.bytes_rate)
            if wait > 0:
                time.sleep(wait)
                # The debt was paid by sleeping; the next caller starts from here.
                self._stamp = time.monotonic()
                self._rows = min(self._rows + wait * (self.rows_rate or 0), 0.0)
                self._bytes = min(self._bytes + wait * (self.bytes_rate or 0), 0.0)
