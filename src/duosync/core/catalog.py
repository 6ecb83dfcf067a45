"""The neutral catalog model: what an endpoint holds, independent of its dialect.

Every endpoint's ``Inspector`` produces these values, so schema migration, type
mapping and verification compare like with like. Dialect quirks (OceanBase's extra
table clauses, MariaDB's quoted column defaults, ...) are normalised by the endpoint
module that knows them; what cannot be expressed neutrally is kept verbatim in
``Table.dialect_options`` so it is never silently lost.

Values are frozen pydantic models: they serialise to JSON for ``inspect --json`` and
for the metadata store, and cannot be changed behind another module's back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

#: our own bookkeeping database (a schema on PostgreSQL) on every endpoint: transaction
#: tables, heartbeat, change log; never part of a user's selection
OMS_DATABASE = "oms"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DefaultKind(StrEnum):
    LITERAL = "literal"  #: a constant; ``value`` is the unquoted text of it
    EXPRESSION = "expression"  #: SQL text evaluated by the server (CURRENT_TIMESTAMP, ...)


class ColumnDefault(_Frozen):
    kind: DefaultKind
    value: str


class Generated(_Frozen):
    expression: str
    stored: bool


class Column(_Frozen):
    name: str
    position: int
    #: base type in lower case: ``int``, ``varchar``, ``decimal``, ``enum``, ...
    data_type: str
    #: the full type as the server spells it (``int(10) unsigned``), for reference only
    column_type: str
    #: characters for text types, bytes for binary types, bits for ``bit``
    length: int | None = None
    #: digits for ``decimal``/``float``/``double``; None for integers (their display
    #: width is not a precision)
    precision: int | None = None
    scale: int | None = None
    #: fractional seconds digits for ``time``/``datetime``/``timestamp``
    fsp: int | None = None
    unsigned: bool = False
    zerofill: bool = False
    charset: str | None = None
    collation: str | None = None
    nullable: bool = True
    default: ColumnDefault | None = None
    auto_increment: bool = False
    #: ON UPDATE expression (``current_timestamp(6)``) of a timestamp/datetime column
    on_update: str | None = None
    generated: Generated | None = None
    #: members of ``enum`` and ``set`` types, in declaration order
    values: tuple[str, ...] | None = None
    comment: str = ""


class IndexColumn(_Frozen):
    name: str
    #: prefix length in characters/bytes (``KEY (c(10))``)
    prefix: int | None = None
    descending: bool = False


class Index(_Frozen):
    name: str
    columns: tuple[IndexColumn, ...]
    unique: bool
    #: BTREE, HASH, FULLTEXT or SPATIAL
    kind: str = "BTREE"
    comment: str = ""


class ForeignKey(_Frozen):
    name: str
    columns: tuple[str, ...]
    ref_database: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_update: str = "RESTRICT"
    on_delete: str = "RESTRICT"


class Table(_Frozen):
    database: str
    name: str
    columns: tuple[Column, ...]
    #: primary key column names in key order; empty when the table has none
    primary_key: tuple[str, ...] = ()
    #: secondary indexes, unique and non-unique (the primary key is not repeated here)
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    engine: str | None = None
    charset: str | None = None
    collation: str | None = None
    comment: str = ""
    #: dialect-only table clauses kept verbatim (OceanBase: ORGANIZATION, COMPRESSION, ...)
    dialect_options: tuple[tuple[str, str], ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def unique_keys(self) -> tuple[Index, ...]:
        return tuple(i for i in self.indexes if i.unique)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name.lower() == name.lower():
                return col
        raise KeyError(f"{self.qualified} has no column {name!r}")

    @property
    def row_identity(self) -> tuple[str, ...]:
        """Columns that identify a row: the primary key, else the first unique key whose
        columns are all NOT NULL, else nothing (duplicates are then possible)."""
        if self.primary_key:
            return self.primary_key
        for idx in self.unique_keys:
            cols = [self.column(c.name) for c in idx.columns]
            if all(not c.nullable and c.generated is None for c in cols) and not any(
                c.prefix for c in idx.columns
            ):
                return tuple(c.name for c in cols)
        return ()


class View(_Frozen):
    database: str
    name: str
    definition: str
    check_option: str = "NONE"
    security_type: str = "DEFINER"
    charset: str | None = None
    collation: str | None = None
    #: ``db.name`` of tables and views this view reads, when the server tells us
    depends_on: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"


class Database(_Frozen):
    name: str
    charset: str
    collation: str
    tables: tuple[Table, ...] = ()
    views: tuple[View, ...] = ()

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"database {self.name} has no table {name!r}")


CaptureMethod = Literal["binlog", "trigger", "none"]


class ServerInfo(_Frozen):
    """Server flavour, version and the settings change capture depends on."""

    flavor: Literal["mysql", "mariadb", "oceanbase"]
    #: e.g. ``10.11.6`` or ``4.3.5.3``: the product's own version, not the MySQL one it emulates
    version: str
    #: what ``SELECT VERSION()`` answered, verbatim
    version_string: str
    #: how changes can be captured from this server
    capture: CaptureMethod
    log_bin: bool
    binlog_format: str | None = None
    binlog_row_image: str | None = None
    binlog_row_metadata: str | None = None
    #: ON/OFF for MySQL; for MariaDB GTIDs are always written, this is ``gtid_strict_mode``
    gtid_mode: str | None = None
    #: the current GTID position (MySQL gtid_executed, MariaDB gtid_binlog_pos)
    gtid_position: str | None = None
    server_id: int | None = None
    time_zone: str
    system_time_zone: str | None = None
    #: what prevents binlog capture, one line each (empty when capture is possible)
    capture_problems: tuple[str, ...] = ()


class Catalog(_Frozen):
    endpoint: str
    server: ServerInfo
    databases: tuple[Database, ...] = ()

    def database(self, name: str) -> Database:
        for d in self.databases:
            if d.name == name:
                return d
        raise KeyError(f"no database {name!r}")
