"""PostgreSQL quoting and index names (pure functions; the DDL itself runs on a real
server in tests/integration/test_postgres_schema.py)."""

from __future__ import annotations

import pytest

from duosync.endpoints.postgres.ddl import index_name, translate_expression
from duosync.endpoints.postgres.dialect import qualified, quote_ident, quote_literal


def test_identifiers_keep_case_and_double_quotes() -> None:
    assert quote_ident("Order") == '"Order"'
    assert quote_ident('a"b') == '"a""b"'
    assert qualified("s", "t") == '"s"."t"'
    with pytest.raises(ValueError):
        quote_ident("a\x00b")


def test_literals_double_quotes_only() -> None:
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("back\\slash") == "'back\\slash'"
    with pytest.raises(ValueError):
        quote_literal("nul\x00")


def test_index_names_fit_63_bytes_and_stay_distinct() -> None:
    assert index_name("t", "k_a") == "t_k_a"
    long_a = index_name("t" * 40, "a" * 40)
    long_b = index_name("t" * 40, "a" * 39 + "b")
    assert len(long_a.encode()) <= 63 and len(long_b.encode()) <= 63
    assert long_a != long_b
    # multi-byte names are cut on a character boundary
    assert index_name("é" * 40, "x").encode().decode() == index_name("é" * 40, "x")


def test_expressions_translate_or_say_they_cannot() -> None:
    assert translate_expression("`a` * 2") == '"a" * 2'
    assert translate_expression("(((") is None
