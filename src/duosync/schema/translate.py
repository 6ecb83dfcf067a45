"""Translate a source table or view into what the target should hold (still neutral).

Translation is a pure function from the source catalog object, the renames and the
target family to the *target's* neutral object: renamed database, table, columns
(also inside generated expressions and key definitions), and character sets or
collations the target family lacks mapped to the nearest it has. Rendering DDL
(``schema/ddl.py``) and comparing with an existing target table both start from
this one value, so what we create and what we accept as "identical" cannot drift.

Every mapping that changes meaning is reported as a ``Note`` so the user sees it;
nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from duosync.config import Flavor
from duosync.core.catalog import Column, ForeignKey, Generated, Index, IndexColumn, Table, View

#: character sets each target family accepts (None: any MySQL charset)
_TARGET_CHARSETS: dict[Flavor, frozenset[str] | None] = {
    # OceanBase seekdb knows exactly these two (measured; SHOW CHARSET).
    Flavor.OCEANBASE: frozenset({"utf8mb4", "binary"}),
    Flavor.MARIADB: None,
    Flavor.MYSQL: None,
    # PostgreSQL columns have no character set: the database's (UTF8) holds every one
    Flavor.POSTGRESQL: None,
}
# Collations that exist on MySQL 8 only, with MariaDB's closest equivalent.
_MARIADB_COLLATIONS = {
    "utf8mb4_0900_ai_ci": "utf8mb4_unicode_520_ci",
    "utf8mb4_0900_as_cs": "utf8mb4_bin",
    "utf8mb4_0900_bin": "utf8mb4_bin",
}
_BACKQUOTED = re.compile(r"`((?:[^`]|``)+)`")


@dataclass(frozen=True)
class Note:
    """Something translation changed or cannot carry over, shown to the user."""

    object: str  # "db.table" or "db.table.column" on the source side
    message: str
    unsupported: bool = False  # True: the object is not created at all

    def __str__(self) -> str:
        return f"{self.object}: {self.message}"


ColumnRename = Callable[[str], str]


class RenameRules(Protocol):
    """What translation needs of the task's renames (``spec.Renames`` satisfies it)."""

    def table(self, database: str, name: str) -> tuple[str, str]: ...

    def column(self, database: str, table: str, column: str) -> str: ...


def map_charset(
    charset: str | None, collation: str | None, target: Flavor
) -> tuple[str | None, str | None, str | None]:
    """(charset, collation, why-changed) for *target*; why is None when unchanged."""
    if charset is None:
        return None, collation, None
    allowed = _TARGET_CHARSETS[target]
    if allowed is not None and charset not in allowed:
        binary_like = collation is not None and collation.endswith("_bin")
        new_collation = "utf8mb4_bin" if binary_like else "utf8mb4_general_ci"
        return (
            "utf8mb4",
            new_collation,
            f"character set {charset} ({collation}) does not exist on {target.value};"
            f" using utf8mb4 ({new_collation})",
        )
    if charset in ("utf8", "utf8mb3") and target is Flavor.OCEANBASE:
        return (
            "utf8mb4",
            (collation or "").replace("utf8mb3", "utf8mb4").replace("utf8_", "utf8mb4_") or None,
            None,
        )
    if target is Flavor.MARIADB and collation in _MARIADB_COLLATIONS:
        new = _MARIADB_COLLATIONS[collation]
        return charset, new, f"collation {collation} does not exist on MariaDB; using {new}"
    return charset, collation, None


def rename_identifiers(expr: str, rename: ColumnRename) -> str:
    """Rewrite every backquoted column name in a generated-column expression."""
    return _BACKQUOTED.sub(
        lambda m: "`" + rename(m.group(1).replace("``", "`")).replace("`", "``") + "`", expr
    )


def translate_table(
    table: Table, *, target: Flavor, renames: RenameRules
) -> tuple[Table, list[Note]]:
    """The target form of *table* and the notes about what changed on the way."""
    target_database, target_name = renames.table(table.database, table.name)

    def rename_column(name: str) -> str:
        return renames.column(table.database, table.name, name)

    notes: list[Note] = []
    columns: list[Column] = []
    for col in table.columns:
        charset, collation, why = map_charset(col.charset, col.collation, target)
        if why:
            notes.append(Note(f"{table.qualified}.{col.name}", why))
        if target is Flavor.OCEANBASE and col.data_type in ("longtext", "longblob"):
            notes.append(
                Note(
                    f"{table.qualified}.{col.name}",
                    f"{col.data_type} holds at most 512 MiB per value on OceanBase",
                )
            )
        generated = col.generated
        if generated is not None:
            generated = Generated(
                expression=rename_identifiers(generated.expression, rename_column),
                stored=generated.stored,
            )
        columns.append(
            col.model_copy(
                update={
                    "name": rename_column(col.name),
                    "charset": charset,
                    "collation": collation,
                    "generated": generated,
                }
            )
        )
    charset, collation, why = map_charset(table.charset, table.collation, target)
    if why:
        notes.append(Note(table.qualified, why))
    indexes = tuple(
        Index(
            name=i.name,
            columns=tuple(
                IndexColumn(name=rename_column(c.name), prefix=c.prefix, descending=c.descending)
                for c in i.columns
            ),
            unique=i.unique,
            kind=i.kind,
            comment=i.comment,
        )
        for i in table.indexes
    )
    fks: list[ForeignKey] = []
    for fk in table.foreign_keys:
        ref_db, ref_table = renames.table(fk.ref_database, fk.ref_table)
        fks.append(
            fk.model_copy(
                update={
                    "columns": tuple(rename_column(c) for c in fk.columns),
                    "ref_database": ref_db,
                    "ref_table": ref_table,
                    "ref_columns": tuple(
                        renames.column(fk.ref_database, fk.ref_table, c) for c in fk.ref_columns
                    ),
                }
            )
        )
    translated = Table(
        database=target_database,
        name=target_name,
        columns=tuple(columns),
        primary_key=tuple(rename_column(c) for c in table.primary_key),
        indexes=indexes,
        foreign_keys=tuple(fks),
        engine="InnoDB" if target is not Flavor.OCEANBASE else table.engine,
        charset=charset,
        collation=collation,
        comment=table.comment,
        dialect_options=table.dialect_options if target is Flavor.OCEANBASE else (),
    )
    return translated, notes


def translate_view(view: View, *, renames: RenameRules) -> View:
    """The target form of *view*: references to renamed databases/tables rewritten.

    Only fully qualified, backquoted references (the form servers store) are
    rewritten; the servers store view definitions that way.
    """
    target_database, target_name = renames.table(view.database, view.name)
    rename_table = renames.table
    pair = re.compile(r"`((?:[^`]|``)+)`\.`((?:[^`]|``)+)`")

    def swap(m: re.Match[str]) -> str:
        db = m.group(1).replace("``", "`")
        name = m.group(2).replace("``", "`")
        new_db, new_name = rename_table(db, name)
        return f"`{new_db.replace('`', '``')}`.`{new_name.replace('`', '``')}`"

    return view.model_copy(
        update={
            "database": target_database,
            "name": target_name,
            "definition": pair.sub(swap, view.definition),
            "depends_on": tuple(".".join(rename_table(*d.split(".", 1))) for d in view.depends_on),
        }
    )
