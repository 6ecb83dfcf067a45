"""Text rewriting of ``schema.routines``: definers stripped, events disabled, and
OceanBase's trigger statements cut to their body."""

from __future__ import annotations

from duosync.config import Flavor
from duosync.schema import routines
from duosync.schema.routines import Fate, Kind, SourceObject, TriggerParts


def test_strip_definer_in_each_servers_form() -> None:
    for head in (
        "CREATE DEFINER=`root`@`127.0.0.1` ",  # MariaDB
        "CREATE DEFINER = `root`@`%` ",  # OceanBase, routines
        "CREATE DEFINER = root@% ",  # OceanBase, triggers
        "CREATE DEFINER=`a``b`@`h` ",
    ):
        assert routines.strip_definer(head + "PROCEDURE `p`() BEGIN END") == (
            "CREATE PROCEDURE `p`() BEGIN END"
        )


def test_disabled_event_sets_the_status_clause_only() -> None:
    text = (
        "CREATE EVENT `e` ON SCHEDULE EVERY 1 HOUR STARTS '2026-12-02 03:05:19'"
        " ON COMPLETION NOT PRESERVE {} COMMENT 'ENABLE DO x' DO UPDATE t SET s = 'ENABLE'"
    )
    for status in ("ENABLE", "DISABLE", "DISABLE ON SLAVE"):
        assert routines.disabled_event(text.format(status)) == text.format("DISABLE")
    assert routines.disabled_event("CREATE EVENT e DO SELECT 1") is None


def test_oceanbase_trigger_statement_is_cut_to_its_body() -> None:
    body = "INSERT INTO log (msg) VALUES ('FOR EACH ROW')"
    ob = f"TRIGGER `d`.`t1` AFTER INSERT ON `d`.`t` FOR EACH ROW {body}"
    assert routines._trigger_body(ob) == body
    assert routines._trigger_body(body) == body


def test_plan_fates() -> None:
    parts = TriggerParts("film", "AFTER", "INSERT", "SET @x = 1", 1, "")
    objs = [
        SourceObject(Kind.TRIGGER, "s", "tr", parts),
        SourceObject(Kind.TRIGGER, "s", "other", TriggerParts("x", "AFTER", "INSERT", "", 1, "")),
        SourceObject(Kind.PROCEDURE, "s", "p"),
        SourceObject(Kind.EVENT, "s", "e"),
    ]

    def fates(**kw: object) -> list[Fate]:
        args: dict[str, object] = {
            "routines": True,
            "schema": True,
            "incremental": False,
            "target_flavor": Flavor.MARIADB,
            "tables": {("s", "film")},
            "database_renames": {"s": "t"},
            "rename_table": lambda db, name: ({"s": "t"}.get(db, db), name),
        }
        args.update(kw)
        plans = routines.plan(objs, **args)  # type: ignore[arg-type]
        assert all(p.target_database == "t" for p in plans)
        return [p.fate for p in plans]

    assert fates() == [
        Fate.CREATED_AFTER_COPY,
        Fate.LEFT_BEHIND,
        Fate.CREATED,
        Fate.CREATED_DISABLED,
    ]
    assert fates(incremental=True)[0] is Fate.AT_CUTOVER
    assert set(fates(routines=False)) == {Fate.LEFT_BEHIND}
    assert set(fates(schema=False)) == {Fate.LEFT_BEHIND}
