"""Unit tests of what incremental sync carries: the transformation of a filtered
table's changes (``sync.row_selection``) and which conditions an event can
evaluate (``spec_filters``). Server-side evaluation is tested end to end
(tests/e2e/test_row_selection.py)."""

from __future__ import annotations

import pytest

from duosync.core.events import Op, RowChange
from duosync.spec_filters import event_problem
from duosync.sync.row_selection import as_filtered

COLS = ("id", "region")


def change(
    op: Op, before: tuple[object, ...] | None, after: tuple[object, ...] | None
) -> RowChange:
    return RowChange(op, "db", "t", COLS, before, after)


@pytest.mark.parametrize(
    ("old", "new", "want"),
    [
        (True, True, Op.UPDATE),  # stays in: the update
        (False, True, Op.INSERT),  # enters: an insert of the new row
        (True, False, Op.DELETE),  # leaves: a delete of the old row
        (False, False, None),  # outside both times: dropped
    ],
)
def test_an_update_becomes_what_the_filtered_target_must_see(
    old: bool, new: bool, want: Op | None
) -> None:
    got = as_filtered(change(Op.UPDATE, (1, "us"), (1, "eu")), old, new)
    if want is None:
        assert got is None
        return
    assert got is not None and got.op is want
    if want is Op.INSERT:
        assert (got.before, got.after) == (None, (1, "eu"))
    if want is Op.DELETE:
        assert (got.before, got.after) == ((1, "us"), None)


def test_an_insert_passes_only_when_its_row_matches() -> None:
    row = change(Op.INSERT, None, (1, "eu"))
    assert as_filtered(row, None, True) is row
    assert as_filtered(row, None, False) is None


@pytest.mark.parametrize(
    "condition",
    [
        "region = 'eu'",
        "LOWER(region) LIKE 'e%' AND id BETWEEN 1 AND 9",
        "`now` > 3",  # a column named now
        "note = 'NOW() RAND()'",  # words inside a string
        "created >= '2024-01-01' AND JSON_EXTRACT(doc, '$.a') = 1",
    ],
)
def test_conditions_on_the_row_alone_are_accepted(condition: str) -> None:
    assert event_problem(condition) is None


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("created > NOW() - INTERVAL 1 DAY", "NOW()"),
        ("created > CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"),
        ("RAND() < 0.5", "RAND()"),
        ("id IN (SELECT id FROM other)", "subquery"),
        ("EXISTS (select 1)", "subquery"),
        ("region = @region", "variable"),
        ("@@sql_mode = ''", "variable"),
        ("owner = CURRENT_USER", "CURRENT_USER"),
        ("uuid ( ) = id", "UUID()"),
    ],
)
def test_what_an_event_cannot_evaluate_is_named(condition: str, says: str) -> None:
    problem = event_problem(condition)
    assert problem is not None and says in problem


def test_a_spec_with_incremental_refuses_a_filter_events_cannot_evaluate() -> None:
    from duosync.errors import ConfigError
    from duosync.specfile import parse_spec

    data = {
        "name": "f",
        "source": "mariadb://root@127.0.0.1:3306",
        "target": "mariadb://root@127.0.0.1:3307",
        "types": ["full", "incremental"],
        "select": {"databases": ["shop"]},
        "filters": {"shop.orders": "placed_at > NOW() - INTERVAL 7 DAY"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_spec(data, "task.yaml")
    assert "filters.shop.orders" in str(caught.value) and "NOW()" in str(caught.value)
    data["types"] = ["full"]  # a full copy evaluates it once: allowed
    assert parse_spec(data, "task.yaml").filters
