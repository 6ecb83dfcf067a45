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
from typing import Any, Protocol

from duosync.service.runtime.progress import Progress
from duosync.sync.runner import SyncStats

#: seconds over which rows/s and bytes/s are measured
WINDOW = 5.0
#: seconds between points of the last hour's chart, and how many are kept
CHART_EVERY = 10.0
CHART_POINTS = 360


@dataclass(frozen=True)
class ChartPoint:
    """One point of the task's last-hour chart: Unix time, rows/s, lag (s)."""

    at: float
    rows_per_second: float
    lag_seconds: float | None


class Figures(Protocol):
    """Live figures of a running task: this process's ``Live``, or the snapshot
    another cluster node published (``RemoteLive``)."""

    def snapshot(self, *, chart: bool = False) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RemoteLive:
    """The figures the cluster node that runs a task published (a snapshot a
    second or two old), plus that node's name."""

    data: dict[str, Any]

    @property
    def node(self) -> str:
        return str(self.data.get("node", ""))

    def snapshot(self, *, chart: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in self.data.items() if k not in ("node", "at")}
        if not chart:
            out.pop("chart", None)
        return out


@dataclass
class Live:
    phase: str = ""
    #: the full copy's bookkeeping, while and after it runs in this process
    copy: Progress | None = None
    copied_rows: int = 0
    copied_bytes: int = 0
    copied_chunks: int = 0
    sync: SyncStats = field(default_factory=SyncStats)
    #: whether the run is in a streak of retried failures (service.runtime.healing)
    retrying: bool = False
    _samples: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=64))
    chart: deque[ChartPoint] = field(default_factory=lambda: deque(maxlen=CHART_POINTS))
    #: set when the run ends: its figures stop moving, its rates are 0
    ended: bool = False

    def progress(self) -> int:
        """A number that grows whenever the run shows it works: a chunk copied, a
        batch applied, a change or heartbeat read. Healing watches it to tell a
        recovered task from one still failing."""
        return self.copied_chunks + self.sync.batches + self.sync.reads

    def totals(self) -> tuple[int, int]:
        """Rows and bytes written by this run so far (copied plus synced)."""
        return self.copied_rows + self.sync.rows, self.copied_bytes + self.sync.bytes

    def sample(self, now: float | None = None) -> None:
        """Called every second by the run's lease thread."""
        rows, nbytes = self.totals()
        at = time.monotonic() if now is None else now
        self._samples.append((at, rows, nbytes))
        wall = time.time()
        if not self.chart or wall - self.chart[-1].at >= CHART_EVERY:
            self.chart.append(ChartPoint(wall, round(self.rates(at)[0], 1), self.sync.lag))

    def rates(self, now: float | None = None) -> tuple[float, float]:
        """Rows/s and bytes/s over the last ``WINDOW`` seconds of samples; 0 once
        the run ended or stopped sampling (figures of a run that is gone must not
        look current)."""
        if len(self._samples) < 2 or self.ended:
            return 0.0, 0.0
        last = self._samples[-1]
        current = time.monotonic() if now is None else now
        if current - last[0] > 2 * WINDOW:
            return 0.0, 0.0
        first = next((s for s in self._samples if last[0] - s[0] <= WINDOW + 0.5), self._samples[0])
        span = last[0] - first[0]
        if span <= 0:
            return 0.0, 0.0
        return (last[1] - first[1]) / span, (last[2] - first[2]) / span

    def snapshot(self, *, chart: bool = False) -> dict[str, Any]:
        """The figures; with *chart*, the last hour's points too (a task's own
        views, not the task list)."""
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
            "retrying": self.retrying,
            "copy": None,
        }
        if chart:
            out["chart"] = [
                {
                    "at": round(p.at, 1),
                    "rows_per_second": p.rows_per_second,
                    "lag_seconds": None if p.lag_seconds is None else round(p.lag_seconds, 3),
                }
                for p in self.chart
            ]
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
