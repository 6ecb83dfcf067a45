"""Catalog inspection as a service call (used by the CLI now, the API later)."""

from __future__ import annotations

from collections.abc import Sequence

from duosync.config import Endpoint
from duosync.core.catalog import Catalog, Column, Index, ServerInfo, Table
from duosync.endpoints import open_inspector


def inspect_endpoint(endpoint: Endpoint, databases: Sequence[str] | None = None) -> Catalog:
    """The catalog of *endpoint*: the named databases, or the one in its URL, or all."""
    wanted = list(databases or ([endpoint.database] if endpoint.database else []))
    with open_inspector(endpoint) as inspector:
        return inspector.catalog(wanted or None)


def render_catalog(catalog: Catalog) -> str:
    """A human-readable listing of *catalog* (``duosync inspect`` without ``--json``)."""
    lines = [f"{catalog.endpoint}", *_server_lines(catalog.server)]
    for db in catalog.databases:
        lines.append("")
        lines.append(f"database {db.name}  ({db.charset}, {db.collation})")
        for table in db.tables:
            lines.extend(_table_lines(table))
        for view in db.views:
            deps = f"  reads {', '.join(view.depends_on)}" if view.depends_on else ""
            lines.append(f"  view {view.name}{deps}")
    if not catalog.databases:
        lines.append("(no user databases)")
    return "\n".join(lines)


def _server_lines(s: ServerInfo) -> list[str]:
    names = {"mysql": "MySQL", "mariadb": "MariaDB", "oceanbase": "OceanBase"}
    out = [f"  server: {names[s.flavor]} {s.version}  ({s.version_string})"]
    settings = [
        ("log_bin", "ON" if s.log_bin else "OFF"),
        ("binlog_format", s.binlog_format),
        ("binlog_row_image", s.binlog_row_image),
        ("binlog_row_metadata", s.binlog_row_metadata),
        ("gtid_strict_mode" if s.flavor == "mariadb" else "gtid_mode", s.gtid_mode),
        ("gtid_position", s.gtid_position),
        ("server_id", s.server_id),
        ("time_zone", s.time_zone),
        ("system_time_zone", s.system_time_zone),
    ]
    shown = "  ".join(f"{k}={v}" for k, v in settings if v is not None)
    out.append(f"  capture: {s.capture}  {shown}")
    out.extend(f"  problem: {p}" for p in s.capture_problems)
    return out


def _column_line(c: Column) -> str:
    parts = [f"    {c.name:<24} {c.column_type}"]
    if c.data_type == "json" and "json" not in c.column_type.lower():
        parts.append("(JSON)")
    if c.collation:
        parts.append(f"COLLATE {c.collation}")
    if c.generated:
        kind = "STORED" if c.generated.stored else "VIRTUAL"
        parts.append(f"AS ({c.generated.expression}) {kind}")
    parts.append("NULL" if c.nullable else "NOT NULL")
    if c.default is not None:
        shown = (
            c.default.value
            if c.default.kind == "expression"
            else "'" + c.default.value.replace("'", "''") + "'"
        )
        parts.append(f"DEFAULT {shown}")
    if c.on_update:
        parts.append(f"ON UPDATE {c.on_update}")
    if c.auto_increment:
        parts.append("AUTO_INCREMENT")
    return " ".join(parts)


def _index_cols(index: Index) -> str:
    return ", ".join(
        c.name + (f"({c.prefix})" if c.prefix else "") + (" DESC" if c.descending else "")
        for c in index.columns
    )


def _table_lines(t: Table) -> list[str]:
    pk = f"primary key ({', '.join(t.primary_key)})" if t.primary_key else "NO PRIMARY KEY"
    lines = [f"  table {t.name}  [{t.engine}, {t.collation}]  {pk}"]
    lines.extend(_column_line(c) for c in t.columns)
    for idx in t.indexes:
        kind = "unique" if idx.unique else idx.kind.lower() if idx.kind != "BTREE" else "index"
        lines.append(f"    {kind} {idx.name} ({_index_cols(idx)})")
    for fk in t.foreign_keys:
        lines.append(
            f"    foreign key {fk.name} ({', '.join(fk.columns)}) -> {fk.ref_database}."
            f"{fk.ref_table} ({', '.join(fk.ref_columns)}) ON UPDATE {fk.on_update}"
            f" ON DELETE {fk.on_delete}"
        )
    if t.dialect_options:
        lines.append("    options: " + " ".join(f"{k}={v}" for k, v in t.dialect_options))
    return lines
