"""Unit tests for duosync.spec: the YAML task spec, its validation and its queries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from duosync.config import Flavor
from duosync.core.catalog import Catalog, Column, Database, ServerInfo, Table, View
from duosync.errors import ConfigError
from duosync.spec import (
    MigrationType,
    NonEmptyTarget,
    Options,
    Renames,
    Selection,
    StorageFormat,
    TaskSpec,
    same_server,
)
from duosync.specfile import load_spec, parse_spec

SECRET = "S3cretPw!"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def base(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t1",
        "source": f"mariadb://alice:{SECRET}@src.example.com:3306",
        "target": "oceanbase://root@dst.example.com:2881",
        "select": {"databases": ["shop"]},
    }
    data.update(overrides)
    return data


def spec(**overrides: Any) -> TaskSpec:
    return parse_spec(base(**overrides), "task.yaml")


def error(data: object, origin: str = "task.yaml") -> str:
    """The message of the ConfigError parse_spec raises for *data*."""
    with pytest.raises(ConfigError) as info:
        parse_spec(data, origin)
    text = str(info.value)
    assert SECRET not in text
    assert SECRET not in repr(info.value)
    return text


def spec_error(**overrides: Any) -> str:
    return error(base(**overrides))


def _assign(obj: object, field: str, value: object) -> None:
    setattr(obj, field, value)


# -- Selection.matches ---------------------------------------------------------------------


def test_whole_database_selects_every_object_of_it_only() -> None:
    sel = Selection(databases=("shop",))
    assert sel.matches("shop", "orders")
    assert sel.matches("shop", "paid_orders")
    assert not sel.matches("shop2", "orders")
    assert not sel.matches("sho", "orders")
    assert not sel.matches("Shop", "orders")  # case-sensitive


def test_specific_objects_select_exactly_those() -> None:
    sel = Selection(objects=("shop.orders", "crm.customers"))
    assert sel.matches("shop", "orders")
    assert sel.matches("crm", "customers")
    assert not sel.matches("shop", "customers")
    assert not sel.matches("crm", "orders")
    assert not sel.matches("shop", "orders2")
    assert not sel.matches("shop", "Orders")


@pytest.mark.parametrize(
    ("database", "name", "expected"),
    [
        ("sales_2024", "order_1", True),
        ("sales_eu", "order_b", True),
        ("sales_", "order_x", True),  # '*' matches an empty run
        ("sales_2024", "order_12", False),  # '?' is exactly one character
        ("sales_2024", "order_", False),
        ("sales2024", "order_1", False),
        ("SALES_2024", "order_1", False),  # case-sensitive
        ("sales_2024", "ORDER_1", False),
        ("xsales_2024", "order_1", False),  # anchored at both ends
        ("sales_2024", "order_1_old", False),
    ],
)
def test_include_wildcards(database: str, name: str, expected: bool) -> None:
    sel = Selection(include=("sales_*.order_?",))
    assert sel.matches(database, name) is expected


def test_include_character_class() -> None:
    sel = Selection(include=("db[12].t[a-c]",))
    assert sel.matches("db1", "ta")
    assert sel.matches("db2", "tc")
    assert not sel.matches("db3", "ta")
    assert not sel.matches("db1", "td")


def test_star_never_runs_across_the_dot() -> None:
    # One pattern over "db.name" would let 'shop*' reach other databases' tables.
    sel = Selection(include=("a*.b",))
    assert sel.matches("abc", "b")
    assert not sel.matches("a", "x.b")
    assert not sel.matches("a", "b.c")


def test_exclude_overrides_every_way_of_selecting() -> None:
    sel = Selection(
        databases=("shop",),
        objects=("crm.customers",),
        include=("sales_*.*",),
        exclude=("shop.tmp_*", "crm.customers", "*.*_bak"),
    )
    assert sel.matches("shop", "orders")
    assert not sel.matches("shop", "tmp_import")  # removed from a whole database
    assert not sel.matches("crm", "customers")  # removed from specific objects
    assert sel.matches("sales_eu", "orders")
    assert not sel.matches("sales_eu", "orders_bak")  # removed from a rule
    assert not sel.matches("shop", "orders_bak")


def test_rules_never_match_system_databases() -> None:
    sel = Selection(include=("*.*",))
    assert sel.matches("shop", "orders")
    for database in ("mysql", "information_schema", "INFORMATION_SCHEMA", "sys", "oms"):
        assert not sel.matches(database, "user"), database
    assert not sel.matches("oceanbase", "__all_table")


def test_candidate_databases_follow_available_order() -> None:
    sel = Selection(
        databases=("shop",),
        objects=("crm.customers",),
        include=("sales_*.order_?",),
        exclude=("sales_old.*", "shop.tmp_*"),
    )
    available = ["mysql", "sales_old", "crm", "sales_eu", "shop", "hr", "sales_eu", "oms"]
    # sales_old is excluded as a whole; shop only in part, so it is still inspected;
    # a duplicate in the input is listed once.
    assert sel.candidate_databases(available) == ["crm", "sales_eu", "shop"]
    assert sel.candidate_databases([]) == []
    assert Selection(include=("*.*",)).candidate_databases(["mysql", "a", "sys", "b"]) == [
        "a",
        "b",
    ]


# -- Renames ---------------------------------------------------------------------------------


def test_renames_table_precedence() -> None:
    ren = Renames(
        databases={"shop": "shop_v2"},
        tables={"shop.orders": "orders_v2", "shop.customers": "crm.clients", "hr.staff": "people"},
    )
    # nothing listed: unchanged
    assert ren.table("other", "t") == ("other", "t")
    # database rename only
    assert ren.table("shop", "items") == ("shop_v2", "items")
    # short table rename stays in the database's target
    assert ren.table("shop", "orders") == ("shop_v2", "orders_v2")
    # qualified table rename wins over the database rename
    assert ren.table("shop", "customers") == ("crm", "clients")
    # short rename in a database that is not renamed
    assert ren.table("hr", "staff") == ("hr", "people")
    # names are case-sensitive
    assert ren.table("shop", "Orders") == ("shop_v2", "Orders")


def test_renames_column() -> None:
    ren = Renames(columns={"shop.customers": {"Name": "full_name", "mail": "email"}})
    assert ren.column("shop", "customers", "Name") == "full_name"
    assert ren.column("shop", "customers", "name") == "full_name"  # case-insensitive
    assert ren.column("shop", "customers", "MAIL") == "email"
    assert ren.column("shop", "customers", "id") == "id"
    assert ren.column("shop", "orders", "name") == "name"  # other table untouched
    assert ren.column("crm", "customers", "mail") == "mail"


def test_renames_default_is_identity() -> None:
    ren = Renames()
    assert ren.table("a", "b") == ("a", "b")
    assert ren.column("a", "b", "c") == "c"


def test_column_rename_collisions_are_refused() -> None:
    msg = spec_error(rename={"columns": {"shop.t": {"a": "x", "b": "X"}}})
    assert msg.startswith("task.yaml: rename.columns: shop.t: columns 'a' and 'b' would both")
    msg = spec_error(rename={"columns": {"shop.t": {"a": "x", "A": "y"}}})
    assert "'a' and 'A' are the same column" in msg


# -- TaskSpec basics -------------------------------------------------------------------------


def test_minimal_spec_and_defaults() -> None:
    s = spec()
    assert s.name == "t1"
    assert s.source.flavor is Flavor.MARIADB
    assert s.source.password is not None
    assert s.source.password.get_secret_value() == SECRET
    assert s.target.flavor is Flavor.OCEANBASE
    assert s.types == (MigrationType.SCHEMA, MigrationType.FULL)
    assert s.select == Selection(databases=("shop",))
    assert s.rename == Renames()
    assert s.filters == {}
    opts = s.options
    assert opts == Options()
    assert (opts.read_concurrency, opts.write_concurrency) == (4, 4)
    assert opts.rate_rows_per_second is None
    assert opts.rate_bytes_per_second is None
    assert opts.non_empty_target is NonEmptyTarget.STOP
    assert opts.post_indexing is False
    assert opts.oceanbase_storage is StorageFormat.DEFAULT
    assert opts.chunk_rows == 10000
    assert SECRET not in repr(s)
    assert SECRET not in str(s)


def test_endpoint_as_mapping_with_password_env() -> None:
    s = spec(source={"url": "mariadb://migrator@db1:3307", "password_env": "SRC_PW"})
    assert s.source.password_env == "SRC_PW"
    assert s.source.port == 3307
    assert s.source.password is None


def test_spec_is_frozen() -> None:
    s = spec()
    with pytest.raises(ValidationError):
        _assign(s, "name", "other")
    with pytest.raises(ValidationError):
        _assign(s.options, "read_concurrency", 8)


@pytest.mark.parametrize("name", ["a", "shop-to-ob_2.v1", "x" * 64])
def test_valid_task_names(name: str) -> None:
    assert spec(name=name).name == name


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "semi;colon", "ünïcode"])
def test_invalid_task_names(name: str) -> None:
    msg = spec_error(name=name)
    assert msg.startswith("task.yaml: name: use 1 to 64 letters, digits")


def test_types_are_stored_in_phase_order() -> None:
    s = spec(types=["incremental", "full", "schema"])
    assert s.types == (MigrationType.SCHEMA, MigrationType.FULL, MigrationType.INCREMENTAL)
    assert spec(types=["incremental"]).types == (MigrationType.INCREMENTAL,)


def test_types_must_be_non_empty_distinct_and_known() -> None:
    assert spec_error(types=[]) == (
        "task.yaml: types: give at least one of schema, full, incremental"
    )
    assert (
        spec_error(types=["full", "schema", "full"]) == "task.yaml: types: 'full' is listed twice"
    )
    msg = spec_error(types=["schema", "Full"])
    assert msg.startswith("task.yaml: types[1]: Input should be 'schema', 'full' or 'incremental'")


# -- selection validation ----------------------------------------------------------------------


def test_selection_must_select_something() -> None:
    empty: list[dict[str, list[str]]] = [{}, {"exclude": ["shop.*"]}, {"databases": []}]
    for select in empty:
        msg = spec_error(select=select)
        assert msg.startswith("task.yaml: select: selects nothing"), msg
        assert "databases, objects or include" in msg


def test_select_is_required() -> None:
    data = base()
    del data["select"]
    assert error(data) == "task.yaml: select: Field required"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("shop", "object 'shop' must be 'db.name'"),
        ("shop.orders.v2", "must be 'db.name'; a name containing a dot is not supported"),
        (".orders", "the database part of object is empty"),
        ("shop.", "the name part of object is empty"),
        ("shop. orders", "has spaces around it"),
        ("shop.order_*", "names one object; use include: for wildcards"),
        ("mysql.user", "'mysql' is a system database"),
    ],
)
def test_objects_must_be_db_dot_name(entry: str, expected: str) -> None:
    msg = spec_error(select={"objects": ["crm.customers", entry]})
    assert msg.startswith("task.yaml: select.objects[1]: "), msg
    assert expected in msg


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("", "database name is empty"),
        ("a.b", "a name containing a dot is not supported"),
        ("shop*", "use include: ['db_pattern.*'] for wildcards"),
        ("information_schema", "is a system database; it cannot be migrated"),
        ("OMS", "is a system database"),
    ],
)
def test_database_entries(entry: str, expected: str) -> None:
    msg = spec_error(select={"databases": [entry]})
    assert msg.startswith("task.yaml: select.databases[0]: ")
    assert expected in msg


@pytest.mark.parametrize("rule", ["shop*", "a.b.c", ".t", "db."])
def test_rules_need_one_dot_and_two_parts(rule: str) -> None:
    msg = spec_error(select={"include": ["ok.*"], "exclude": [rule]})
    assert msg.startswith("task.yaml: select.exclude[0]: ")


def test_rule_naming_a_system_database_literally_is_refused() -> None:
    msg = spec_error(select={"include": ["mysql.*"]})
    assert msg.startswith("task.yaml: select.include[0]: database 'mysql' is a system database")
    assert spec(select={"include": ["my*.*"]}).select.include == ("my*.*",)


def test_non_text_yaml_values_get_a_hint() -> None:
    msg = spec_error(select={"databases": [False]})
    assert msg == (
        "task.yaml: select.databases[0]: Input should be a valid string"
        " (YAML did not read this as text: quote it)"
    )


# -- rename validation -------------------------------------------------------------------------


def test_rename_keys_must_be_db_dot_table() -> None:
    msg = spec_error(rename={"tables": {"orders": "orders_v2"}})
    assert msg.startswith("task.yaml: rename.tables: key 'orders': table 'orders' must be")
    msg = spec_error(rename={"columns": {"shop.a.b": {"x": "y"}}})
    assert msg.startswith("task.yaml: rename.columns: key 'shop.a.b': ")
    assert "a name containing a dot is not supported" in msg
    msg = spec_error(rename={"tables": {"shop.order_*": "x"}})
    assert "wildcards are not supported here" in msg


def test_rename_targets_are_checked() -> None:
    msg = spec_error(rename={"tables": {"shop.a": "x.y.z"}})
    assert msg.startswith("task.yaml: rename.tables['shop.a']: rename target 'x.y.z' must be")
    msg = spec_error(rename={"databases": {"shop": "mysql"}})
    assert msg.startswith("task.yaml: rename.databases.shop: database 'mysql' is a system")
    msg = spec_error(rename={"tables": {"shop.a": ""}})
    assert msg == "task.yaml: rename.tables['shop.a']: rename target is empty"


def test_two_tables_renamed_to_one_target_are_refused_naming_both() -> None:
    msg = spec_error(rename={"tables": {"shop.a": "c", "shop.b": "c"}})
    assert msg == "task.yaml: rename: shop.a and shop.b would both become shop.c on the target"
    # across databases, one short and one qualified target
    msg = spec_error(
        select={"databases": ["shop", "crm"]},
        rename={"databases": {"crm": "shop"}, "tables": {"shop.a": "b"}},
        filters={"crm.b": "id > 0"},
    )
    assert msg == "task.yaml: rename: shop.a and crm.b would both become shop.b on the target"


def test_rename_onto_a_selected_unrenamed_object_collides() -> None:
    msg = spec_error(select={"objects": ["shop.a", "shop.b"]}, rename={"tables": {"shop.a": "b"}})
    assert msg == "task.yaml: rename: shop.a and shop.b would both become shop.b on the target"
    # two databases merged into one: same-named selected objects collide
    msg = spec_error(select={"objects": ["a.t", "b.t"]}, rename={"databases": {"a": "c", "b": "c"}})
    assert msg == "task.yaml: rename: a.t and b.t would both become c.t on the target"


def test_renames_of_objects_never_selected_are_allowed() -> None:
    s = spec(
        select={"objects": ["shop.orders"]},
        rename={
            "databases": {"nowhere": "elsewhere"},
            "tables": {"other.x": "y"},
            "columns": {"other.x": {"a": "b"}},
        },
    )
    assert s.rename.table("other", "x") == ("other", "y")
    assert s.rename.table("nowhere", "t") == ("elsewhere", "t")


def test_swapping_table_names_is_fine() -> None:
    s = spec(rename={"tables": {"shop.a": "b", "shop.b": "a"}})
    assert s.rename.table("shop", "a") == ("shop", "b")
    assert s.rename.table("shop", "b") == ("shop", "a")


# -- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "status = 'paid'",
        "note = 'a;b' OR title = \"x;y\" OR `odd;col` = 1",
        "note = 'it''s; fine'",
        "note = 'back\\'slash;'",
        "(a = 1 OR b = 2) AND c IN (1, 2)",
        "where_flag = 1",  # a column whose name starts with 'where'
        "a--1 > 0",  # minus minus one, not a comment
        "tag = '#1' AND path = '/*x*/'",
    ],
)
def test_valid_filters(condition: str) -> None:
    s = spec(filters={"shop.orders": condition})
    assert s.filter_for("shop", "orders") == condition


def test_filter_is_stripped_and_looked_up_by_table() -> None:
    s = spec(filters={"shop.orders": "  id > 10 \n"})
    assert s.filter_for("shop", "orders") == "id > 10"
    assert s.filter_for("shop", "customers") is None
    assert s.filter_for("crm", "orders") is None


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("", "a row filter must not be empty"),
        ("   ", "a row filter must not be empty"),
        ("WHERE id > 1", "write only the condition, without the word WHERE"),
        ("  where(id > 1)", "write only the condition, without the word WHERE"),
        ("id > 1; DROP TABLE t", "';' outside quotes is not allowed"),
        ("id > 1;", "';' outside quotes is not allowed"),
        ("note = 'a' ; x", "';' outside quotes is not allowed"),
        ("id > 1 -- all", "must not contain SQL comments"),
        ("id > 1 #x", "must not contain SQL comments"),
        ("id > 1 /* x */", "must not contain SQL comments"),
        ("id > 1) OR (1 = 1", "a ')' without its '('"),
        ("(id > 1", "a '(' without its ')'"),
        ("note = 'open", "unterminated ' quote"),
    ],
)
def test_invalid_filters(condition: str, expected: str) -> None:
    msg = spec_error(filters={"shop.orders": condition})
    assert msg.startswith("task.yaml: filters['shop.orders']: "), msg
    assert expected in msg


def test_filter_keys_must_be_db_dot_table() -> None:
    msg = spec_error(filters={"orders": "id > 1"})
    assert msg == "task.yaml: filters: key 'orders': table 'orders' must be 'db.name'"


# -- same server -------------------------------------------------------------------------------


def test_same_server_without_rename_is_refused() -> None:
    msg = spec_error(target="mariadb://bob@src.example.com:3306")
    assert msg.startswith("task.yaml: target: source and target are the same table")
    assert "mariadb://alice@src.example.com:3306" in msg


def test_same_server_whole_database_needs_a_database_rename() -> None:
    same = {"target": "mariadb://bob@src.example.com:3306"}
    msg = spec_error(rename={"tables": {"shop.a": "b"}}, **same)
    assert "source and target are the same table: every table of database 'shop'" in msg
    s = spec(rename={"databases": {"shop": "shop_copy"}}, **same)
    assert s.rename.table("shop", "orders") == ("shop_copy", "orders")


def test_same_server_rename_onto_itself_is_refused() -> None:
    msg = spec_error(
        target="mysql://bob@src.example.com",  # mysql:// may name the same MariaDB server
        select={"objects": ["shop.a", "shop.b"]},
        rename={"tables": {"shop.a": "a2", "shop.b": "shop.b"}},
    )
    assert msg.startswith("task.yaml: target: source and target are the same table: shop.b")


def test_same_server_object_left_unrenamed_is_refused() -> None:
    msg = spec_error(
        source="mariadb://alice@localhost:3306",
        target="mariadb://alice@127.0.0.1:3306",
        select={"objects": ["shop.a", "shop.b"]},
        rename={"tables": {"shop.a": "a2"}},
    )
    assert "source and target are the same table: shop.b" in msg


def test_different_port_or_family_is_another_server() -> None:
    s = spec(target="mariadb://alice@src.example.com:3307")
    assert not same_server(s.source, s.target)
    s = spec(target="oceanbase://alice@src.example.com:3306")
    assert not same_server(s.source, s.target)
    s = spec(target="mysql://x@SRC.example.com:3306", rename={"databases": {"shop": "s2"}})
    assert same_server(s.source, s.target)


# -- options -----------------------------------------------------------------------------------


def test_all_options() -> None:
    s = spec(
        options={
            "read_concurrency": 512,
            "write_concurrency": 1,
            "rate_rows_per_second": 1000,
            "rate_bytes_per_second": 1 << 20,
            "non_empty_target": "ignore",
            "post_indexing": True,
            "oceanbase_storage": "column",
            "chunk_rows": 100,
        }
    )
    o = s.options
    assert (o.read_concurrency, o.write_concurrency) == (512, 1)
    assert (o.rate_rows_per_second, o.rate_bytes_per_second) == (1000, 1 << 20)
    assert o.non_empty_target is NonEmptyTarget.IGNORE
    assert o.post_indexing is True
    assert o.oceanbase_storage is StorageFormat.COLUMN
    assert o.chunk_rows == 100
    assert spec(options={"chunk_rows": 1_000_000}).options.chunk_rows == 1_000_000


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("read_concurrency", 513, "Input should be less than or equal to 512"),
        ("read_concurrency", 0, "Input should be greater than or equal to 1"),
        ("write_concurrency", 1000, "Input should be less than or equal to 512"),
        ("rate_rows_per_second", 0, "Input should be greater than 0"),
        ("rate_bytes_per_second", -5, "Input should be greater than 0"),
        ("chunk_rows", 99, "Input should be greater than or equal to 100"),
        ("chunk_rows", 1_000_001, "Input should be less than or equal to 1000000"),
        ("non_empty_target", "overwrite", "Input should be 'stop' or 'ignore'"),
        ("oceanbase_storage", "columnar", "Input should be 'default', 'row', 'column' or"),
        ("read_concurrency", "many", "Input should be a valid integer"),
    ],
)
def test_option_bounds(field: str, value: object, expected: str) -> None:
    msg = spec_error(options={field: value})
    assert msg.startswith(f"task.yaml: options.{field}: {expected}"), msg


def test_error_message_names_origin_and_field_path_exactly() -> None:
    msg = error(base(options={"read_concurrency": 1000}), origin="task.yaml")
    assert msg == "task.yaml: options.read_concurrency: Input should be less than or equal to 512"
    with pytest.raises(ConfigError) as info:
        parse_spec(base(options={"read_concurrency": 1000}))
    assert str(info.value).startswith("<spec>: options.read_concurrency: ")


def test_several_errors_are_listed_together() -> None:
    msg = spec_error(
        options={"read_concurrency": 0, "write_concurrency": 0, "chunk_rows": 1, "bogus": 1}
    )
    assert msg.startswith("task.yaml: options.read_concurrency: ")
    assert "; options.write_concurrency: " in msg
    assert msg.endswith("; and 1 more")


def test_post_indexing_needs_schema_and_full() -> None:
    msg = spec_error(types=["full"], options={"post_indexing": True})
    assert msg.startswith("task.yaml: options.post_indexing: needs both 'schema' and 'full'")
    assert spec(options={"post_indexing": True}).options.post_indexing


def test_oceanbase_storage_only_for_an_oceanbase_target() -> None:
    msg = spec_error(target="mariadb://bob@other:3306", options={"oceanbase_storage": "row"})
    assert msg.startswith("task.yaml: options.oceanbase_storage: applies only to an OceanBase")


# -- unknown keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"typs": ["full"]}, "task.yaml: typs: unknown field (did you mean types?)"),
        ({"tasks": 1}, "task.yaml: tasks: unknown field (allowed: filters, name, options,"),
        ({"select": {"databases": ["shop"], "tables": ["x"]}}, "task.yaml: select.tables:"),
        (
            {"rename": {"table": {}}},
            "task.yaml: rename.table: unknown field (did you mean tables?)",
        ),
        ({"options": {"readconcurrency": 2}}, "task.yaml: options.readconcurrency: unknown"),
        (
            {"source": {"url": "mariadb://u@h", "pasword_env": "X"}},
            "task.yaml: source.pasword_env: unknown field (did you mean password_env?)",
        ),
    ],
)
def test_unknown_keys_are_refused_with_their_path(overrides: dict[str, Any], expected: str) -> None:
    assert spec_error(**overrides).startswith(expected)


def test_unknown_key_without_a_close_match_lists_allowed_fields() -> None:
    msg = spec_error(select={"databases": ["shop"], "zzz": 1})
    assert msg == (
        "task.yaml: select.zzz: unknown field"
        " (allowed: databases, exclude, import, include, objects)"
    )


# -- passwords never in errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"source": f"mariadb://alice:{SECRET}@h:99999"},
        {"source": f"mariadb://alice:{SECRET}@h/a/b"},
        {"source": f"postgres://alice:{SECRET}@h"},
        {"source": {"url": f"mariadb://alice:{SECRET}@h", "password_env": "X"}},
        {"source": {"url": f"mariadb://alice:{SECRET}@h", "port": "x"}},
        {"source": {f"mariadb://alice:{SECRET}@h": None}},
        {"target": f"mariadb://alice:{SECRET}@src.example.com:3306"},
        {"select": {"objects": [f"mariadb://alice:{SECRET}@h"]}},
        {"filters": {f"mariadb://alice:{SECRET}@h": "x"}},
        {"name": f"mariadb://alice:{SECRET}@h"},
        {"options": {"read_concurrency": 0}},
    ],
)
def test_no_password_in_any_error(overrides: dict[str, Any]) -> None:
    msg = spec_error(**overrides)  # spec_error asserts the secret is absent
    assert msg.startswith("task.yaml: ")


def test_no_password_in_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(f"name: t\nsource: mariadb://alice:{SECRET}@h: [\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert SECRET not in str(info.value)
    assert str(info.value).startswith(f"{path}: line 2, column ")


# -- catalog queries ---------------------------------------------------------------------------


def _table(database: str, name: str, *columns: str) -> Table:
    cols = tuple(
        Column(name=c, position=i, data_type="int", column_type="int(11)")
        for i, c in enumerate(columns or ("id",), start=1)
    )
    return Table(database=database, name=name, columns=cols, primary_key=(cols[0].name,))


def _view(database: str, name: str) -> View:
    return View(database=database, name=name, definition="select 1")


def _catalog() -> Catalog:
    server = ServerInfo(
        flavor="mariadb",
        version="10.11.6",
        version_string="10.11.6-MariaDB",
        capture="binlog",
        log_bin=True,
        time_zone="+00:00",
    )
    return Catalog(
        endpoint="mariadb://root@127.0.0.1:3306",
        server=server,
        databases=(
            Database(
                name="crm",
                charset="utf8mb4",
                collation="utf8mb4_general_ci",
                tables=(_table("crm", "customers"), _table("crm", "leads")),
                views=(_view("crm", "active_customers"),),
            ),
            Database(
                name="shop",
                charset="utf8mb4",
                collation="utf8mb4_general_ci",
                tables=(
                    _table("shop", "orders", "id", "status", "note"),
                    _table("shop", "customers", "id", "name", "mail"),
                    _table("shop", "tmp_import"),
                ),
                views=(_view("shop", "paid_orders"), _view("shop", "tmp_view")),
            ),
            Database(
                name="sales_eu",
                charset="utf8mb4",
                collation="utf8mb4_general_ci",
                tables=(_table("sales_eu", "order_1"), _table("sales_eu", "order_10")),
            ),
        ),
    )


def test_selected_tables_and_views_in_catalog_order() -> None:
    s = spec(
        select={
            "databases": ["shop"],
            "objects": ["crm.leads", "crm.active_customers"],
            "include": ["sales_*.order_?"],
            "exclude": ["shop.tmp_*"],
        }
    )
    cat = _catalog()
    assert [t.qualified for t in s.selected_tables(cat)] == [
        "crm.leads",
        "shop.orders",
        "shop.customers",
        "sales_eu.order_1",
    ]
    assert [v.qualified for v in s.selected_views(cat)] == [
        "crm.active_customers",
        "shop.paid_orders",
    ]
    assert all(isinstance(t, Table) for t in s.selected_tables(cat))
    assert all(isinstance(v, View) for v in s.selected_views(cat))


def test_check_catalog_accepts_a_clean_selection() -> None:
    s = spec(
        select={"databases": ["shop"]},
        rename={"columns": {"shop.customers": {"mail": "email"}}},
    )
    s.check_catalog(_catalog())


def test_check_catalog_finds_collisions_the_file_cannot_show() -> None:
    # crm.customers and shop.customers both land in one database: only the catalog
    # says both exist.
    s = spec(select={"databases": ["crm", "shop"]}, rename={"databases": {"crm": "shop"}})
    with pytest.raises(ConfigError) as info:
        s.check_catalog(_catalog())
    msg = str(info.value)
    assert "crm.customers and shop.customers would both become shop.customers" in msg
    assert msg.startswith("task t1, endpoint mariadb://alice@src.example.com:3306: ")
    assert SECRET not in msg


def test_check_catalog_same_server_and_column_collisions() -> None:
    s = spec(
        target="mariadb://bob@src.example.com:3306",
        select={"include": ["sh*.*"]},
        rename={
            "tables": {"shop.orders": "orders2"},
            "columns": {"shop.orders": {"note": "status"}},
        },
    )
    with pytest.raises(ConfigError) as info:
        s.check_catalog(_catalog())
    msg = str(info.value)
    assert "source and target are the same table: shop.customers" in msg
    assert "source and target are the same table: shop.paid_orders" in msg
    problems = msg.split(": ", 1)[1].split("; ")
    # renamed, so not copied onto itself; sales_eu is not matched by 'sh*'
    assert "source and target are the same table: shop.orders" not in problems
    assert not any("sales_eu" in p for p in problems)
    assert "shop.orders: columns status and note would both become status" in msg


# -- files -------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_spec_reads_yaml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
name: demo
source: {url: "mariadb://u@h1", password_env: SRC_PW}
target: oceanbase://root@h2
types: [full, schema]
select:
  databases: [shop]
  include: ["sales_*.order_?"]
filters:
  shop.orders: "status = 'paid'"
options:
  read_concurrency: 8
""",
    )
    s = load_spec(path)
    assert s.name == "demo"
    assert s.types == (MigrationType.SCHEMA, MigrationType.FULL)
    assert s.source.password_env == "SRC_PW"
    assert s.filter_for("shop", "orders") == "status = 'paid'"
    assert s.options.read_concurrency == 8


