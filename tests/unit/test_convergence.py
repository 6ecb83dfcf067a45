"""Converging conflict policies: the spec's rules, each task's part in a pair, and
the decider's verdict for every pair of operations (``sync.convergence``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from duosync.service.phases.twoway import reverse_spec
from duosync.spec import ConflictPolicy, Side
from duosync.specfile import parse_spec
from duosync.sync.convergence import Part, Version, arbiter_side, decide, role_of
from duosync.sync.converging import _seconds, _time
from tests.unit.test_spec import base, error

LWW = ConflictPolicy.LAST_WRITER_WINS
SITE = ConflictPolicy.SITE_PRIORITY


def pair(options: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return base(
        topology="two-way",
        types=["schema", "full", "incremental"],
        options=options,
        **overrides,
    )


# -- the spec --------------------------------------------------------------------------------


def test_converging_policies_need_two_way() -> None:
    msg = error(base(options={"conflict": "last_writer_wins"}))
    assert "makes both sides of a two-way sync converge" in msg
    assert "set topology: two-way" in msg


def test_site_priority_needs_a_winner_and_only_it_takes_one() -> None:
    assert "options.winner: site_priority needs it" in error(pair({"conflict": "site_priority"}))
    assert "only for conflict: site_priority" in error(
        pair({"conflict": "last_writer_wins", "winner": "source"})
    )
    assert "options.winner" in error(pair({"conflict": "site_priority", "winner": "left"}))
    s = parse_spec(pair({"conflict": "site_priority", "winner": "source"}))
    assert s.options.winner is Side.SOURCE


def test_the_two_tasks_of_a_pair_must_agree() -> None:
    msg = error(
        pair({"conflict": "site_priority", "winner": "target"}, reverse={"conflict": "ignore"})
    )
    assert "reverse.conflict: ignore differs from options.conflict: site_priority" in msg
    msg = error(pair({}, reverse={"conflict": "last_writer_wins"}))
    assert "the two tasks of a pair must agree" in msg
    # Unset on the reverse task: it follows the forward task's converging policy.
    s = parse_spec(pair({"conflict": "site_priority", "winner": "target"}))
    assert s.reverse is None
    assert reverse_options_policy(s.model_dump()) is SITE
    # The old policies stay per task, as before.
    parse_spec(pair({"conflict": "ignore"}, reverse={"conflict": "overwrite"}))


def reverse_options_policy(data: dict[str, Any]) -> ConflictPolicy | None:
    from duosync.spec import ReverseOptions

    forward = parse_spec(data)
    return (forward.reverse or ReverseOptions()).as_options(forward.options.conflict).conflict


def test_lww_by_commit_time_needs_an_oceanbase_side() -> None:
    msg = error(
        pair({"conflict": "last_writer_wins"}, target="mariadb://root@other.example.com:3306")
    )
    assert "needs an OceanBase side" in msg
    assert "lww_column" in msg
    parse_spec(
        pair(
            {"conflict": "last_writer_wins", "lww_column": {"shop.orders": "updated_at"}},
            target="mariadb://root@other.example.com:3306",
        )
    )
    assert "give db.table: column" in error(
        pair({"conflict": "last_writer_wins", "lww_column": {"orders": "updated_at"}})
    )
    assert "only for conflict: last_writer_wins" in error(
        pair({"conflict": "overwrite", "lww_column": {"shop.orders": "updated_at"}})
    )


# -- roles ---------------------------------------------------------------------------------


def test_the_winner_side_is_the_arbiter_and_its_writer_decides() -> None:
    s = parse_spec(pair({"conflict": "site_priority", "winner": "source"}))
    assert arbiter_side(s) is Side.SOURCE
    forward, reverse = role_of(s, reverse=False), role_of(s, reverse=True)
    assert forward is not None and forward.part is Part.ECHO
    assert reverse is not None and reverse.part is Part.DECIDER
    assert reverse.pair == "t1.reverse" and not reverse.rowscn  # writes the MariaDB source


def test_lww_arbiter_is_the_oceanbase_side() -> None:
    s = parse_spec(pair({"conflict": "last_writer_wins"}))  # MariaDB -> OceanBase
    assert arbiter_side(s) is Side.TARGET
    forward = role_of(s, reverse=False)
    assert forward is not None and forward.part is Part.DECIDER and forward.rowscn
    flipped = parse_spec(
        pair(
            {"conflict": "last_writer_wins"},
            source="oceanbase://root@a.example.com:2881",
            target="mariadb://root@b.example.com:3306",
        )
    )
    assert arbiter_side(flipped) is Side.SOURCE


def test_lww_columns_follow_renames_to_the_deciders_target() -> None:
    s = parse_spec(
        pair(
            {"conflict": "last_writer_wins", "lww_column": {"shop.orders": "updated_at"}},
            rename={
                "databases": {"shop": "shop_ob"},
                "columns": {"shop.orders": {"updated_at": "mtime"}},
            },
        )
    )
    forward = role_of(s, reverse=False)
    assert forward is not None and forward.lww_columns == {"shop_ob.orders": "mtime"}
    reverse = role_of(s, reverse=True)
    assert reverse is not None and reverse.lww_columns == {"shop.orders": "updated_at"}


def test_old_policies_have_no_role() -> None:
    assert role_of(parse_spec(pair({"conflict": "overwrite"})), reverse=False) is None
    assert role_of(parse_spec(pair({})), reverse=True) is None


def test_reverse_spec_of_a_converging_pair_validates() -> None:
    from duosync.core.catalog import Column, Table

    s = parse_spec(pair({"conflict": "last_writer_wins"}))
    column = Column(name="id", position=1, data_type="int", column_type="int")
    table = Table(database="shop", name="orders", columns=(column,), primary_key=("id",))
    rev = reverse_spec(s, [table])
    assert rev.options.conflict is LWW


# -- verdicts, for each pair of operations ---------------------------------------------------
#
# The decider sees the follower side's change (its net effect in the batch: an insert,
# update or delete) and the arbiter's row. "matches" is whether the arbiter holds what
# the follower held before the change: then the two did not cross and the change
# applies. Otherwise the arbiter changed too, by the operation named second.

T0, T1 = Version(100.0), Version(101.0, 1)  # the change at 100, the arbiter's row at 101

CROSSED = [
    # (follower op, arbiter op): the arbiter's row differs from the change's before image
    ("insert", "insert"),
    ("update", "update"),
    ("update", "delete"),
    ("delete", "update"),
    ("delete", "insert"),  # arbiter deleted and re-inserted
    ("insert", "delete+insert"),
]


@pytest.mark.parametrize(("ours", "theirs"), CROSSED)
def test_site_priority_keeps_the_arbiter_row_in_every_crossed_pair(ours: str, theirs: str) -> None:
    v = decide(SITE, matches=False, incoming=Version(999.0), current=None)
    assert v.conflict and not v.apply, (ours, theirs)


@pytest.mark.parametrize(("ours", "theirs"), CROSSED)
def test_lww_later_change_wins_in_every_crossed_pair(ours: str, theirs: str) -> None:
    later = decide(LWW, matches=False, incoming=Version(102.0), current=T1)
    assert later.conflict and later.apply and "the change is later" in later.reason
    earlier = decide(LWW, matches=False, incoming=T0, current=T1)
    assert earlier.conflict and not earlier.apply and "the target row is later" in earlier.reason


def test_lww_tie_goes_to_the_arbiter() -> None:
    assert not decide(LWW, matches=False, incoming=Version(101.0), current=Version(101.0, 1)).apply


@pytest.mark.parametrize("policy", [LWW, SITE])
def test_uncrossed_change_applies_whatever_its_time(policy: ConflictPolicy) -> None:
    v = decide(policy, matches=True, incoming=Version(1.0), current=None)
    assert v.apply and not v.conflict


def test_change_times() -> None:
    # A delete (no row) and a row without the column are dated by their commit.
    assert _time(None, 1, 55.0) == 55.0
    assert _time((1, None), 1, 55.0) == 55.0
    assert _time((1, datetime(1970, 1, 1, 0, 1, 40)), 1, 55.0) == 100.0
    assert _time((1, datetime(1970, 1, 1, 0, 1, 40)), None, 55.0) == 55.0
    # As the arbiter's text protocol gives it, and numbers as they are.
    assert _seconds(b"1970-01-01 00:01:40.500000") == 100.5
    assert _seconds(7) == 7.0
