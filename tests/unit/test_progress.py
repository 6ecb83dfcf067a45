"""Full-migration progress: plain lines, rich bars, and the choice between them."""

from __future__ import annotations

import io
import re
import sys

import pytest
from rich.file_proxy import FileProxy

from duosync.service.runtime.progress import (
    PlainProgress,
    RichProgress,
    TablePlan,
    make_progress,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain capable terminal, whatever the environment running the tests says."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    for name in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "FORCE_COLOR", "DUOSYNC_PLAIN"):
        monkeypatch.delenv(name, raising=False)


def text(stream: io.StringIO) -> str:
    return ANSI.sub("", stream.getvalue())


PLANS = {
    "shop.orders": TablePlan(chunks=3),
    "shop.customers": TablePlan(chunks=2),
}


# -- plain lines ------------------------------------------------------------------------


def test_plain_lines_name_table_rows_and_total() -> None:
    clock = Clock()
    lines: list[str] = []
    progress = PlainProgress(PLANS, lines.append, clock=clock)
    clock.now = 1.0
    progress.chunk_done("shop.orders", 100)
    assert lines == [
        "shop.orders: 100 rows | total 100 rows, 100 rows/s, 20% of chunks, ETA 4s",
    ]


def test_plain_lines_at_most_every_two_seconds_and_when_a_table_is_done() -> None:
    clock = Clock()
    lines: list[str] = []
    progress = PlainProgress(PLANS, lines.append, clock=clock)
    for at, table, rows in [
        (1.0, "shop.orders", 100),  # first chunk: said
        (1.5, "shop.orders", 100),  # 0.5 s later: quiet
        (2.0, "shop.customers", 50),  # 1 s later: quiet
        (3.0, "shop.customers", 7),  # shop.customers done: said
        (3.5, "shop.orders", 20),  # shop.orders done: said, though only 0.5 s later
    ]:
        clock.now = at
        progress.chunk_done(table, rows)
    assert [line.split(":")[0] for line in lines] == [
        "shop.orders",
        "shop.customers",
        "shop.orders",
    ]
    assert lines[1].startswith("shop.customers: 57 rows | total 257 rows, 86 rows/s, 80% ")
    assert lines[2] == ("shop.orders: 220 rows | total 277 rows, 79 rows/s, 100% of chunks, ETA 0s")


def test_plain_resume_counts_earlier_chunks_in_the_fraction_and_this_run_in_the_rate() -> None:
    clock = Clock()
    lines: list[str] = []
    plans = {"shop.orders": TablePlan(chunks=4, done_before=2, rows_before=2000)}
    progress = PlainProgress(plans, lines.append, clock=clock)
    clock.now = 10.0
    progress.chunk_done("shop.orders", 1000)
    # 3 of 4 chunks done; this run did one in 10 s, so one more takes 10 s.
    assert lines == [
        "shop.orders: 1000 rows | total 1000 rows, 100 rows/s, 75% of chunks, ETA 10s",
    ]


def test_finish_says_the_summary_line_once() -> None:
    clock = Clock()
    lines: list[str] = []
    with PlainProgress(PLANS, lines.append, clock=clock) as progress:
        clock.now = 2.0
        progress.chunk_done("shop.orders", 300)
        clock.now = 4.0
        progress.chunk_done("shop.customers", 200)
        lines.clear()
        progress.finish()
        progress.finish()
    assert lines == ["full migration: 500 rows in 4.0s (125 rows/s)"]


def test_finish_line_format_with_the_real_clock() -> None:
    lines: list[str] = []
    progress = PlainProgress(PLANS, lines.append)
    progress.chunk_done("shop.orders", 42)
    progress.finish()
    assert re.fullmatch(r"full migration: 42 rows in \d+\.\ds \(\d+ rows/s\)", lines[-1])


def test_rows_are_estimated_from_chunk_counts() -> None:
    clock = Clock()
    plans = {
        "shop.orders": TablePlan(chunks=4, done_before=1, rows_before=100),
        "shop.customers": TablePlan(chunks=2),
    }
    progress = PlainProgress(plans, lambda _line: None, clock=clock)
    assert progress.table_figures("shop.orders").rows_estimate == 400
    assert progress.table_figures("shop.customers").rows_estimate is None
    # a table with nothing done yet counts at the average rows per chunk done
    assert progress.total_figures().rows_estimate == 400 + 200
    clock.now = 1.0
    progress.chunk_done("shop.customers", 30)
    progress.chunk_done("shop.customers", 5)
    customers = progress.table_figures("shop.customers")
    assert customers.rows_estimate == 35  # done: exact
    assert customers.eta == 0.0
    assert progress.total_figures().rows_estimate == 435


# -- choosing the display ---------------------------------------------------------------


def test_make_progress_is_plain_on_a_file(terminal_env: None) -> None:
    lines: list[str] = []
    progress = make_progress(PLANS, lines.append, stream=io.StringIO())
    assert isinstance(progress, PlainProgress)
    progress.chunk_done("shop.orders", 10)
    assert lines and lines[0].startswith("shop.orders: 10 rows")


def test_make_progress_is_plain_on_a_terminal_with_duosync_plain(
    terminal_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUOSYNC_PLAIN", "1")
    assert isinstance(make_progress(PLANS, print, stream=FakeTty()), PlainProgress)


def test_make_progress_draws_bars_on_a_terminal(
    terminal_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(make_progress(PLANS, print, stream=FakeTty()), RichProgress)
    monkeypatch.setenv("DUOSYNC_PLAIN", "")  # empty is unset
    assert isinstance(make_progress(PLANS, print, stream=FakeTty()), RichProgress)


def test_make_progress_defaults_to_stderr(
    terminal_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", FakeTty())
    assert isinstance(make_progress(PLANS, print), RichProgress)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(make_progress(PLANS, print), PlainProgress)


# -- rich bars --------------------------------------------------------------------------


def test_rich_bars_show_tables_rows_rate_and_eta(terminal_env: None) -> None:
    clock = Clock()
    tty = FakeTty()
    lines: list[str] = []
    with RichProgress(PLANS, lines.append, stream=tty, clock=clock) as progress:
        clock.now = 1.0
        progress.chunk_done("shop.orders", 100)
        live = text(tty)  # drawn while the copy runs, not only at the end
        assert "shop.orders" in live and "shop.customers" in live and "total" in live
        assert "100/~300 rows" in live  # 1 of 3 chunks: ~300 rows in all
        assert "100 rows/s" in live
        assert "ETA 0:00:04" in live  # total: 4 chunks left at 1 s each
        clock.now = 2.0
        progress.chunk_done("shop.orders", 100)
        progress.chunk_done("shop.orders", 50)
        progress.finish()
    shown = text(tty)
    last = shown[shown.rindex("total") :]  # the final drawing, left on screen
    assert re.search(r"shop\.orders .*100% +250 rows", last)
    assert re.search(r"shop\.customers .* 0% +0 rows +- rows/s ETA -:--:--", last)
    assert "full migration" not in shown
    assert lines == ["full migration: 250 rows in 2.0s (125 rows/s)"]


def test_rich_bars_keep_printed_lines_above_them(terminal_env: None) -> None:
    tty = FakeTty()
    with RichProgress(PLANS, lambda _line: None, stream=tty) as progress:
        assert isinstance(sys.stderr, FileProxy)
        print("note: something", file=sys.stderr)
        progress.chunk_done("shop.orders", 1)
    assert not isinstance(sys.stderr, FileProxy)
    assert "note: something" in text(tty)


def test_rich_bars_stop_when_the_copy_raises(terminal_env: None) -> None:
    tty = FakeTty()
    lines: list[str] = []
    with (
        pytest.raises(RuntimeError, match="copy failed"),
        RichProgress(PLANS, lines.append, stream=tty) as progress,
    ):
        progress.chunk_done("shop.orders", 1)
        raise RuntimeError("copy failed")
    assert not isinstance(sys.stdout, FileProxy) and not isinstance(sys.stderr, FileProxy)
    assert tty.getvalue().endswith("\x1b[?25h")  # the cursor is shown again
    assert lines == []  # no summary for a copy that failed
