"""Self-healing logic without servers: back-off, streaks and their limits, the
wait that ends early when a server comes back, retry_call, the retry columns of
the store, where a failed task resumes, live rates that go stale, and how driver
errors are classified for retrying."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pymysql
import pytest

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import OCEANBASE_INVALID_ARGUMENT_GIVE_UP, translate
from duosync.errors import DataError, FatalError, RetriableError
from duosync.retrying import CAP, FIRST, backoff, retry_call
from duosync.service.runtime import healing
from duosync.service.runtime.live import Live
from duosync.service.runtime.runner import reached_phase
from duosync.service.runtime.states import State
from duosync.service.store.metadata import MetadataStore
from duosync.spec import Options, parse_duration

# -- back-off ------------------------------------------------------------------------


def test_backoff_doubles_from_one_second_to_the_cap_with_jitter() -> None:
    lows = [backoff(n, rand=lambda: 0.0) for n in range(1, 12)]
    highs = [backoff(n, rand=lambda: 1.0) for n in range(1, 12)]
    assert highs[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert all(h == CAP for h in highs[6:])
    # equal jitter: at least half the base, never under the first wait
    assert lows[:4] == [FIRST, FIRST, 2.0, 4.0]
    assert all(lo <= hi for lo, hi in zip(lows, highs, strict=True))
    assert backoff(10_000) <= CAP


def test_streak_counts_from_its_first_failure_and_clears() -> None:
    streak = healing.Streak()
    streak.fail("down", 100.0)
    streak.fail("still down", 103.0)
    assert (streak.attempts, streak.since, streak.last_error) == (2, 100.0, "still down")
    streak.clear()
    assert (streak.attempts, streak.since, streak.last_error) == (0, None, None)


def test_give_up_after_retry_for_or_the_errors_own_limit() -> None:
    streak = healing.Streak()
    streak.fail("x", 1000.0)
    err = RetriableError("lost")
    assert not healing.give_up(streak, err, retry_for=60.0, now=1059.0)
    assert healing.give_up(streak, err, retry_for=60.0, now=1060.0)
    assert healing.give_up(streak, err, retry_for=0.0, now=1000.0)  # 0: fail at once
    err.give_up_after = 10.0
    assert healing.give_up(streak, err, retry_for=86400.0, now=1010.0)


def test_wait_ends_early_when_a_down_endpoint_answers_again() -> None:
    answers = iter([False, False, True])
    waiter = healing.Waiter(threading.Event(), probe=lambda _a: next(answers, True))
    started = time.monotonic()
    assert waiter.wait(30.0, healing.Address("127.0.0.1", 1)) == "reachable"
    assert time.monotonic() - started < 5.0


def test_wait_lasts_its_time_when_the_endpoint_was_up_all_along() -> None:
    probes: list[int] = []

    def probe(_a: healing.Address) -> bool:
        probes.append(1)
        return True

    waiter = healing.Waiter(threading.Event(), probe=probe)
    started = time.monotonic()
    assert waiter.wait(1.2, healing.Address("127.0.0.1", 1)) == "elapsed"
    assert time.monotonic() - started >= 1.2
    assert len(probes) == 1  # only the first look: no early end for an up server


def test_wait_ends_on_stop() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert healing.Waiter(stop, probe=lambda _a: False).wait(30.0, None) == "stop"


def test_reachable_probe_on_a_closed_and_an_open_port() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert healing.reachable(healing.Address("127.0.0.1", port))
    assert not healing.reachable(healing.Address("127.0.0.1", port), timeout=0.5)


def test_retry_call_retries_transient_faults_within_its_budget() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetriableError("lost connection")
        return "done"

    said: list[str] = []
    assert retry_call(flaky, budget=60, say=said.append, what="t", sleep=slept.append) == "done"
    assert len(calls) == 3 and len(slept) == 2 and len(said) == 2
    assert "lost connection" in said[0]


def test_retry_call_gives_up_past_its_budget_and_never_retries_other_errors() -> None:
    def down() -> None:
        raise RetriableError("down")

    with pytest.raises(RetriableError):
        retry_call(down, budget=0.5, say=lambda _s: None, what="t", sleep=lambda _s: None)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise FatalError("no")

    with pytest.raises(FatalError):
        retry_call(broken, budget=60, say=lambda _s: None, what="t", sleep=lambda _s: None)
    assert calls == [1]


# -- retry_for -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400.0), ("90s", 90.0), ("1h30m", 5400.0), ("7d", 604800.0), (0, 0.0), ("15", 15.0)],
)
def test_retry_for_is_a_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert Options.model_validate({"retry_for": text}).retry_for == seconds


@pytest.mark.parametrize("bad", ["soon", "", "-5", "5x", "1m2h", True])
def test_retry_for_refuses_what_is_not_a_duration(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        Options.model_validate({"retry_for": bad})


def test_retry_for_defaults_to_a_day() -> None:
    assert Options().retry_for == 86400.0


# -- the store -----------------------------------------------------------------------


def test_store_keeps_the_streak_and_the_events(tmp_path: Path) -> None:
    with MetadataStore(tmp_path / "m.db") as store:
        store.create_task("t", {})
        assert store.get_task("t").healthy
        store.record_retry("t", 1, 100.0, 105.0, "cannot connect")
        store.record_retry("t", 2, 100.0, 110.0, "cannot connect again")
        record = store.get_task("t")
        assert not record.healthy
        assert (record.retry_attempts, record.retry_since, record.retry_next) == (2, 100.0, 110.0)
        assert record.retry_error == "cannot connect again"
        assert record.retries_total == 2 and record.last_error_at is not None
        store.record_recovered("t", "recovered after 2 failed attempts")
        record = store.get_task("t")
        assert record.healthy and record.retries_total == 2 and record.retry_since is None
        kinds = [e.kind for e in store.history("t")]
        assert kinds == ["state", "retry", "retry", "recovered"]
        assert [e.kind for e in store.history("t", limit=2)] == ["retry", "recovered"]


def test_store_is_safe_to_share_between_threads(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "m.db")
    store.create_task("t", {})
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                store.note("t", f"thread {n} note {i}")
                assert store.get_task("t").name == "t"
                store.list_tasks()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.history("t")) == 1 + 8 * 30
    store.close()


def test_a_failed_task_resumes_in_the_phase_it_had_reached(tmp_path: Path) -> None:
    with MetadataStore(tmp_path / "m.db") as store:
        store.create_task("t", {})
        assert reached_phase(store, "t") is None
        for state in (State.PRECHECKING, State.SCHEMA_MIGRATION, State.FULL_MIGRATION):
            store.enter_state("t", state)
        store.enter_state("t", State.FAILED, "source down")
        assert reached_phase(store, "t") is State.FULL_MIGRATION
        # started again, the pre-checks fail: still the full copy it had reached
        store.enter_state("t", State.PRECHECKING)
        store.enter_state("t", State.FAILED, "pre-checks failed")
        assert reached_phase(store, "t") is State.FULL_MIGRATION
        store.enter_state("t", State.PRECHECKING)
        store.enter_state("t", State.INCREMENTAL_RUNNING)
        store.enter_state("t", State.INCREMENTAL_MONITORING)
        store.enter_state("t", State.FAILED, "gave up")
        assert reached_phase(store, "t") is State.INCREMENTAL_RUNNING


# -- live figures --------------------------------------------------------------------


def test_rates_of_an_ended_or_silent_run_are_zero() -> None:
    live = Live()
    live.sample(now=100.0)
    live.copied_rows = 5000
    live.sample(now=101.0)
    assert live.rates(now=101.5)[0] == pytest.approx(5000.0)
    assert live.rates(now=200.0) == (0.0, 0.0)  # nobody sampled for 99 s
    live.ended = True
    assert live.rates(now=101.5) == (0.0, 0.0)


def test_progress_moves_with_chunks_batches_and_reads() -> None:
    live = Live()
    before = live.progress()
    live.copied_chunks += 1
    live.sync.batches += 1
    live.sync.reads += 3
    assert live.progress() == before + 5
    live.sample()
    assert live.snapshot(chart=True)["chart"], "the first sample is a chart point"
    assert "chart" not in live.snapshot()  # the task list carries no chart


# -- classifying driver errors ---------------------------------------------------------


MARIADB = Endpoint.from_url("mariadb://u@db:3306")
OCEANBASE = Endpoint.from_url("oceanbase://u@ob:2881")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (2013, "Lost connection to MySQL server during query"),
        (2006, "MySQL server has gone away"),
        (1053, "Server shutdown in progress"),
        (1205, "Lock wait timeout exceeded"),
        (1213, "Deadlock found"),
        (1290, "The MariaDB server is running with the --read-only option"),
        (1836, "Running in read-only mode"),
        (1927, "Connection was killed"),
    ],
)
def test_transient_faults_are_retriable(code: int, text: str) -> None:
    assert isinstance(translate(pymysql.err.OperationalError(code, text), MARIADB), RetriableError)


def test_read_only_code_for_another_option_is_not_retriable() -> None:
    exc = pymysql.err.OperationalError(1290, "running with the --secure-file-priv option")
    assert isinstance(translate(exc, MARIADB), FatalError)


def test_oceanbase_codes_are_retriable_only_on_oceanbase() -> None:
    exc = pymysql.err.OperationalError(4038, "Not master")
    assert isinstance(translate(exc, OCEANBASE), RetriableError)
    assert not isinstance(translate(exc, MARIADB), RetriableError)


def test_oceanbase_invalid_argument_is_retried_for_a_bounded_time() -> None:
    exc = pymysql.err.OperationalError(1210, "Invalid argument")
    error = translate(
        exc, OCEANBASE, table="db.t", statement="REPLACE INTO `db`.`t` (`a`) VALUES (1)"
    )
    assert isinstance(error, RetriableError)
    assert error.give_up_after == OCEANBASE_INVALID_ARGUMENT_GIVE_UP
    assert "statement: REPLACE INTO `db`.`t` (`a`) VALUES (1)" in str(error)
    assert "db.t" in str(error)
    assert isinstance(translate(exc, MARIADB), FatalError)


def test_a_connection_already_gone_says_so() -> None:
    error = translate(pymysql.err.InterfaceError(0, ""), MARIADB)
    assert isinstance(error, RetriableError)
    assert "connection was lost" in error.message
    assert "MySQL error 0" not in error.message


def test_refused_values_are_data_errors() -> None:
    exc = pymysql.err.DataError(1264, "Out of range value for column 'v' at row 1")
    assert isinstance(translate(exc, MARIADB), DataError)


def test_the_last_wait_ends_at_the_limit() -> None:
    streak = healing.Streak()
    streak.fail("x", 1000.0)
    err = RetriableError("lost")
    assert healing.time_left(streak, err, retry_for=10.0, now=1007.0) == pytest.approx(3.0)
    assert healing.time_left(streak, err, retry_for=10.0, now=1012.0) == 0.0
