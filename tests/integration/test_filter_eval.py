"""Row filter conditions evaluated on change rows by the server
(``endpoints.mysql.filter_eval``), on MariaDB and on OceanBase: the verdict on each
row must be the one ``SELECT ... WHERE (condition)`` gives on the table itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.endpoints.mysql.filter_eval import FilterEvaluator, FilterTable
from duosync.errors import ConfigError
from tests.helpers import query, run_sql

_TABLE = (
    "CREATE TABLE t (id INT PRIMARY KEY, region VARCHAR(8) COLLATE utf8mb4_general_ci,"
    " kind ENUM('small', 'big') NULL, amount DECIMAL(8, 2) NULL, at DATETIME(3) NULL,"
    " note VARCHAR(16) NULL)"
)
_COLUMNS = ("id", "region", "kind", "amount", "at", "note")
_ROWS: list[tuple[Any, ...]] = [
    (1, "eu", "small", "10.00", "2024-01-01 00:00:00.000", None),
    (2, "EU", "big", "10.005", "2024-06-30 23:59:59.999", "x"),
    (3, "eu ", None, None, None, "skip"),
    (4, "us", "big", "99.99", "2023-12-31 23:59:59.999", None),
    (5, None, "small", "0.01", "2024-02-29 12:00:00.000", ""),
    (6, "Eu", "big", "-5.50", "2024-03-01 00:00:00.000", "SKIP"),
]
CONDITIONS = [
    "region = 'eu'",  # collation: case and trailing spaces
    "note IS NULL OR note <> 'skip'",  # NULLs, and the collation again
    "kind = 2",  # an ENUM in numeric context: its index
    "kind = 'BIG' AND amount >= 10",  # labels compare by the collation; DECIMAL
    "at >= '2024-01-01' AND at < '2024-03-01'",  # DATETIME against text
    "LENGTH(region) = 3 OR t.id IN (5, 6)",  # functions; a column named by its table
    "amount",  # a non-boolean value: truthy as in WHERE (NULL and 0 are not)
]


@pytest.mark.parametrize("server", ["mariadb1", "oceanbase"])
def test_verdicts_are_the_servers_own(
    server: str, request: pytest.FixtureRequest, fresh_database: Callable[..., str]
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    db = fresh_database(endpoint, "f")
    run_sql(endpoint, [_TABLE], db)
    marks = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(_ROWS))
    args = [v for row in _ROWS for v in row]
    with_rows = fresh_database(endpoint, "rows")
    run_sql(endpoint, [_TABLE], with_rows)
    query(endpoint, f"INSERT INTO `{with_rows}`.t VALUES {marks}", args)
    evaluator = FilterEvaluator(endpoint, "filter-eval-test")
    try:
        for condition in CONDITIONS:
            where = FilterTable(db, "t", condition, f"{db}.t")
            got = evaluator.matches(where, _COLUMNS, _ROWS)
            # the same condition on a real table holding the same rows
            ids = {
                r[0]
                for r in query(endpoint, f"SELECT id FROM `{with_rows}`.t AS t WHERE {condition}")
            }
            assert got == [row[0] in ids for row in _ROWS], condition
        # the scratch table never keeps a row; a longer run is split and padded
        many = [(i, "eu", None, None, None, None) for i in range(1, 1501)]
        assert evaluator.matches(FilterTable(db, "t", "id % 3 = 0", f"{db}.t"), _COLUMNS, many) == [
            i % 3 == 0 for i in range(1, 1501)
        ]
        # a condition the table cannot evaluate names the filter
        with pytest.raises(ConfigError) as caught:
            evaluator.matches(FilterTable(db, "t", "nope > 1", f"{db}.t"), _COLUMNS, _ROWS[:1])
        assert f"filters.{db}.t" in caught.value.message and "nope" in caught.value.message
        # after an error it works again (a new connection, the scratch made anew)
        assert evaluator.matches(
            FilterTable(db, "t", "id = 1", f"{db}.t"), _COLUMNS, _ROWS[:2]
        ) == [
            True,
            False,
        ]
    finally:
        evaluator.close()
    leftovers = query(
        endpoint,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (%s, 'oms')"
        " AND TABLE_NAME LIKE 'duosync_filter_%%'",
        (db,),
    )
    assert not leftovers, leftovers
