"""Unit tests for the neutral catalog model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from duosync.core.catalog import (
    Catalog,
    Column,
    ColumnDefault,
    Database,
    DefaultKind,
    ForeignKey,
    Generated,
    Index,
    IndexColumn,
    ServerInfo,
    Table,
    View,
)


def _assign(obj: object, field: str, value: object) -> None:
    setattr(obj, field, value)


def col(name: str, position: int = 1, *, nullable: bool = True, **kw: Any) -> Column:
    return Column(
        name=name,
        position=position,
        data_type=kw.pop("data_type", "int"),
        column_type=kw.pop("column_type", "int(11)"),
        nullable=nullable,
        **kw,
    )


def idx(name: str, *cols: str | tuple[str, int], unique: bool = True) -> Index:
    members = tuple(
        IndexColumn(name=c[0], prefix=c[1]) if isinstance(c, tuple) else IndexColumn(name=c)
        for c in cols
    )
    return Index(name=name, columns=members, unique=unique)


def table(
    columns: tuple[Column, ...],
    *,
    primary_key: tuple[str, ...] = (),
    indexes: tuple[Index, ...] = (),
) -> Table:
    return Table(
        database="shop", name="t", columns=columns, primary_key=primary_key, indexes=indexes
    )


# -- row_identity ----------------------------------------------------------------------


def test_row_identity_primary_key() -> None:
    t = table(
        (col("a", 1, nullable=False), col("b", 2, nullable=False)),
        primary_key=("a", "b"),
        indexes=(idx("ub", "b"),),
    )
    assert t.row_identity == ("a", "b")


def test_row_identity_first_eligible_unique_key() -> None:
    t = table(
        (
            col("n", 1, nullable=True),
            col("g", 2, nullable=False, generated=Generated(expression="`x` + 1", stored=True)),
            col("p", 3, nullable=False, data_type="varchar", column_type="varchar(50)"),
            col("x", 4, nullable=False),
            col("y", 5, nullable=False),
        ),
        indexes=(
            idx("plain", "x", unique=False),  # not unique
            idx("u_nullable", "x", "n"),  # a nullable column
            idx("u_generated", "g"),  # a generated column
            idx("u_prefix", ("p", 10)),  # a prefix
            idx("u_good", "y", "x"),
            idx("u_later", "x"),
        ),
    )
    assert t.unique_keys == tuple(i for i in t.indexes if i.name != "plain")
    assert t.row_identity == ("y", "x")


def test_row_identity_uses_declared_column_names() -> None:
    # index column names are matched case-insensitively; the column's own name is returned
    t = table((col("Id", 1, nullable=False),), indexes=(idx("u", "ID"),))
    assert t.row_identity == ("Id",)


def test_row_identity_none_eligible() -> None:
    t = table(
        (col("n", 1, nullable=True), col("v", 2, nullable=False)),
        indexes=(idx("u_n", "n"), idx("k_v", "v", unique=False)),
    )
    assert t.row_identity == ()


def test_row_identity_no_keys() -> None:
    assert table((col("a"),)).row_identity == ()


# -- column lookup ---------------------------------------------------------------------


def test_column_case_insensitive() -> None:
    t = table((col("Id", 1), col("Name", 2, data_type="varchar", column_type="varchar(9)")))
    assert t.column("id").name == "Id"
    assert t.column("NAME").position == 2
    assert t.column("Name") is t.columns[1]


def test_column_missing_names_table() -> None:
    t = table((col("a"),))
    with pytest.raises(KeyError) as info:
        t.column("zz")
    assert "shop.t" in str(info.value)
    assert "zz" in str(info.value)


def test_qualified_names() -> None:
    assert table((col("a"),)).qualified == "shop.t"
    assert View(database="d", name="v", definition="select 1").qualified == "d.v"


def test_database_and_catalog_lookup() -> None:
    t = table((col("a"),))
    db = Database(name="shop", charset="utf8mb4", collation="utf8mb4_general_ci", tables=(t,))
    assert db.table("t") is t
    with pytest.raises(KeyError, match="nope"):
        db.table("nope")
    cat = Catalog(endpoint="e", server=_server(), databases=(db,))
    assert cat.database("shop") is db
    with pytest.raises(KeyError, match="other"):
        cat.database("other")


# -- frozen, no extras -----------------------------------------------------------------


def test_models_are_frozen() -> None:
    c = col("a")
    with pytest.raises(ValidationError):
        _assign(c, "name", "b")
    assert c.name == "a"
    t = table((c,))
    with pytest.raises(ValidationError):
        _assign(t, "primary_key", ("a",))
    assert t.primary_key == ()
    with pytest.raises(ValidationError):
        _assign(_server(), "log_bin", False)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (ColumnDefault, {"kind": "literal", "value": "1", "extra": 1}),
        (IndexColumn, {"name": "a", "length": 3}),
        (
            Column,
            {"name": "a", "position": 1, "data_type": "int", "column_type": "int", "size": 4},
        ),
        (Table, {"database": "d", "name": "t", "columns": [], "pk": ["a"]}),
        (Database, {"name": "d", "charset": "c", "collation": "c", "owner": "x"}),
    ],
)
def test_models_refuse_extra_fields(model: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(data)


def test_default_kind_values() -> None:
    assert DefaultKind("literal") is DefaultKind.LITERAL
    assert DefaultKind("expression") is DefaultKind.EXPRESSION
    with pytest.raises(ValueError):
        DefaultKind("other")


# -- JSON round trip -------------------------------------------------------------------


def _server() -> ServerInfo:
    return ServerInfo(
        flavor="mariadb",
        version="10.11.6",
        version_string="10.11.6-MariaDB",
        capture="binlog",
        log_bin=True,
        binlog_format="ROW",
        binlog_row_image="FULL",
        gtid_mode="OFF",
        gtid_position="0-1-42",
        server_id=1,
        time_zone="SYSTEM",
        system_time_zone="UTC",
        capture_problems=("none really",),
    )


def _catalog() -> Catalog:
    t = Table(
        database="shop",
        name="orders",
        columns=(
            col("id", 1, nullable=False, unsigned=True, auto_increment=True),
            col(
                "state",
                2,
                data_type="enum",
                column_type="enum('a','b''c')",
                values=("a", "b'c"),
                default=ColumnDefault(kind=DefaultKind.LITERAL, value="a"),
                charset="utf8mb4",
                collation="utf8mb4_bin",
            ),
            col(
                "ts",
                3,
                data_type="timestamp",
                column_type="timestamp(6)",
                fsp=6,
                default=ColumnDefault(kind=DefaultKind.EXPRESSION, value="current_timestamp(6)"),
                on_update="current_timestamp(6)",
            ),
            col("g", 4, generated=Generated(expression="`id` + 1", stored=False)),
            col(
                "price",
                5,
                data_type="decimal",
                column_type="decimal(10,2)",
                precision=10,
                scale=2,
                comment="in cents",
            ),
        ),
        primary_key=("id",),
        indexes=(
            Index(
                name="k_state",
                columns=(IndexColumn(name="state", prefix=1, descending=True),),
                unique=False,
            ),
        ),
        foreign_keys=(
            ForeignKey(
                name="fk",
                columns=("g",),
                ref_database="shop",
                ref_table="other",
                ref_columns=("id",),
                on_delete="CASCADE",
            ),
        ),
        engine="InnoDB",
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
        comment="orders",
        dialect_options=(("ROW_FORMAT", "DYNAMIC"), ("COMPRESSION", "'zstd_1.3.8'")),
    )
    view = View(database="shop", name="v", definition="select 1", depends_on=("shop.orders",))
    db = Database(
        name="shop", charset="utf8mb4", collation="utf8mb4_general_ci", tables=(t,), views=(view,)
    )
    return Catalog(endpoint="mariadb://u@h:3306", server=_server(), databases=(db,))


def test_catalog_json_round_trip() -> None:
    cat = _catalog()
    text = cat.model_dump_json()
    back = Catalog.model_validate_json(text)
    assert back == cat
    assert back.model_dump_json() == text
    # tuples survive as tuples (lists would break equality and hashing)
    orders = back.database("shop").table("orders")
    assert orders.dialect_options == (("ROW_FORMAT", "DYNAMIC"), ("COMPRESSION", "'zstd_1.3.8'"))
    assert orders.column("state").values == ("a", "b'c")
    default = orders.column("ts").default
    assert default is not None
    assert default.kind is DefaultKind.EXPRESSION
    assert hash(back) == hash(cat)


def test_round_trip_changes_are_detected() -> None:
    cat = _catalog()
    text = cat.model_dump_json().replace('"DYNAMIC"', '"COMPACT"')
    assert Catalog.model_validate_json(text) != cat
