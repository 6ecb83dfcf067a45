"""What a running task shows while it runs: its phase, copy progress and sync
figures, and rates over the last seconds (for the API, the console and /metrics).

The copier and the incremental runner only add to counters (one writer each); the
task's lease thread calls ``sample`` every second, and readers take ``snapshot``.
A snapshot may mix figures a moment apart, which is fine for display.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from duosync.service.progress import Progress
from duosync.sync.runner import SyncStats

#: seconds over which rows/s and bytes/s are measured
WINDOW = 5.0


@dataclass
class Live:
    phase: str = ""
    #: the full copy's bookkeeping, while and after it runs in this process
    copy: Progress | None = None
    copied_rows: int = 0
    copied_bytes: int = 0
    sync: SyncStats = field(default_factory=SyncStats)
    _samples: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=64))

    def totals(self) -> tuple[int, int]:
        """Rows and bytes written by this run so far (copied plus synced)."""
        return self.copied_rows + self.sync.rows, self.copied_bytes + self.sync.bytes

    def sample(self, now: float | None = None) -> None:
        rows, nbytes = self.totals()
        self._samples.append((time.monotonic() if now is None else now, rows, nbytes))

    def rates(self) -> tuple[float, float]:
        """Rows/s and bytes/s over the last ``WINDOW`` seconds of samples."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        last = self._samples[-1]
        first = next((s for s in self._samples if last[0] - s[0] <= WINDOW + 0.5), self._samples[0])
        span = last[0] - first[0]
        if span <= 0:
            return 0.0, 0.0
        return (last[1] - first[1]) / span, (last[2] - first[2]) / span

    def snapshot(self) -> dict[str, Any]:
        rows, nbytes = self.totals()
        rows_s, bytes_s = self.rates()
        out: dict[str, Any] = {
            "phase": self.phase,
            "rows": rows,
            "bytes": nbytes,
            "rows_per_second": round(rows_s, 1),
            "bytes_per_second": round(bytes_s, 1),
            "lag_seconds": None if self.sync.lag is None else round(self.sync.lag, 3),
            "conflicts": self.sync.conflicts,
            "synced_rows": self.sync.rows,
            "echoes_dropped": self.sync.echoes,
            "copy": None,
        }
        if self.copy is not None:
            f = self.copy.total_figures()
            out["copy"] = {
                "fraction": round(f.fraction, 4),
                "chunks_done": f.chunks_done,
                "chunks": f.chunks,
                "rows_done": f.rows_done,
                "rows_estimated": f.rows_estimate,
                "eta_seconds": None if f.eta is None else round(f.eta, 1),
            }
        return out
