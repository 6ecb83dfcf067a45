"""MySQL-family tables as PostgreSQL tables (issue 19, the type mapping): every
table of ``schema_all_types.sql``, inspected on MariaDB, is created on a real
PostgreSQL 15 server; each column's type is what the mapping decided, the CHECKs
keep the source's domains, and what does not translate is said in a note."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duosync.config import Endpoint
from duosync.core.catalog import Table
from duosync.endpoints.postgres.ddl import (
    create_schema_sql,
    foreign_key_ddl,
    index_name,
    table_ddl,
)
from duosync.service.phases.inspection import inspect_endpoint
from tests.helpers import run_sql

pytestmark = pytest.mark.integration

ALL_TYPES = (Path(__file__).parent / "schema_all_types.sql").read_text()

#: column -> PostgreSQL type as format_type() prints it
EXPECTED = {
    # BIGINT UNSIGNED is numeric(20,0), but an identity column must be an integer
    # type: with AUTO_INCREMENT it is bigint (and a note says so)
    "id": "bigint",
    "c_tinyint": "smallint",
    "c_utinyint": "smallint",
    "c_bool": "smallint",
    "c_smallint": "smallint",
    "c_usmallint": "integer",
    "c_mediumint": "integer",
    "c_umediumint": "integer",
    "c_int": "integer",
    "c_uint": "bigint",
    "c_bigint": "bigint",
    "c_decimal": "numeric(65,30)",
    "c_decimal2": "numeric(10,2)",
    "c_float": "real",
    "c_float2": "real",
    "c_double": "double precision",
    "c_double2": "double precision",
    "c_bit1": "bit(1)",
    "c_bit64": "bit(64)",
    "c_year": "smallint",
    "c_date": "date",
    "c_time": "interval(0)",
    "c_time6": "interval(6)",
    "c_datetime": "timestamp(0) without time zone",
    "c_datetime6": "timestamp(6) without time zone",
    "c_timestamp": "timestamp(0) with time zone",
    "c_timestamp6": "timestamp(6) with time zone",
    "c_char": "character(10)",
    "c_varchar": "character varying(255)",
    "c_binary": "bytea",
    "c_varbinary": "bytea",
    "c_tinytext": "text",
    "c_text": "text",
    "c_mediumtext": "text",
    "c_longtext": "text",
    "c_tinyblob": "bytea",
    "c_blob": "bytea",
    "c_mediumblob": "bytea",
    "c_longblob": "bytea",
    "c_enum": "text",
    "c_set": "text",
    "c_json": "jsonb",
    "c_virtual": "integer",
    "c_stored": "character varying(300)",
    "c_comment": "integer",
}


@pytest.fixture
def pg(postgres: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(postgres, autocommit=True)
    yield conn
    conn.close()


def _created(
    mariadb1: Endpoint, pg: psycopg.Connection[Any], fresh_database: Callable[..., str]
) -> tuple[dict[str, Table], list[str]]:
    db = fresh_database(mariadb1)
    run_sql(mariadb1, ALL_TYPES, database=db)
    tables = {t.name: t for t in inspect_endpoint(mariadb1, [db]).database(db).tables}
    pg.execute(f'DROP SCHEMA IF EXISTS "{db}" CASCADE')
    pg.execute(create_schema_sql(db))
    notes: list[str] = []
    for table in tables.values():
        ddl = table_ddl(table)
        notes += ddl.notes
        for statement in ddl.statements:
            pg.execute(statement)
    for table in tables.values():
        for fk in table.foreign_keys:
            pg.execute(foreign_key_ddl(table, fk))
    return tables, notes


def _types(pg: psycopg.Connection[Any], schema: str, table: str) -> dict[str, str]:
    rows = pg.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (schema, table),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def test_every_type_gets_its_mapped_postgres_type(
    mariadb1: Endpoint, pg: psycopg.Connection[Any], fresh_database: Callable[..., str]
) -> None:
    tables, notes = _created(mariadb1, pg, fresh_database)
    schema = tables["all_types"].database
    got = _types(pg, schema, "all_types")
    assert got == EXPECTED, {k: v for k, v in got.items() if EXPECTED.get(k) != v}
    assert _types(pg, schema, "geo")["c_point"] == "bytea"
    joined = "\n".join(notes)
    assert "c_datetime6: ON UPDATE" in joined
    assert "c_virtual: VIRTUAL generated column becomes STORED" in joined
    assert "sk_point: SPATIAL index not created" in joined
    assert "c_point: POINT" in joined
    assert "all_types.id: BIGINT UNSIGNED AUTO_INCREMENT becomes bigint identity" in joined


def test_checks_keep_the_source_domains(
    mariadb1: Endpoint, pg: psycopg.Connection[Any], fresh_database: Callable[..., str]
) -> None:
    tables, _notes = _created(mariadb1, pg, fresh_database)
    target = f'"{tables["all_types"].database}".all_types'
    fine = {"c_tinyint": -128, "c_int": 0, "c_enum": "it's", "c_set": "a,c"}
    cols = ", ".join(fine)
    marks = ", ".join(["%s"] * len(fine))
    pg.execute(f"INSERT INTO {target} ({cols}) VALUES ({marks})", tuple(fine.values()))
    for column, value in (
        ("c_utinyint", 256),
        ("c_uint", -1),
        ("c_year", 1900),
        ("c_enum", "large"),
        ("c_time", "839:00:00"),
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            pg.execute(
                f"INSERT INTO {target} (c_tinyint, c_int, {column}) VALUES (1, 1, %s)", (value,)
            )
    # what the source holds at the ends of its ranges goes in
    pg.execute(
        f"INSERT INTO {target} (c_tinyint, c_int, c_utinyint, c_uint, c_year, c_time6,"
        " c_decimal2, c_bit64) VALUES (127, 2, 255, 4294967295, 2155, '-838:59:59.000000',"
        " 99999999.99, B'1111111111111111111111111111111111111111111111111111111111111111')"
    )
    # identity moved by the copy later; a generated column computes itself
    row = pg.execute(f"SELECT c_virtual, c_stored FROM {target} WHERE c_int = 2").fetchone()
    assert row == (4, "it's!")


def test_keys_indexes_and_foreign_keys(
    mariadb1: Endpoint, pg: psycopg.Connection[Any], fresh_database: Callable[..., str]
) -> None:
    tables, _notes = _created(mariadb1, pg, fresh_database)
    schema = tables["all_types"].database
    indexes = {
        str(name): str(definition)
        for name, definition in pg.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,)
        ).fetchall()
    }
    prefix = indexes[index_name("all_types", "k_varchar_prefix")]
    assert '"left"((c_varchar)::text, 20)' in prefix, prefix
    assert "c_date DESC" in indexes[index_name("all_types", "k_date_desc")]
    assert indexes[index_name("all_types", "uk_int_char")].startswith("CREATE UNIQUE INDEX")
    fks = pg.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND connamespace = %s::regnamespace",
        (schema,),
    ).fetchall()
    assert len(fks) == 1
    assert "ON DELETE CASCADE" in str(fks[0][1])
    pg.execute(f'INSERT INTO "{schema}".parent VALUES (%s, 1, %s)', ("eu", "x"))
    pg.execute(f'INSERT INTO "{schema}".child VALUES (1, %s, 1, %s)', ("eu", "n"))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pg.execute(f'INSERT INTO "{schema}".child VALUES (2, %s, 9, %s)', ("eu", "n"))
