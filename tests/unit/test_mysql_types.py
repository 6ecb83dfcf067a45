"""Unit tests for MySQL-family type/default parsing and identifier quoting."""

from __future__ import annotations

import pytest

from duosync.core.catalog import ColumnDefault, DefaultKind
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.types import (
    float_precision,
    mariadb_default,
    mysql_default,
    split_quoted_list,
    unquote_literal,
)

# -- split_quoted_list -----------------------------------------------------------------


def test_split_enum_with_escapes() -> None:
    # information_schema text: enum('a','b''c','d\\e')
    text = "enum('a','b''c','d\\\\e')"
    assert text == "enum('a','b''c','d" + "\\" + "\\" + "e')"
    assert split_quoted_list(text) == ("a", "b'c", "d\\e")
    assert split_quoted_list(text)[2] == "d" + "\\" + "e"


def test_split_set() -> None:
    assert split_quoted_list("set('x','y')") == ("x", "y")


def test_split_empty_member() -> None:
    assert split_quoted_list("enum('','a')") == ("", "a")


def test_split_only_empty_member() -> None:
    assert split_quoted_list("enum('')") == ("",)


def test_split_members_with_commas_and_parens() -> None:
    assert split_quoted_list("enum('a,b','(c)')") == ("a,b", "(c)")


def test_split_member_with_closing_paren_and_quote() -> None:
    assert split_quoted_list("set('it''s)','x')") == ("it's)", "x")


def test_split_single_member() -> None:
    assert split_quoted_list("enum('only')") == ("only",)


# -- float_precision -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column_type", "expected"),
    [
        ("float(7,3)", (7, 3)),
        ("double(16,4) unsigned", (16, 4)),
        ("float(10)", (10, None)),
        ("float", (None, None)),
        ("double", (None, None)),
        ("double unsigned", (None, None)),
    ],
)
def test_float_precision(column_type: str, expected: tuple[int | None, int | None]) -> None:
    assert float_precision(column_type) == expected


# -- unquote_literal -------------------------------------------------------------------


def test_unquote_literal_escapes() -> None:
    assert unquote_literal("'it''s'") == "it's"
    assert unquote_literal("'a\\nb'") == "a\nb"
    assert unquote_literal("'a\\\\b'") == "a\\b"
    assert unquote_literal("''") == ""


# -- mariadb_default -------------------------------------------------------------------


def _lit(value: str) -> ColumnDefault:
    return ColumnDefault(kind=DefaultKind.LITERAL, value=value)


def _expr(value: str) -> ColumnDefault:
    return ColumnDefault(kind=DefaultKind.EXPRESSION, value=value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("'it''s'", _lit("it's")),
        ("'x'", _lit("x")),
        ("''", _lit("")),
        ("'NULL'", _lit("NULL")),
        ("12", _lit("12")),
        ("-1.5", _lit("-1.5")),
        ("1e3", _lit("1e3")),
        ("NULL", None),
        ("null", None),
        (None, None),
        ("b'101'", _expr("b'101'")),
        ("(1 + 2)", _expr("(1 + 2)")),
    ],
)
def test_mariadb_default(raw: str | None, expected: ColumnDefault | None) -> None:
    assert mariadb_default(raw) == expected


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("current_timestamp(6)", "CURRENT_TIMESTAMP(6)"),
        ("current_timestamp()", "CURRENT_TIMESTAMP"),
        ("now()", "CURRENT_TIMESTAMP"),
    ],
)
def test_mariadb_default_now_is_expression(raw: str, canonical: str) -> None:
    got = mariadb_default(raw)
    assert got is not None
    assert got.kind is DefaultKind.EXPRESSION
    # the function may be normalised, but the precision must be kept
    assert got.value.upper() == canonical


@pytest.mark.parametrize("raw", ["curdate()", "curtime()"])
def test_mariadb_default_curdate_is_not_now(raw: str) -> None:
    got = mariadb_default(raw)
    assert got is not None
    assert got.kind is DefaultKind.EXPRESSION
    assert "CURRENT_TIMESTAMP" not in got.value.upper()


def test_mysql_default_curdate_on_datetime_is_not_now() -> None:
    got = mysql_default("curdate()", "DEFAULT_GENERATED", "datetime")
    assert got is not None
    assert got.kind is DefaultKind.EXPRESSION
    assert "CURRENT_TIMESTAMP" not in got.value.upper()


def test_mariadb_quoted_null_is_a_string_not_null() -> None:
    got = mariadb_default("'NULL'")
    assert got is not None
    assert got.kind is DefaultKind.LITERAL
    assert got.value == "NULL"


# -- mysql_default ---------------------------------------------------------------------


def test_mysql_default_plain_text_is_literal() -> None:
    assert mysql_default("x", "", "varchar") == _lit("x")


def test_mysql_default_text_that_looks_like_function_on_varchar_is_literal() -> None:
    # a varchar default that happens to read CURRENT_TIMESTAMP is a string
    assert mysql_default("CURRENT_TIMESTAMP", "", "varchar") == _lit("CURRENT_TIMESTAMP")


def test_mysql_default_current_timestamp_on_timestamp() -> None:
    assert mysql_default("CURRENT_TIMESTAMP", "", "timestamp") == _expr("CURRENT_TIMESTAMP")


def test_mysql_default_generated_flag() -> None:
    got = mysql_default(
        "CURRENT_TIMESTAMP(6)", "DEFAULT_GENERATED on update CURRENT_TIMESTAMP(6)", "datetime"
    )
    assert got == _expr("CURRENT_TIMESTAMP(6)")


def test_mysql_default_generated_flag_on_any_type() -> None:
    assert mysql_default("(uuid())", "DEFAULT_GENERATED", "varchar") == _expr("(uuid())")


def test_mysql_default_bare_current_timestamp_takes_column_fsp() -> None:
    # OceanBase shows CURRENT_TIMESTAMP for a DATETIME(6) that defaults to CURRENT_TIMESTAMP(6)
    got = mysql_default("CURRENT_TIMESTAMP", "", "datetime", 6)
    assert got == _expr("CURRENT_TIMESTAMP(6)")


def test_mysql_default_current_timestamp_on_date_type_kept_verbatim() -> None:
    assert mysql_default("curdate()", "", "date") == _expr("curdate()")


def test_mysql_default_bit_literal() -> None:
    assert mysql_default("b'101'", "", "bit") == _expr("b'101'")


def test_mysql_default_none() -> None:
    assert mysql_default(None, "", "int") is None
    assert mysql_default(None, "DEFAULT_GENERATED", "timestamp") is None


def test_mysql_default_number_is_literal() -> None:
    assert mysql_default("0", "", "int") == _lit("0")


# -- quote_ident / qualified -----------------------------------------------------------


def test_quote_ident_plain() -> None:
    assert quote_ident("orders") == "`orders`"


def test_quote_ident_backtick_doubled() -> None:
    assert quote_ident("we`ird") == "`we``ird`"
    assert quote_ident("`") == "````"


def test_quote_ident_keeps_other_characters() -> None:
    assert quote_ident("a b.c'd\"e") == "`a b.c'd\"e`"
    assert quote_ident("表") == "`表`"


def test_quote_ident_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_ident("bad\x00name")


def test_qualified() -> None:
    assert qualified("shop", "orders") == "`shop`.`orders`"
    assert qualified("s`p", "o.r") == "`s``p`.`o.r`"


def test_qualified_refuses_nul() -> None:
    with pytest.raises(ValueError):
        qualified("shop", "o\x00")
    with pytest.raises(ValueError):
        qualified("s\x00", "orders")