def test_load_spec_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: t\nsource: mariadb://u@h\ntarget: oceanbase://r@h\n"
        "select: {databases: [shop]}\noptions: {read_concurrency: 1000}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: options.read_concurrency: Input should be less than or equal to 512"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: no such file"


def test_directory_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_spec(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert info.value.message == f"{path}: the spec is empty"


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nselect:\n  databases: [shop\noptions: {}\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line ")
    assert "invalid YAML" in msg
    line = int(msg.split("line ")[1].split(",")[0])
    assert line in (3, 4)


def test_yaml_tab_indent_error_points_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nselect:\n\tdatabases: [shop]\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: line 3, column 1: invalid YAML: ")


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: t\nfilters:\n  shop.a: x > 1\n  shop.a: y > 2\n",
    )
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: line 4, column 3: invalid YAML: key 'shop.a' is given twice"


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    # '<<' merges defaults; overriding one of them is not a duplicate key
    path = _write(
        tmp_path,
        "name: t\nsource: mariadb://u@h\ntarget: oceanbase://r@h\nselect: {databases: [s]}\n"
        "options:\n  <<: {read_concurrency: 2, write_concurrency: 2}\n  read_concurrency: 9\n",
    )
    s = load_spec(path)
    assert (s.options.read_concurrency, s.options.write_concurrency) == (9, 2)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: expected a mapping of fields")
    assert str(info.value).endswith(f"at the top level, not {kind}")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_bytes(b"name: \xff\xfe\x00t\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: is not UTF-8 text"


def test_parse_spec_refuses_none_and_non_mappings() -> None:
    assert error(None).startswith("task.yaml: the spec is empty")
    assert error(42).endswith("not a int")
    assert error({}).startswith("task.yaml: name: Field required; source: Field required")


# -- examples ----------------------------------------------------------------------------------


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def test_examples_exist() -> None:
    names = {p.name for p in _example_files()}
    assert {"full-migration.yaml", "mariadb-to-mariadb.yaml"} <= names


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    s = load_spec(path)
    assert isinstance(s, TaskSpec)
    assert s.source.password is None  # examples never carry a password


def test_full_migration_example_uses_every_feature() -> None:
    s = load_spec(EXAMPLES / "full-migration.yaml")
    assert s.source.flavor is Flavor.MARIADB
    assert s.source.password_env
    assert s.target.flavor is Flavor.OCEANBASE
    assert s.select.databases == ("shop",)
    assert s.select.include and s.select.exclude
    assert s.rename.tables
    assert s.filters
    # every option is written out in the example
    text = (EXAMPLES / "full-migration.yaml").read_text()
    for field in Options.model_fields:
        assert re.search(rf"^  (# )?{field}:", text, re.M), field
    assert s.rename.table("shop", "orders") == ("shop_v2", "orders")
    assert s.select.matches("shop", "orders")
    assert not s.select.matches("shop", "tmp_x")


# -- PostgreSQL endpoints (issue 19: a target of schema and full migration so far) --------

PG = f"postgresql://app:{SECRET}@pg.example.com/appdb"


def test_a_postgresql_target_of_schema_and_full_migration_is_accepted() -> None:
    got = spec(target=PG, types=["schema", "full"])
    assert got.target.flavor is Flavor.POSTGRESQL
    assert got.target.port == 5432 and got.target.database == "appdb"
    assert SECRET not in got.target.display


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (
            {"target": PG, "types": ["schema", "full", "incremental"]},
            "incremental sync to a PostgreSQL target is not supported yet",
        ),
        (
            {"target": PG, "types": ["full"], "options": {"non_empty_target": "ignore"}},
            "non_empty_target: ignore is not supported for a PostgreSQL target yet",
        ),
        ({"source": PG, "types": ["schema", "full"]}, "a PostgreSQL source is not supported yet"),
    ],
)
def test_what_postgresql_cannot_do_yet_is_refused_by_name(
    overrides: dict[str, Any], says: str
) -> None:
    assert says in spec_error(**overrides)
