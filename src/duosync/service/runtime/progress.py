"""Progress of the full migration: a live bar on a terminal, plain lines otherwise.

Both displays share one bookkeeping (``Progress``): per table, the chunks planned,
those an earlier run recorded done and the rows they copied, plus what this run has
done so far. Chunks drive the fraction done and the ETA (a chunk is the unit of
work; row totals are unknown until the copy ends): the ETA is the time this run
took per chunk times the chunks left. Total rows are *estimated* from chunk counts
(rows done per chunk done, times the chunks planned), and exact once a table is done.

``chunk_done`` must be called from one thread only (the copier calls its ``on_done``
in the calling thread); nothing here starts a thread.
"""

from __future__ import annotations

import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TextIO

from rich.console import Console
from rich.progress import BarColumn, TaskID, TaskProgressColumn, TextColumn
from rich.progress import Progress as RichBars

Say = Callable[[str], None]
Clock = Callable[[], float]

#: set (to any non-empty value) to get plain lines even on a terminal
PLAIN_ENV = "DUOSYNC_PLAIN"


@dataclass(frozen=True)
class TablePlan:
    """What is known of one table before this run copies anything."""

    #: chunks planned for the table, over all runs
    chunks: int
    #: chunks an earlier run recorded done (skipped by this run)
    done_before: int = 0
    #: rows those chunks copied
    rows_before: int = 0


@dataclass
class _Table:
    plan: TablePlan
    done: int = 0  # chunks done by this run
    rows: int = 0  # rows copied by this run
    #: when this run started working on the table: the previous chunk event
    active_since: float | None = None
    finished_at: float | None = None

    @property
    def chunks_done(self) -> int:
        return self.plan.done_before + self.done

    @property
    def rows_done(self) -> int:
        return self.plan.rows_before + self.rows

    @property
    def complete(self) -> bool:
        return self.chunks_done >= self.plan.chunks


@dataclass(frozen=True)
class Figures:
    """Progress of one table or of the whole copy at one moment."""

    #: chunks done, including those of earlier runs, and planned
    chunks_done: int
    chunks: int
    #: rows copied by this run, and including earlier runs
    rows: int
    rows_done: int
    #: estimated rows in all (None: nothing copied yet to estimate from)
    rows_estimate: int | None
    #: rows per second of this run (None: not started)
    rate: float | None
    #: seconds left (None: unknown)
    eta: float | None

    @property
    def fraction(self) -> float:
        return self.chunks_done / self.chunks if self.chunks else 1.0


