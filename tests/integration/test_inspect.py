"""Catalog inspection against real MariaDB and OceanBase sandbox servers.

The same schema (every MySQL column type, composite keys, a table without primary
key, views on views, a composite foreign key) is created on both, and the same
expectations are checked on both: that is what "one neutral model" means. Where the
servers genuinely differ (OceanBase has no latin1 and drops DESC from indexes), the
expectation says so explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from duosync.config import Endpoint
from duosync.core.catalog import Catalog, Column, DefaultKind, Table
from duosync.endpoints import open_inspector
from duosync.errors import ConfigError
from duosync.service.phases.inspection import inspect_endpoint, render_catalog
from tests.helpers import run_sql

pytestmark = pytest.mark.integration

SCHEMA = (Path(__file__).parent / "schema_all_types.sql").read_text()


def _load_schema(endpoint: Endpoint, database: str) -> None:
    sql = SCHEMA
    if endpoint.flavor == "oceanbase":
        # seekdb has only the utf8mb4 and binary character sets.
        sql = sql.replace("CHARACTER SET latin1 COLLATE latin1_bin", "COLLATE utf8mb4_bin")
    run_sql(endpoint, sql, database=database)


@pytest.fixture(params=["mariadb1", "oceanbase1"])
def inspected(
    request: pytest.FixtureRequest,
    sandbox_servers: dict[str, Endpoint],
    fresh_database: Callable[..., str],
) -> tuple[Endpoint, str, Catalog]:
    endpoint = sandbox_servers[request.param]
    db = fresh_database(endpoint)
    _load_schema(endpoint, db)
    return endpoint, db, inspect_endpoint(endpoint, [db])


def _col(table: Table, name: str) -> Column:
    return table.column(name)


def test_every_column_type(inspected: tuple[Endpoint, str, Catalog]) -> None:
    endpoint, db, catalog = inspected
    t = catalog.database(db).table("all_types")
    ob = endpoint.flavor == "oceanbase"
    assert t.comment == "every column type"
    assert t.collation == "utf8mb4_general_ci" and t.charset == "utf8mb4"

    c = _col(t, "id")
    assert (c.data_type, c.unsigned, c.nullable, c.auto_increment) == ("bigint", True, False, True)
    c = _col(t, "c_tinyint")
    assert c.data_type == "tinyint" and not c.unsigned and not c.nullable
    assert c.default is not None and c.default.kind == DefaultKind.LITERAL
    assert c.default.value == "-128"
    assert _col(t, "c_utinyint").unsigned
    assert _col(t, "c_bool").column_type.startswith("tinyint(1)")
    c = _col(t, "c_usmallint")
    assert c.unsigned and c.zerofill
    for name, dtype in [("c_mediumint", "mediumint"), ("c_int", "int"), ("c_bigint", "bigint")]:
        c = _col(t, name)
        assert c.data_type == dtype and c.precision is None  # display width is not precision
    assert _col(t, "c_umediumint").unsigned and _col(t, "c_uint").unsigned

    c = _col(t, "c_decimal")
    assert (c.precision, c.scale) == (65, 30)
    assert c.default is not None and Decimal(c.default.value) == Decimal("1.5")
    c = _col(t, "c_decimal2")
    assert (c.precision, c.scale, c.unsigned) == (10, 2, True)
    assert (_col(t, "c_float").data_type, _col(t, "c_float").precision) == ("float", None)
    assert (_col(t, "c_float2").precision, _col(t, "c_float2").scale) == (7, 3)
    assert _col(t, "c_double").data_type == "double"
    assert (_col(t, "c_double2").precision, _col(t, "c_double2").scale) == (12, 4)
    assert (_col(t, "c_bit1").data_type, _col(t, "c_bit1").length) == ("bit", 1)
    assert _col(t, "c_bit64").length == 64
    assert _col(t, "c_year").data_type == "year"

    c = _col(t, "c_date")
    assert c.data_type == "date" and c.default is not None and c.default.value == "2020-02-29"
    assert (_col(t, "c_time").fsp, _col(t, "c_time6").fsp) == (0, 6)
    assert (_col(t, "c_datetime").fsp, _col(t, "c_timestamp6").fsp) == (0, 6)
    c = _col(t, "c_datetime6")
    assert c.fsp == 6
    assert c.default is not None and c.default.kind == DefaultKind.EXPRESSION
    assert c.default.value == "CURRENT_TIMESTAMP(6)"
    assert c.on_update == "CURRENT_TIMESTAMP(6)"
    c = _col(t, "c_timestamp")
    assert c.data_type == "timestamp" and c.nullable and c.default is None

    c = _col(t, "c_char")
    assert (c.data_type, c.length) == ("char", 10)
    assert (c.charset, c.collation) == (
        ("utf8mb4", "utf8mb4_bin") if ob else ("latin1", "latin1_bin")
    )
    c = _col(t, "c_varchar")
    assert (c.data_type, c.length, c.charset) == ("varchar", 255, "utf8mb4")
    assert c.default is not None and c.default.value == "it's"
    for name, dtype, length in [("c_binary", "binary", 16), ("c_varbinary", "varbinary", 255)]:
        c = _col(t, name)
        assert (c.data_type, c.length, c.charset) == (dtype, length, None)
    for kind in ("tinytext", "text", "mediumtext", "longtext"):
        c = _col(t, f"c_{kind}")
        assert c.data_type == kind and c.charset == "utf8mb4"
    for kind in ("tinyblob", "blob", "mediumblob", "longblob"):
        c = _col(t, f"c_{kind}")
        assert c.data_type == kind and c.charset is None

    c = _col(t, "c_enum")
    assert c.data_type == "enum" and c.values == ("small", "medium", "it's")
    assert not c.nullable and c.default is not None and c.default.value == "small"
    assert _col(t, "c_set").values == ("a", "b", "c")
    assert _col(t, "c_json").data_type == "json"

    c = _col(t, "c_virtual")
    assert c.generated is not None and not c.generated.stored
    assert c.generated.expression.replace(" ", "") == "`c_int`*2"
    assert c.default is None
    c = _col(t, "c_stored")
    assert c.generated is not None and c.generated.stored
    assert "c_varchar" in c.generated.expression
    assert _col(t, "c_comment").comment == "a comment"
    assert [col.position for col in t.columns] == list(range(1, len(t.columns) + 1))


def test_spatial_types_and_index(inspected: tuple[Endpoint, str, Catalog]) -> None:
    _endpoint, db, catalog = inspected
    t = catalog.database(db).table("geo")
    kinds = [
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    ]
    for kind in kinds:
        c = t.column(f"c_{kind}")
        assert (c.data_type, c.length, c.charset) == (kind, None, None)
    assert not t.column("c_point").nullable
    (sk,) = t.indexes
    assert (sk.name, sk.kind, sk.unique) == ("sk_point", "SPATIAL", False)
    assert [c.name for c in sk.columns] == ["c_point"]


def test_keys_and_indexes(inspected: tuple[Endpoint, str, Catalog]) -> None:
    endpoint, db, catalog = inspected
    t = catalog.database(db).table("all_types")
    assert t.primary_key == ("id",)
    idx = {i.name: i for i in t.indexes}
    assert set(idx) == {"uk_int_char", "k_varchar_prefix", "k_date_desc"}
    assert idx["uk_int_char"].unique
    assert [c.name for c in idx["uk_int_char"].columns] == ["c_int", "c_char"]
    assert not idx["k_varchar_prefix"].unique
    assert idx["k_varchar_prefix"].columns[0].prefix == 20
    date_desc = idx["k_date_desc"].columns
    assert [c.name for c in date_desc] == ["c_date", "c_time"]
    # OceanBase accepts DESC in an index definition but stores the key ascending.
    assert date_desc[0].descending == (endpoint.flavor != "oceanbase")
    assert t.unique_keys == (idx["uk_int_char"],)

    parent = catalog.database(db).table("parent")
    assert parent.primary_key == ("region", "pid")  # composite, in key order
    assert [i.name for i in parent.unique_keys] == ["uk_name"]

    child = catalog.database(db).table("child")
    (fk,) = child.foreign_keys
    assert fk.name == "fk_child_parent"
    assert fk.columns == ("region", "pid") and fk.ref_columns == ("region", "pid")
    assert (fk.ref_database, fk.ref_table) == (db, "parent")
    assert (fk.on_delete, fk.on_update) == ("CASCADE", "RESTRICT")


def test_tables_without_primary_key(inspected: tuple[Endpoint, str, Catalog]) -> None:
    _endpoint, db, catalog = inspected
    no_pk = catalog.database(db).table("no_pk")
    assert no_pk.primary_key == () and no_pk.row_identity == ()
    assert [i.name for i in no_pk.indexes] == ["k_a"]
    uk_only = catalog.database(db).table("uk_only")
    assert uk_only.primary_key == () and uk_only.row_identity == ("code",)


def test_views_and_dependencies(inspected: tuple[Endpoint, str, Catalog]) -> None:
    _endpoint, db, catalog = inspected
    database = catalog.database(db)
    views = {v.name: v for v in database.views}
    assert set(views) == {"v_parent", "v_child_names"}
    assert {t.name for t in database.tables} == {
        "all_types",
        "parent",
        "child",
        "no_pk",
        "uk_only",
        "geo",
    }
    assert views["v_parent"].depends_on == (f"{db}.parent",)
    assert set(views["v_child_names"].depends_on) == {f"{db}.child", f"{db}.v_parent"}
    assert "parent" in views["v_parent"].definition


def test_rendered_listing_names_everything(inspected: tuple[Endpoint, str, Catalog]) -> None:
    _endpoint, db, catalog = inspected
    text = render_catalog(catalog)
    for needle in (
        f"database {db}",
        "table all_types",
        "NO PRIMARY KEY",
        "view v_child_names",
        "foreign key fk_child_parent",
        "unique uk_int_char",
    ):
        assert needle in text
    assert Catalog.model_validate_json(catalog.model_dump_json()) == catalog


def test_mariadb_server_settings(mariadb1: Endpoint, mariadb2: Endpoint) -> None:
    with open_inspector(mariadb1) as insp:
        s1 = insp.server_info()
    with open_inspector(mariadb2) as insp:
        s2 = insp.server_info()
    for s in (s1, s2):
        assert s.flavor == "mariadb" and s.version.startswith("10.")
        assert s.capture == "binlog" and s.log_bin
        assert (s.binlog_format, s.binlog_row_image, s.binlog_row_metadata) == (
            "ROW",
            "FULL",
            "FULL",
        )
        assert s.gtid_mode == "ON"  # gtid_strict_mode
        assert s.capture_problems == ()
        assert s.time_zone
    assert s1.server_id != s2.server_id


def test_oceanbase_server_settings(oceanbase: Endpoint, fresh_database: Callable[..., str]) -> None:
    db = fresh_database(oceanbase)
    run_sql(oceanbase, "CREATE TABLE t (id INT PRIMARY KEY)", database=db)
    catalog = inspect_endpoint(oceanbase, [db])
    s = catalog.server
    assert s.flavor == "oceanbase" and s.version.startswith("4.")
    assert s.capture == "trigger" and not s.log_bin
    assert s.time_zone == "+08:00"  # seekdb's default, reported as is
    options = dict(catalog.database(db).table("t").dialect_options)
    assert options.get("ORGANIZATION") == "INDEX"
    assert "AUTO_INCREMENT" not in options and "DEFAULT CHARSET" not in options


@pytest.mark.parametrize("server", ["mariadb1", "oceanbase1"])
def test_database_listing_and_missing_database(
    server: str, sandbox_servers: dict[str, Endpoint], fresh_database: Callable[..., str]
) -> None:
    endpoint = sandbox_servers[server]
    db = fresh_database(endpoint)
    with open_inspector(endpoint) as insp:
        names = insp.list_databases()
        assert db in names
        assert not {"mysql", "information_schema", "oceanbase", "oms"} & set(names)
        with pytest.raises(ConfigError) as err:
            insp.catalog([db, "no_such_db_xyz"])
    assert "no_such_db_xyz" in str(err.value) and endpoint.display in str(err.value)
