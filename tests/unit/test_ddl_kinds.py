"""The ``options.ddl`` kind of a source DDL statement (sync.ddl.classify / parse),
and the pure parts of choosing what is carried (verify's kept rows)."""

from __future__ import annotations

import pytest

from duosync.spec import DdlKind, DmlKind
from duosync.sync.ddl import classify, parse
from duosync.verify.compare import Diff
from duosync.verify.report import TableReport, VerifyReport, render
from duosync.verify.scan import KEEP_KEYS, TableState, counted

CREATE, ALTER, DROP, RENAME, TRUNCATE = (
    DdlKind.CREATE,
    DdlKind.ALTER,
    DdlKind.DROP,
    DdlKind.RENAME,
    DdlKind.TRUNCATE,
)


@pytest.mark.parametrize(
    ("ddl", "kinds"),
    [
        ("CREATE TABLE t (id INT)", {CREATE}),
        ("create temporary table if not exists `x`.`t` (id int)", {CREATE}),
        ("CREATE TABLE t2 SELECT * FROM t", {CREATE}),
        ("CREATE UNIQUE INDEX i ON t (c)", {CREATE}),
        ("CREATE OR REPLACE INDEX i ON t (c)", {CREATE}),
        ("CREATE VIEW v AS SELECT 1", {CREATE}),
        (
            "CREATE OR REPLACE ALGORITHM=MERGE DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW v"
            " AS SELECT 1",
            {CREATE},
        ),
        ("ALTER TABLE t ADD COLUMN c INT", {ALTER}),
        ("ALTER ONLINE TABLE x.t DROP COLUMN c, ADD KEY (d)", {ALTER}),
        ("ALTER TABLE t RENAME COLUMN a TO b", {ALTER}),
        ("ALTER TABLE t RENAME INDEX a TO b", {ALTER}),
        ("ALTER TABLE t RENAME KEY a TO b", {ALTER}),
        ("ALTER TABLE t ENGINE=InnoDB", {ALTER}),
        ("ALTER TABLE t ADD c VARCHAR(9) DEFAULT 'x, RENAME TO y'", {ALTER}),
        ("ALTER TABLE t COMMENT 'a (, RENAME TO y'", {ALTER}),
        ("ALTER VIEW v AS SELECT 2", {ALTER}),
        ("ALTER TABLE t RENAME TO u", {RENAME}),
        ("ALTER TABLE t RENAME AS x.u", {RENAME}),
        ("ALTER TABLE t RENAME u;", {RENAME}),
        ("ALTER TABLE t /* why */ RENAME TO u -- done", {RENAME}),
        ("ALTER TABLE t ADD c INT, RENAME TO u", {ALTER, RENAME}),
        ("ALTER TABLE t RENAME TO u, ALGORITHM=COPY, LOCK = SHARED", {RENAME}),
        ("ALTER TABLE t ADD c INT, ALGORITHM=INSTANT", {ALTER}),
        ("ALTER TABLE t RENAME KEY a TO b, RENAME TO u", {ALTER, RENAME}),
        ("DROP TABLE IF EXISTS a, b", {DROP}),
        ("DROP TEMPORARY TABLE t", {DROP}),
        ("DROP INDEX i ON t", {DROP}),
        ("DROP INDEX IF EXISTS `i` ON x.t", {DROP}),
        ("DROP VIEW IF EXISTS v", {DROP}),
        ("RENAME TABLE a TO b, c TO d", {RENAME}),
        ("TRUNCATE TABLE t", {TRUNCATE}),
        ("truncate t", {TRUNCATE}),
        ("GRANT ALL ON *.* TO x", set()),
        ("CREATE DATABASE d", set()),
        ("DROP DATABASE d", set()),
        ("CREATE PROCEDURE p() BEGIN END", set()),
        ("ANALYZE TABLE t", set()),
    ],
)
def test_each_statement_has_its_kinds(ddl: str, kinds: set[DdlKind]) -> None:
    assert classify(ddl) == kinds