class Progress(ABC):
    """Progress of one full-migration run; use it as a context manager around the copy.

    The display starts on ``__enter__`` and stops on ``__exit__`` (also when the copy
    raises); ``finish`` stops it and says the summary line.
    """

    def __init__(
        self, tables: Mapping[str, TablePlan], say: Say, *, clock: Clock = time.monotonic
    ) -> None:
        self.say = say
        self._clock = clock
        self._tables = {name: _Table(plan) for name, plan in tables.items()}
        self._start = clock()
        self._last_event = self._start
        self._finished = False

    # -- bookkeeping ------------------------------------------------------------------

    def chunk_done(self, table: str, rows: int) -> None:
        """One chunk of *table* was committed on the target, holding *rows* rows."""
        now = self._clock()
        t = self._tables[table]
        if t.done == 0:
            t.active_since = self._last_event
        t.done += 1
        t.rows += rows
        if t.complete and t.finished_at is None:
            t.finished_at = now
        self._last_event = now
        self._show(table, now)

    def table_figures(self, table: str, now: float | None = None) -> Figures:
        t = self._tables[table]
        now = self._clock() if now is None else now
        rate: float | None = None
        eta: float | None = 0.0 if t.complete else None
        if t.done and t.active_since is not None:
            span = max((t.finished_at or now) - t.active_since, 1e-6)
            rate = t.rows / span
            eta = span * (t.plan.chunks - t.chunks_done) / t.done
        return Figures(
            chunks_done=t.chunks_done,
            chunks=t.plan.chunks,
            rows=t.rows,
            rows_done=t.rows_done,
            rows_estimate=self._estimate(t),
            rate=rate,
            eta=max(eta, 0.0) if eta is not None else None,
        )

    def total_figures(self, now: float | None = None) -> Figures:
        now = self._clock() if now is None else now
        tables = self._tables.values()
        elapsed = max(now - self._start, 1e-6)
        chunks = sum(t.plan.chunks for t in tables)
        chunks_done = sum(t.chunks_done for t in tables)
        done = sum(t.done for t in tables)
        rows = sum(t.rows for t in tables)
        left = max(chunks - chunks_done, 0)
        eta = elapsed * left / done if done else (0.0 if not left else None)
        # A table with nothing done yet is estimated at the average rows per chunk.
        sampled = [t for t in tables if t.chunks_done]
        per_chunk = (
            sum(t.rows_done for t in sampled) / sum(t.chunks_done for t in sampled)
            if sampled
            else None
        )
        estimate: int | None = 0
        for t in tables:
            own = self._estimate(t)
            if own is None:
                own = None if per_chunk is None else round(per_chunk * t.plan.chunks)
            estimate = None if own is None or estimate is None else estimate + own
        return Figures(
            chunks_done=chunks_done,
            chunks=chunks,
            rows=rows,
            rows_done=sum(t.rows_done for t in tables),
            rows_estimate=estimate,
            rate=rows / elapsed if done else None,
            eta=eta,
        )

    @staticmethod
    def _estimate(t: _Table) -> int | None:
        if t.complete:
            return t.rows_done
        if not t.chunks_done:
            return None
        return round(t.rows_done * t.plan.chunks / t.chunks_done)

    def summary(self) -> str:
        elapsed = max(self._clock() - self._start, 1e-6)
        rows = sum(t.rows for t in self._tables.values())
        return f"full migration: {rows} rows in {elapsed:.1f}s ({rows / elapsed:.0f} rows/s)"

    # -- display ----------------------------------------------------------------------

    @abstractmethod
    def _show(self, table: str, now: float) -> None:
        """Display the progress after a chunk of *table* was done."""

    @abstractmethod
    def start(self) -> None:
        """Start the display."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the display; harmless when stopped or never started."""

    def finish(self) -> None:
        """Stop the display and say the summary line (once)."""
        self.stop()
        if not self._finished:
            self._finished = True
            self.say(self.summary())

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PlainProgress(Progress):
    """Per-table and total progress as plain lines through *say*, at most every two
    seconds, and whenever a table is done."""

    INTERVAL = 2.0

    def __init__(
        self, tables: Mapping[str, TablePlan], say: Say, *, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(tables, say, clock=clock)
        self._last_line = float("-inf")

    def start(self) -> None:
        pass  # lines need no setup

    def stop(self) -> None:
        pass

    def _show(self, table: str, now: float) -> None:
        if now - self._last_line >= self.INTERVAL or self._tables[table].complete:
            self._last_line = now
            self.say(self.line(table, now))

    def line(self, table: str, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        total = self.total_figures(now)
        eta = total.eta or 0.0
        return (
            f"{table}: {self._tables[table].rows} rows | total {total.rows} rows,"
            f" {total.rate or 0.0:.0f} rows/s, {100 * total.fraction:.0f}% of chunks,"
            f" ETA {eta:.0f}s"
        )


TOTAL = "total"


class RichProgress(Progress):
    """One ``rich`` progress bar per table plus a total bar, drawn on *stream* (a
    terminal): chunks done (%), rows done of the estimated total, rows/s, ETA.

    The bars are only redrawn from ``chunk_done`` (no refresh thread), at most
    ``REFRESH`` times a second and whenever a table is done. While they are live,
    anything printed to ``sys.stdout``/``sys.stderr`` goes above them. They stay on
    screen when stopped; the summary line follows through *say*.
    """

    REFRESH = 0.1

    def __init__(
        self,
        tables: Mapping[str, TablePlan],
        say: Say,
        *,
        stream: TextIO | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(tables, say, clock=clock)
        self.console = Console(file=stream if stream is not None else sys.stderr)
        self._bars = RichBars(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]}", markup=False, justify="right"),
            TextColumn("{task.fields[rate]}", markup=False, justify="right"),
            TextColumn("ETA {task.fields[eta]}", markup=False),
            console=self.console,
            auto_refresh=False,
            transient=False,
        )
        self._last_refresh = float("-inf")
        self._started = False
        now = self._start
        # The total first: with more tables than the terminal has lines, the bars
        # below the screen are cut off, and the total must stay visible.
        self._ids: dict[str, TaskID] = {}
        for name, f in [
            (TOTAL, self.total_figures(now)),
            *((name, self.table_figures(name, now)) for name in self._tables),
        ]:
            rows, rate, eta = self._texts(f)
            self._ids[name] = self._bars.add_task(
                name, total=f.chunks, completed=f.chunks_done, rows=rows, rate=rate, eta=eta
            )

    @staticmethod
    def _texts(f: Figures) -> tuple[str, str, str]:
        """The rows, rows/s and ETA columns."""
        if f.rows_estimate is None or f.chunks_done >= f.chunks:
            rows = f"{f.rows_done:,} rows"
        else:
            rows = f"{f.rows_done:,}/~{f.rows_estimate:,} rows"
        rate = "- rows/s" if f.rate is None else f"{f.rate:,.0f} rows/s"
        return rows, rate, _clock_time(f.eta)

    def _update(self, name: str, f: Figures) -> None:
        rows, rate, eta = self._texts(f)
        self._bars.update(
            self._ids[name], completed=f.chunks_done, total=f.chunks, rows=rows, rate=rate, eta=eta
        )

    def _show(self, table: str, now: float) -> None:
        self._update(table, self.table_figures(table, now))
        self._update(TOTAL, self.total_figures(now))
        if self._started and (
            now - self._last_refresh >= self.REFRESH or self._tables[table].complete
        ):
            self._last_refresh = now
            self._bars.refresh()

    def start(self) -> None:
        if not self._started and not self._finished:
            self._started = True
            self._bars.start()

    def stop(self) -> None:
        if self._started:
            self._started = False
            now = self._clock()
            # Rates and ETAs as of now, for the bars left on screen.
            for name in self._tables:
                self._update(name, self.table_figures(name, now))
            self._update(TOTAL, self.total_figures(now))
            self._bars.stop()


def _clock_time(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def make_progress(
    tables: Mapping[str, TablePlan], say: Say, stream: TextIO | None = None
) -> Progress:
    """Bars when *stream* (default ``sys.stderr``) is a terminal and ``DUOSYNC_PLAIN``
    is not set (or empty), plain lines through *say* otherwise."""
    out = stream if stream is not None else sys.stderr
    if _isatty(out) and not os.environ.get(PLAIN_ENV):
        return RichProgress(tables, say, stream=out)
    return PlainProgress(tables, say)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed or not a real stream
        return False
