"""Recognising table DDL and the tables it names (sync.ddl.parse)."""

from __future__ import annotations

from duosync.sync.ddl import parse


def names(ddl: str, db: str = "d") -> list[tuple[str, str]]:
    stmt = parse(ddl, db)
    assert stmt is not None
    return [(n[2], n[3]) for n in stmt.names]


def test_kinds_and_names() -> None:
    assert parse("CREATE TABLE t (id INT)", "d").kind == "create"  # type: ignore[union-attr]
    assert names("CREATE TABLE IF NOT EXISTS `x`.`t 1` (id INT)") == [("x", "t 1")]
    assert names("ALTER TABLE t ADD COLUMN c INT") == [("d", "t")]
    assert names("ALTER ONLINE TABLE x.t DROP c") == [("x", "t")]
    assert names("DROP TABLE IF EXISTS a, `b`.c") == [("d", "a"), ("b", "c")]
    assert names("RENAME TABLE a TO b, x.c TO y.d") == [
        ("d", "a"),
        ("d", "b"),
        ("x", "c"),
        ("y", "d"),
    ]
    assert names("TRUNCATE TABLE t") == [("d", "t")]
    assert names("truncate t") == [("d", "t")]
    assert names("CREATE UNIQUE INDEX i ON x.t (c)") == [("x", "t")]
    assert names("DROP INDEX IF EXISTS `i` ON t") == [("d", "t")]


def test_backticks_and_comments() -> None:
    assert names("/* note */ ALTER TABLE `we``ird` ADD c INT") == [("d", "we`ird")]
    assert names("DROP TABLE t -- bye") == [("d", "t")]


def test_name_spans_cover_the_text() -> None:
    ddl = "RENAME TABLE `a` TO b"
    stmt = parse(ddl, "d")
    assert stmt is not None
    assert [ddl[s:e] for s, e, _, _ in stmt.names] == ["`a`", "b"]


def test_other_statements_are_not_table_ddl() -> None:
    for ddl in (
        "GRANT ALL ON *.* TO x",
        "CREATE DATABASE d",
        "CREATE VIEW v AS SELECT 1",
        "ANALYZE TABLE t",
    ):
        assert parse(ddl, "d") is None, ddl