def test_a_table_rename_in_alter_names_the_new_table() -> None:
    """So that the rename is translated to the target's names, and the mapper
    forgets both tables."""
    ddl = "ALTER TABLE t ADD c INT, RENAME TO x.`u 1`"
    stmt = parse(ddl, "d")
    assert stmt is not None
    assert [(db, t) for _, _, db, t in stmt.names] == [("d", "t"), ("x", "u 1")]
    assert [ddl[s:e] for s, e, _, _ in stmt.names] == ["t", "x.`u 1`"]
    column = parse("ALTER TABLE t RENAME COLUMN a TO b", "d")
    assert column is not None and [n[3] for n in column.names] == ["t"]


def test_views_are_classified_but_not_table_ddl() -> None:
    # views are not synced (sync.ddl): no statement to apply, yet a kind for the spec
    assert parse("CREATE VIEW v AS SELECT 1", "d") is None
    assert classify("DROP VIEW v") == {DROP}


# -- verify: rows kept by options.dml ---------------------------------------------------------


def _state(carried: set[DmlKind]) -> TableState:
    state = TableState(TableReport("d.t", "d.t", key=("id",)), None, carried=frozenset(carried))
    state.diff = Diff(
        missing={("1",): "a", ("2",): "b"},
        extra={("5",): "e"},
        different={("7",): ("v",)},
    )
    return state


def test_every_kind_carried_keeps_nothing() -> None:
    state = _state(set(DmlKind))
    state.set_aside()
    counted(state, 20)
    r = state.report
    assert (r.missing, r.extra, r.different, r.kept) == (2, 1, 1, 0)
    assert r.differs


@pytest.mark.parametrize(
    ("carried", "kept", "left"),
    [
        ({DmlKind.INSERT, DmlKind.UPDATE}, (0, 1, 0), (2, 0, 1)),
        ({DmlKind.UPDATE, DmlKind.DELETE}, (2, 0, 0), (0, 1, 1)),
        ({DmlKind.INSERT, DmlKind.DELETE}, (0, 0, 1), (2, 1, 0)),
        ({DmlKind.INSERT}, (0, 1, 1), (2, 0, 0)),
    ],
)
def test_kinds_not_carried_are_kept_apart(
    carried: set[DmlKind], kept: tuple[int, int, int], left: tuple[int, int, int]
) -> None:
    state = _state(carried)
    state.set_aside()
    counted(state, 20)
    r = state.report
    assert (r.kept_missing, r.kept_extra, r.kept_different) == kept
    assert (r.missing, r.extra, r.different) == left
    assert len(state.diff) == sum(left)  # what the recheck and --fix see


def test_only_kept_rows_is_equal_and_says_so() -> None:
    state = _state({DmlKind.INSERT, DmlKind.UPDATE})
    state.diff = Diff(extra={("5",): "e", ("6",): "f"})
    state.overflow["extra"] = 3  # beyond KEEP_KEYS: counted all the same
    state.set_aside()
    counted(state, 1)
    r = state.report
    assert not r.differs and r.kept == r.kept_extra == 5 and r.kept_extra_keys == [("5",)]
    assert state.overflow["extra"] == 0 and not state.truncated
    report = VerifyReport("task", "a", "b", [r])
    assert not report.differs and report.kept == 5
    lines = render(report)
    assert lines[0] == "d.t: equal (0 rows, 0 chunks; kept by options.dml: 5 rows)"
    assert lines[1] == (
        "  kept by options.dml: 5 extra (the task does not carry deletes) (id): 5 and 4 more"
    )
    assert lines[-1].endswith("source and target are equal (kept by options.dml: 5 rows)")


def test_kept_rows_beyond_the_cap_are_counted() -> None:
    state = _state({DmlKind.INSERT, DmlKind.UPDATE})
    state.kept.extra = {(str(i),): "" for i in range(KEEP_KEYS)}
    state.set_aside()
    counted(state, 0)
    assert state.report.kept_extra == KEEP_KEYS + 1
    assert len(state.kept.extra) == KEEP_KEYS
