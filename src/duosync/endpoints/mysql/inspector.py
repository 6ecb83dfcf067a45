"""Catalog inspection for MySQL and MariaDB from information_schema.

Each catalog query covers all requested databases at once (one round trip per
information_schema table, not per table), because a schema with thousands of tables
would otherwise take minutes to inspect. OceanBase subclasses this and overrides
only what differs (``endpoints/oceanbase/inspector.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from duosync.config import Endpoint
from duosync.core.catalog import (
    OMS_DATABASE,
    Catalog,
    Column,
    ColumnDefault,
    Database,
    ForeignKey,
    Generated,
    Index,
    IndexColumn,
    ServerInfo,
    Table,
    View,
)
from duosync.endpoints.mysql import types
from duosync.endpoints.mysql.connection import Connection, connect, driver_errors, query_all
from duosync.errors import ConfigError

#: schemas that belong to the server, never to the user
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})

_CAPTURE_VARIABLES = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "gtid_mode",
    "gtid_strict_mode",
    "gtid_executed",
    "gtid_binlog_pos",
    "server_id",
    "time_zone",
    "system_time_zone",
)
_VIEW_REFERENCE = re.compile(r"`((?:[^`]|``)+)`\.`((?:[^`]|``)+)`")
_VERSION = re.compile(r"(\d+(?:\.\d+)+)")

Row = dict[str, Any]


def _in_list(values: Sequence[str]) -> str:
    """``%s, %s, ...`` placeholders for an IN list whose values are bound."""
    return ", ".join(["%s"] * len(values))


class MySQLInspector:
    """``Inspector`` for MySQL and MariaDB servers."""

    system_databases: frozenset[str] = SYSTEM_DATABASES

    def __init__(self, endpoint: Endpoint, conn: Connection[Any] | None = None) -> None:
        self.endpoint = endpoint
        self._conn = conn if conn is not None else connect(endpoint)
        self._variables: dict[str, str] | None = None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> MySQLInspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -----------------------------------------------------------------

    def _query(self, sql: str, args: Any = None) -> list[Row]:
        with driver_errors(self.endpoint):
            return query_all(self._conn, sql, args)

    def variables(self) -> dict[str, str]:
        """Global variables change capture depends on (those the server knows)."""
        if self._variables is None:
            # SHOW ... WHERE tolerates variables a server does not have (MySQL has no
            # gtid_strict_mode, MariaDB no gtid_mode); SELECT @@x would fail on them.
            rows = self._query(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ("
                + _in_list(_CAPTURE_VARIABLES)
                + ")",
                _CAPTURE_VARIABLES,
            )
            self._variables = {str(r["Variable_name"]).lower(): str(r["Value"]) for r in rows}
        return self._variables

    # -- server ------------------------------------------------------------------

    def server_info(self) -> ServerInfo:
        row = self._query("SELECT VERSION() AS v, @@version_comment AS c")[0]
        version_string = str(row["v"])
        flavor: Literal["mysql", "mariadb"] = (
            "mariadb" if "mariadb" in version_string.lower() else "mysql"
        )
        m = _VERSION.search(version_string)
        v = self.variables()
        log_bin = v.get("log_bin", "OFF").upper() in ("ON", "1")
        if flavor == "mariadb":
            gtid_mode = v.get("gtid_strict_mode")
            gtid_position = v.get("gtid_binlog_pos")
        else:
            gtid_mode = v.get("gtid_mode")
            gtid_position = v.get("gtid_executed")
        info = ServerInfo(
            flavor=flavor,
            version=m.group(1) if m else version_string,
            version_string=version_string,
            capture="binlog" if log_bin else "none",
            log_bin=log_bin,
            binlog_format=v.get("binlog_format"),
            binlog_row_image=v.get("binlog_row_image"),
            binlog_row_metadata=v.get("binlog_row_metadata"),
            gtid_mode=gtid_mode,
            gtid_position=gtid_position or None,
            server_id=int(v["server_id"]) if v.get("server_id") else None,
            time_zone=v.get("time_zone", "SYSTEM"),
            system_time_zone=v.get("system_time_zone"),
        )
        return info.model_copy(update={"capture_problems": binlog_problems(info)})

    # -- catalog -----------------------------------------------------------------

    def list_databases(self) -> list[str]:
        rows = self._query("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA")
        hidden = self.system_databases | {OMS_DATABASE}
        return sorted(str(r["name"]) for r in rows if str(r["name"]).lower() not in hidden)

    def catalog(self, databases: Sequence[str] | None = None) -> Catalog:
        server = self.server_info()
        names = list(databases) if databases else self.list_databases()
        if not names:
            return Catalog(endpoint=self.endpoint.display, server=server)
        marks = _in_list(names)
        schemata = {
            str(r["name"]): r
            for r in self._query(
                "SELECT SCHEMA_NAME AS name, DEFAULT_CHARACTER_SET_NAME AS cs,"
                " DEFAULT_COLLATION_NAME AS co FROM information_schema.SCHEMATA"
                f" WHERE SCHEMA_NAME IN ({marks})",
                names,
            )
        }
        missing = [n for n in names if n not in schemata]
        if missing:
            raise ConfigError(
                f"database(s) not found: {', '.join(missing)}", endpoint=self.endpoint.display
            )
        tables = self._query(
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, TABLE_TYPE AS type, ENGINE AS engine,"
            " TABLE_COLLATION AS co, TABLE_COMMENT AS comment FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA IN ({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME",
            names,
        )
        columns = self._group(
            self._query(
                "SELECT * FROM information_schema.COLUMNS"
                f" WHERE TABLE_SCHEMA IN ({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME,"
                " ORDINAL_POSITION",
                names,
            )
        )
        stats = self._group(
            self._query(
                "SELECT * FROM information_schema.STATISTICS"
                f" WHERE TABLE_SCHEMA IN ({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME,"
                " INDEX_NAME, SEQ_IN_INDEX",
                names,
            )
        )
        fks = self._group(self._foreign_key_rows(names))
        json_columns = self._json_columns(names)
        views = self._group(
            self._query(
                "SELECT * FROM information_schema.VIEWS"
                f" WHERE TABLE_SCHEMA IN ({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME",
                names,
            )
        )
        known = {(str(t["db"]), str(t["name"])) for t in tables}

        out: list[Database] = []
        for name in names:
            db_tables: list[Table] = []
            db_views: list[View] = []
            for t in tables:
                if t["db"] != name:
                    continue
                key = (name, str(t["name"]))
                if t["type"] == "VIEW":
                    for vrow in views.get(key, []):
                        db_views.append(self._view(vrow, known))
                    continue
                db_tables.append(
                    self._table(
                        t, columns.get(key, []), stats.get(key, []), fks.get(key, []), json_columns
                    )
                )
            s = schemata[name]
            out.append(
                Database(
                    name=name,
                    charset=str(s["cs"]),
                    collation=str(s["co"]),
                    tables=tuple(db_tables),
                    views=tuple(db_views),
                )
            )
        return Catalog(endpoint=self.endpoint.display, server=server, databases=tuple(out))

    @staticmethod
    def _group(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
        grouped: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for r in rows:
            grouped[(str(r["TABLE_SCHEMA"]), str(r["TABLE_NAME"]))].append(r)
        return grouped

    def _foreign_key_rows(self, names: Sequence[str]) -> list[Row]:
        marks = _in_list(names)
        return self._query(
            "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME,"
            " k.ORDINAL_POSITION, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME,"
            " k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE"
            " FROM information_schema.KEY_COLUMN_USAGE k"
            " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
            "   ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA"
            "  AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME"
            f" WHERE k.TABLE_SCHEMA IN ({marks}) AND k.REFERENCED_TABLE_NAME IS NOT NULL"
            " ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            names,
        )

    def _json_columns(self, names: Sequence[str]) -> set[tuple[str, str, str]]:
        """MariaDB stores JSON as LONGTEXT plus a ``json_valid(col)`` check; find those."""
        return set()

    # -- row to model ------------------------------------------------------------

    def _default(self, r: Row, data_type: str) -> ColumnDefault | None:
        fsp = r.get("DATETIME_PRECISION")
        return types.mysql_default(
            r["COLUMN_DEFAULT"], str(r["EXTRA"] or ""), data_type, int(fsp) if fsp else None
        )

    def _enum_values(self, column_type: str) -> tuple[str, ...]:
        return types.split_quoted_list(column_type)

    def _column(self, r: Row, json_columns: set[tuple[str, str, str]]) -> Column:
        data_type = str(r["DATA_TYPE"]).lower()
        data_type = types.TYPE_SYNONYMS.get(data_type, data_type)
        column_type = str(r["COLUMN_TYPE"])
        lower_type = column_type.lower()
        extra = str(r["EXTRA"] or "")
        key = (str(r["TABLE_SCHEMA"]), str(r["TABLE_NAME"]), str(r["COLUMN_NAME"]))
        if key in json_columns:
            data_type = "json"
        precision: int | None = None
        scale: int | None = None
        length: int | None = None
        if data_type == "decimal":
            precision, scale = int(r["NUMERIC_PRECISION"]), int(r["NUMERIC_SCALE"])
        elif data_type in ("float", "double", "real"):
            precision, scale = types.float_precision(lower_type)
        elif data_type == "bit":
            length = int(r["NUMERIC_PRECISION"])
        elif (
            r["CHARACTER_MAXIMUM_LENGTH"] is not None
            and data_type != "json"
            and data_type not in types.SPATIAL_TYPES  # OceanBase reports a meaningless one
        ):
            length = int(r["CHARACTER_MAXIMUM_LENGTH"])
        generation = str(r.get("GENERATION_EXPRESSION") or "")
        generated: Generated | None = None
        if "generated" in extra.lower() and generation:
            generated = Generated(
                expression=types.strip_outer_parens(generation), stored="stored" in extra.lower()
            )
        fsp = r.get("DATETIME_PRECISION")
        on_update = None
        m = re.search(r"on update (\S+)", extra, re.IGNORECASE)
        if m:
            on_update = types.canonical_now(m.group(1), int(fsp) if fsp else None) or m.group(1)
        return Column(
            name=str(r["COLUMN_NAME"]),
            position=int(r["ORDINAL_POSITION"]),
            data_type=data_type,
            column_type=column_type,
            length=length,
            precision=precision,
            scale=scale,
            fsp=int(fsp) if fsp is not None and data_type in types.TEMPORAL_FSP_TYPES else None,
            unsigned="unsigned" in lower_type,
            zerofill="zerofill" in lower_type,
            charset=r["CHARACTER_SET_NAME"],
            collation=r["COLLATION_NAME"],
            nullable=r["IS_NULLABLE"] == "YES",
            default=None if generated else self._default(r, data_type),
            auto_increment="auto_increment" in extra.lower(),
            on_update=on_update,
            generated=generated,
            values=self._enum_values(column_type) if data_type in ("enum", "set") else None,
            comment=str(r.get("COLUMN_COMMENT") or ""),
        )

    def _table(
        self,
        t: Row,
        columns: list[Row],
        stats: list[Row],
        fks: list[Row],
        json_columns: set[tuple[str, str, str]],
    ) -> Table:
        primary: list[str] = []
        by_index: dict[str, list[Row]] = defaultdict(list)
        for s in stats:
            if s["INDEX_NAME"] == "PRIMARY":
                primary.append(str(s["COLUMN_NAME"]))
            else:
                by_index[str(s["INDEX_NAME"])].append(s)
        indexes = tuple(
            Index(
                name=name,
                columns=tuple(
                    IndexColumn(
                        name=str(s["COLUMN_NAME"]),
                        # MariaDB reports SUB_PART 32 for spatial keys: not a prefix.
                        prefix=int(s["SUB_PART"])
                        if s["SUB_PART"] is not None and s["INDEX_TYPE"] == "BTREE"
                        else None,
                        descending=s.get("COLLATION") == "D",
                    )
                    for s in rows
                    if s["COLUMN_NAME"] is not None  # functional key parts have none
                ),
                unique=str(rows[0]["NON_UNIQUE"]) == "0",
                kind=str(rows[0]["INDEX_TYPE"] or "BTREE").upper(),
                comment=str(rows[0].get("INDEX_COMMENT") or ""),
            )
            for name, rows in by_index.items()
        )
        by_fk: dict[str, list[Row]] = defaultdict(list)
        for f in fks:
            by_fk[str(f["CONSTRAINT_NAME"])].append(f)
        foreign_keys = tuple(
            ForeignKey(
                name=name,
                columns=tuple(str(f["COLUMN_NAME"]) for f in rows),
                ref_database=str(rows[0]["REFERENCED_TABLE_SCHEMA"]),
                ref_table=str(rows[0]["REFERENCED_TABLE_NAME"]),
                ref_columns=tuple(str(f["REFERENCED_COLUMN_NAME"]) for f in rows),
                on_update=str(rows[0]["UPDATE_RULE"]),
                on_delete=str(rows[0]["DELETE_RULE"]),
            )
            for name, rows in by_fk.items()
        )
        collation = t["co"]
        return Table(
            database=str(t["db"]),
            name=str(t["name"]),
            columns=tuple(self._column(c, json_columns) for c in columns),
            primary_key=tuple(primary),
            indexes=indexes,
            foreign_keys=foreign_keys,
            engine=t["engine"],
            charset=str(collation).split("_")[0] if collation else None,
            collation=collation,
            comment=str(t["comment"] or ""),
            dialect_options=self._dialect_options(str(t["db"]), str(t["name"])),
        )

    def _dialect_options(self, database: str, table: str) -> tuple[tuple[str, str], ...]:
        return ()

    def _view(self, r: Row, known: set[tuple[str, str]]) -> View:
        definition = str(r["VIEW_DEFINITION"])
        me = (str(r["TABLE_SCHEMA"]), str(r["TABLE_NAME"]))
        deps: list[str] = []
        for m in _VIEW_REFERENCE.finditer(definition):
            ref = (m.group(1).replace("``", "`"), m.group(2).replace("``", "`"))
            name = f"{ref[0]}.{ref[1]}"
            if ref in known and ref != me and name not in deps:
                deps.append(name)
        return View(
            database=me[0],
            name=me[1],
            definition=definition,
            check_option=str(r.get("CHECK_OPTION") or "NONE"),
            security_type=str(r.get("SECURITY_TYPE") or "DEFINER"),
            charset=r.get("CHARACTER_SET_CLIENT"),
            collation=r.get("COLLATION_CONNECTION"),
            depends_on=tuple(deps),
        )


class MariaDBInspector(MySQLInspector):
    """MariaDB quotes defaults as SQL and stores JSON as LONGTEXT with a check."""

    def _default(self, r: Row, data_type: str) -> ColumnDefault | None:
        return types.mariadb_default(r["COLUMN_DEFAULT"])

    def _json_columns(self, names: Sequence[str]) -> set[tuple[str, str, str]]:
        rows = self._query(
            "SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS t, CHECK_CLAUSE AS c"
            " FROM information_schema.CHECK_CONSTRAINTS"
            f" WHERE CONSTRAINT_SCHEMA IN ({_in_list(names)}) AND LEVEL = 'Column'",
            names,
        )
        found: set[tuple[str, str, str]] = set()
        for r in rows:
            m = re.fullmatch(r"json_valid\(`((?:[^`]|``)+)`\)", str(r["c"]).strip())
            if m:
                found.add((str(r["db"]), str(r["t"]), m.group(1).replace("``", "`")))
        return found


def binlog_problems(info: ServerInfo) -> tuple[str, ...]:
    """What stops binlog-based capture on a MySQL/MariaDB server, one line each."""
    problems: list[str] = []
    if not info.log_bin:
        problems.append("log_bin is OFF: start the server with --log-bin")
        return tuple(problems)
    if (info.binlog_format or "").upper() != "ROW":
        problems.append(f"binlog_format is {info.binlog_format}: set it to ROW")
    if (info.binlog_row_image or "").upper() != "FULL":
        problems.append(f"binlog_row_image is {info.binlog_row_image}: set it to FULL")
    if info.binlog_row_metadata is not None and info.binlog_row_metadata.upper() != "FULL":
        problems.append(f"binlog_row_metadata is {info.binlog_row_metadata}: set it to FULL")
    return tuple(problems)
