"""MySQL-family column types as PostgreSQL 15 column types (issue 19's mapping).

The rule is *no value of the source is lost or changed*: every type maps to one
that holds every value the MySQL type holds, widened where PostgreSQL has no exact
match, with a CHECK constraint where widening would let the target accept values
the source never could (unsigned ranges, YEAR, ENUM members). What cannot be kept
is said in a note, never dropped silently. Each decision is one line of
``map_column``; the table in the issue's closing note is generated from it
(``tests/integration/test_postgres_schema.py`` checks each on a real server).
"""

from __future__ import annotations

from dataclasses import dataclass

from duosync.core.catalog import Column
from duosync.endpoints.mysql.types import SPATIAL_TYPES  # the source's vocabulary
from duosync.endpoints.postgres.dialect import quote_ident, quote_literal

#: (signed type, unsigned type, unsigned maximum): the narrowest PostgreSQL integer
#: holding the MySQL type's range
_INTEGERS: dict[str, tuple[str, str, int]] = {
    "tinyint": ("smallint", "smallint", 255),
    "smallint": ("smallint", "integer", 65535),
    "mediumint": ("integer", "integer", 16777215),
    "int": ("integer", "bigint", 4294967295),
    "integer": ("integer", "bigint", 4294967295),
    "bigint": ("bigint", "numeric(20,0)", 18446744073709551615),
}
_TEXT = {"tinytext", "text", "mediumtext", "longtext"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}


@dataclass(frozen=True)
class PgType:
    """A column's PostgreSQL type, the CHECK keeping the source's domain, and what
    a user should know about the choice (empty when nothing is lost)."""

    sql: str
    check: str | None = None
    note: str = ""


class UnmappedType(ValueError):
    """A source type with no PostgreSQL counterpart in this mapping."""


def map_column(col: Column) -> PgType:
    """The PostgreSQL type of MySQL-family column *col* (``UnmappedType`` if none)."""
    dt = col.data_type
    q = quote_ident(col.name)
    if dt in _INTEGERS:
        signed, unsigned, top = _INTEGERS[dt]
        if col.unsigned:
            return PgType(unsigned, f"{q} BETWEEN 0 AND {top}")
        if dt == "tinyint":
            # TINYINT(1)/BOOL holds -128..127, not only 0 and 1: boolean would lose values
            return PgType(signed, f"{q} BETWEEN -128 AND 127")
        if dt == "mediumint":
            return PgType(signed, f"{q} BETWEEN -8388608 AND 8388607")
        return PgType(signed)
    if dt == "decimal":
        p, s = col.precision or 10, col.scale or 0
        return PgType(f"numeric({p},{s})", f"{q} >= 0" if col.unsigned else None)
    if dt == "float":
        return PgType("real", f"{q} >= 0" if col.unsigned else None)
    if dt == "double":
        return PgType("double precision", f"{q} >= 0" if col.unsigned else None)
    if dt == "bit":
        return PgType(f"bit({col.length or 1})")
    if dt == "year":
        return PgType("smallint", f"{q} = 0 OR {q} BETWEEN 1901 AND 2155")
    if dt in ("date", "datetime", "timestamp", "time"):
        return _temporal(col)
    if dt == "char":
        return PgType(f"char({col.length or 1})", note=_collation_note(col))
    if dt == "varchar":
        return PgType(f"varchar({col.length or 1})", note=_collation_note(col))
    if dt in _TEXT:
        return PgType("text", note=_collation_note(col))
    if dt in _BINARY:
        return PgType("bytea")
    if dt == "enum":
        members = ", ".join(quote_literal(v) for v in col.values or ())
        return PgType("text", f"{q} IN ({members})")
    if dt == "set":
        return PgType("text", note="SET: its members as MySQL writes them, comma-separated")
    if dt == "json":
        return PgType("jsonb", note="JSON: jsonb normalises key order and whitespace")
    if dt in SPATIAL_TYPES:
        return PgType(
            "bytea",
            note=f"{dt.upper()}: MySQL's internal value (SRID + WKB) as bytes; no PostGIS here",
        )
    raise UnmappedType(f"column {col.name}: type {col.column_type} has no PostgreSQL mapping")


def _temporal(col: Column) -> PgType:
    fsp = col.fsp or 0
    if col.data_type == "date":
        return PgType("date", note="zero dates ('0000-00-00') are refused by the copy")
    if col.data_type == "datetime":
        return PgType(f"timestamp({fsp}) without time zone", note=_zero("DATETIME"))
    if col.data_type == "timestamp":
        # an instant, as MySQL's TIMESTAMP is (stored in UTC)
        return PgType(f"timestamp({fsp}) with time zone", note=_zero("TIMESTAMP"))
    # TIME is a duration from -838:59:59 to 838:59:59, not a time of day
    return PgType(
        f"interval({fsp})",
        f"{quote_ident(col.name)} BETWEEN interval '-838:59:59.999999'"
        " AND interval '838:59:59.999999'",
        note="TIME: an interval (MySQL's TIME runs from -838:59:59 to 838:59:59)",
    )


def _zero(kind: str) -> str:
    return f"{kind}: zero values ('0000-00-00 00:00:00') are refused by the copy"


def _collation_note(col: Column) -> str:
    if col.collation and (col.collation.endswith("_ci") or "_ci_" in col.collation):
        return (
            f"collation {col.collation} is case-insensitive, PostgreSQL's default is not:"
            " no key collides (the source holds none that differ only by case), but"
            " lookups there are case-sensitive"
        )
    return ""
