"""The task spec: what a user writes in YAML and runs with ``duosync migrate -f``.

A spec names a source and a target endpoint, the phases to run, the objects to move,
how to rename them and which rows to keep, plus tuning options::

    name: shop-to-ob
    source: {url: mariadb://migrator@10.0.0.5:3306, password_env: SRC_PASSWORD}
    target: oceanbase://root@10.0.0.9:2881
    types: [schema, full]
    select:
      databases: [shop]                 # whole databases
      objects: [crm.customers]          # single tables or views, "db.name"
      include: ["sales_*.order_?"]      # wildcard rules on "db.name"
      exclude: [shop.tmp_*]             # removes whatever the lines above selected
    rename:
      databases: {shop: shop_v2}
      tables: {crm.customers: clients}
      columns: {crm.customers: {mail: email}}
    filters:
      crm.customers: "country = 'FR'"
    options: {read_concurrency: 8}

It is validated once (``specfile.load_spec``/``parse_spec``) into these frozen models; every
problem becomes a ``ConfigError`` naming the file and the field path, and never
quoting a password. What only the real catalog can reveal (a rename that collides
with a table selected by a wildcard, ...) is checked by ``TaskSpec.check_catalog``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from pydantic import (
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from duosync.config import Endpoint, Flavor
from duosync.core.catalog import Catalog, Table, View
from duosync.errors import ConfigError
from duosync.spec_filters import event_problem
from duosync.spec_names import (
    ColumnName,
    Condition,
    DatabaseName,
    ObjectName,
    Rule,
    SourceDatabase,
    SourceTable,
    SpecModel,
    TableTarget,
    TargetDatabase,
    TaskName,
    as_set,
    is_system_database,
    split_rules,
)
from duosync.spec_options import Options as Options
from duosync.spec_options import Placement as Placement
from duosync.spec_options import ReverseOptions as ReverseOptions
from duosync.spec_options import Strategy as Strategy
from duosync.spec_values import ConflictPolicy as ConflictPolicy
from duosync.spec_values import DdlKind as DdlKind
from duosync.spec_values import DmlKind as DmlKind
from duosync.spec_values import MigrationType as MigrationType
from duosync.spec_values import NonEmptyTarget as NonEmptyTarget
from duosync.spec_values import OnDataError as OnDataError
from duosync.spec_values import Side as Side
from duosync.spec_values import StorageFormat as StorageFormat
from duosync.spec_values import Topology as Topology
from duosync.spec_values import parse_duration as parse_duration
from duosync.spec_values import show_value as show_value


class Selection(SpecModel):
    """Which source tables and views the task moves.

    An object is selected when its database is listed in ``databases``, or it is
    listed in ``objects`` as ``db.name``, or it matches an ``include`` rule; and it
    matches no ``exclude`` rule. Rules are ``db_pattern.name_pattern`` with fnmatch
    wildcards (``*`` any run, ``?`` one character, ``[abc]`` a class), matched
    case-sensitively and part by part (``*`` never crosses the dot). Rules never match
    system databases (``mysql``, ``information_schema``, ``oms``, ...).

    ``import`` names a text file listing objects (``duosync.spec_import``); the
    spec file's reader (``specfile.parse_spec``) merges its lines into ``objects``
    and ``rename.tables`` and drops the field, so a validated spec never depends
    on the file.
    """

    databases: tuple[DatabaseName, ...] = ()
    objects: tuple[ObjectName, ...] = ()
    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()
    #: ``import`` in a spec (a Python keyword); always None once validated, and
    #: never dumped, so a stored spec reloads without the file
    import_file: str | None = Field(default=None, alias="import", exclude=True, repr=False)

    @field_validator("import_file")
    @classmethod
    def _import_read(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "the file is read when the spec is loaded (specfile.parse_spec), not by the model"
            )
        return value

    @model_validator(mode="after")
    def _selects_something(self) -> Selection:
        if not (self.databases or self.objects or self.include):
            raise ValueError(
                "selects nothing: give at least one of databases, objects or include"
                " (exclude only removes)"
            )
        return self

    def _excluded(self, database: str, name: str) -> bool:
        return any(
            fnmatchcase(database, d) and fnmatchcase(name, n) for d, n in split_rules(self.exclude)
        )

    def matches(self, database: str, name: str) -> bool:
        """Whether the source table or view ``database.name`` is selected."""
        if self._excluded(database, name):
            return False
        if database in as_set(self.databases) or f"{database}.{name}" in as_set(self.objects):
            return True
        if is_system_database(database):
            return False
        return any(
            fnmatchcase(database, d) and fnmatchcase(name, n) for d, n in split_rules(self.include)
        )

    def candidate_databases(self, available: Sequence[str]) -> list[str]:
        """Those of *available* (in their order) that may hold selected objects: the
        databases worth inspecting. A database excluded as a whole (``db.*``) is left
        out."""
        named = as_set(self.databases) | {o.split(".")[0] for o in self.objects}
        result: list[str] = []
        for database in available:
            if database in result:
                continue
            if any(fnmatchcase(database, d) and n == "*" for d, n in split_rules(self.exclude)):
                continue
            if database in named or (
                not is_system_database(database)
                and any(fnmatchcase(database, d) for d, _ in split_rules(self.include))
            ):
                result.append(database)
        return result


# -- renames -------------------------------------------------------------------------------


class Renames(SpecModel):
    """Target names of source objects; anything not listed keeps its name.

    ``tables`` values are ``dst_table`` (kept in the database's target, i.e. after
    the database rename) or ``dst_db.dst_table``; a table rename wins over the
    database rename. It applies to views too. Column names are matched
    case-insensitively, as the servers do.
    """

    databases: dict[SourceDatabase, TargetDatabase] = Field(default_factory=dict)
    tables: dict[SourceTable, TableTarget] = Field(default_factory=dict)
    columns: dict[SourceTable, dict[ColumnName, ColumnName]] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _columns_distinct(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for table, mapping in value.items():
            sources: dict[str, str] = {}
            targets: dict[str, str] = {}
            for src, dst in mapping.items():
                if (seen := sources.setdefault(src.lower(), src)) != src:
                    raise ValueError(
                        f"{table}: {show_value(seen)} and {show_value(src)} are the same column"
                        " (column names are case-insensitive)"
                    )
                if (other := targets.setdefault(dst.lower(), src)) != src:
                    raise ValueError(
                        f"{table}: columns {show_value(other)} and {show_value(src)} would both"
                        f" become {show_value(dst)}"
                    )
        return value

    def table(self, database: str, name: str) -> tuple[str, str]:
        """Target ``(database, name)`` of the source table or view ``database.name``."""
        target = self.tables.get(f"{database}.{name}")
        if target is not None and "." in target:
            db, table = target.split(".")
            return db, table
        return self.databases.get(database, database), target if target is not None else name

    def column(self, database: str, table: str, column: str) -> str:
        """Target name of a source column."""
        mapping = self.columns.get(f"{database}.{table}")
        if not mapping:
            return column
        if column in mapping:
            return mapping[column]
        lowered = column.lower()
        for src, dst in mapping.items():
            if src.lower() == lowered:
                return dst
        return column


#: a two-way task's reverse task is named after it with this suffix
REVERSE_SUFFIX = ".reverse"


# -- the task ------------------------------------------------------------------------------

_PHASE_ORDER = {t: i for i, t in enumerate(MigrationType)}

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _server_key(ep: Endpoint) -> tuple[str, str, int]:
    # mysql:// and mariadb:// may name the same server (the server says what it is),
    # and localhost/127.0.0.1/::1 are one machine: compare what cannot differ.
    family = "oceanbase" if ep.flavor is Flavor.OCEANBASE else "mysql"
    host = ep.host.lower().rstrip(".")
    return family, "localhost" if host in _LOOPBACK else host, ep.port


def same_server(a: Endpoint, b: Endpoint) -> bool:
    """Whether two endpoints address the same server (by family, host and port)."""
    return _server_key(a) == _server_key(b)


class TaskSpec(SpecModel):
    """One migration task as written by the user, validated."""

    name: TaskName
    source: Endpoint
    target: Endpoint
    #: phases to run, stored in phase order (schema, full, incremental) whatever the
    #: order written, so comparisons and the runner need not sort
    types: tuple[MigrationType, ...] = (MigrationType.SCHEMA, MigrationType.FULL)
    select: Selection
    rename: Renames = Renames()
    #: "src_db.src_table": SQL condition (without WHERE) rows must satisfy to be copied
    filters: dict[SourceTable, Condition] = Field(default_factory=dict)
    options: Options = Options()
    topology: Topology = Topology.ONE_WAY
    #: two-way only: options of the reverse task (defaults when omitted)
    reverse: ReverseOptions | None = None

    @field_validator("source", "target", mode="wrap")
    @classmethod
    def _endpoint(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Endpoint raises ConfigError for a malformed URL (its message is already
        # redacted); turn it into a field error so it gets the field path.
        try:
            return handler(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("types")
    @classmethod
    def _types(cls, value: tuple[MigrationType, ...]) -> tuple[MigrationType, ...]:
        if not value:
            raise ValueError("give at least one of schema, full, incremental")
        seen: set[MigrationType] = set()
        for t in value:
            if t in seen:
                raise ValueError(f"{t.value!r} is listed twice")
            seen.add(t)
        return tuple(sorted(value, key=_PHASE_ORDER.__getitem__))

    @model_validator(mode="after")
    def _cross_checks(self) -> TaskSpec:
        if self.options.post_indexing and not {MigrationType.SCHEMA, MigrationType.FULL} <= set(
            self.types
        ):
            raise ValueError(
                "options.post_indexing: needs both 'schema' and 'full' in types (indexes are"
                " created by schema migration after the full copy)"
            )
        if (
            self.options.oceanbase_storage is not StorageFormat.DEFAULT
            and self.target.flavor is not Flavor.OCEANBASE
        ):
            raise ValueError(
                "options.oceanbase_storage: applies only to an OceanBase target;"
                " leave it at 'default'"
            )
        if self.options.incremental_start is not None and (
            MigrationType.INCREMENTAL not in self.types or MigrationType.FULL in self.types
        ):
            raise ValueError(
                "options.incremental_start: only for a task with 'incremental' and without"
                " 'full' in types (after a full migration, incremental starts where it began)"
            )
        if self.options.heartbeat_seconds is not None and MigrationType.INCREMENTAL not in (
            self.types
        ):
            raise ValueError("options.heartbeat_seconds: needs 'incremental' in types")
        if MigrationType.INCREMENTAL in self.types:
            for table, condition in self.filters.items():
                problem = event_problem(condition)
                if problem is not None:
                    raise ValueError(
                        f"filters.{table}: incremental sync evaluates the filter on every"
                        f" change of the table, and this one cannot be: {problem}. Write"
                        " a condition on the row's columns only, or remove 'incremental'"
                    )
        self._check_postgresql()
        self._check_two_way()
        self._check_convergence()
        self._check_known_targets()
        return self

    def _check_postgresql(self) -> None:
        """What a PostgreSQL endpoint can do so far: be the target of schema and
        full migration (incremental sync and PostgreSQL sources come next)."""
        if self.source.flavor is Flavor.POSTGRESQL:
            raise ValueError(
                "source: a PostgreSQL source is not supported yet; PostgreSQL can be a"
                " target of schema and full migration"
            )
        if self.target.flavor is not Flavor.POSTGRESQL:
            return
        if MigrationType.INCREMENTAL in self.types or self.topology is Topology.TWO_WAY:
            raise ValueError(
                "types: incremental sync to a PostgreSQL target is not supported yet;"
                " give types: [schema, full]"
            )
        if self.options.non_empty_target is NonEmptyTarget.IGNORE:
            raise ValueError(
                "options.non_empty_target: ignore is not supported for a PostgreSQL"
                " target yet; empty the target tables and use stop"
            )

    def _check_convergence(self) -> None:
        """The converging policies' options (``sync.convergence``)."""
        policy = self.options.conflict
        converging = policy is not None and policy.converging
        if converging and self.topology is not Topology.TWO_WAY:
            if not self.name.endswith(REVERSE_SUFFIX):  # a reverse task is one-way
                raise ValueError(
                    f"options.conflict: {policy} makes both sides of a two-way sync"
                    " converge; set topology: two-way, or use overwrite or ignore"
                )
            return
        if self.topology is Topology.TWO_WAY:
            theirs = self.reverse.conflict if self.reverse is not None else None
            if theirs is not None and (theirs.converging or converging) and theirs != policy:
                raise ValueError(
                    f"reverse.conflict: {theirs} differs from options.conflict:"
                    f" {policy or 'unset'}; the two tasks of a pair must agree (set the"
                    " policy in options.conflict and leave reverse.conflict out)"
                )
        if (self.options.winner is None) == (policy is ConflictPolicy.SITE_PRIORITY):
            raise ValueError(
                "options.winner: site_priority needs it (source or target: the side that"
                " wins every conflict)"
                if self.options.winner is None
                else "options.winner: only for conflict: site_priority"
            )
        if self.options.lww_column and policy is not ConflictPolicy.LAST_WRITER_WINS:
            raise ValueError("options.lww_column: only for conflict: last_writer_wins")
        for key, column in self.options.lww_column.items():
            if key.count(".") != 1 or not column:
                raise ValueError(f"options.lww_column: {show_value(key)}: give db.table: column")
        if (
            policy is ConflictPolicy.LAST_WRITER_WINS
            and not self.options.lww_column
            and Flavor.OCEANBASE not in (self.source.flavor, self.target.flavor)
        ):
            raise ValueError(
                "options.conflict: last_writer_wins by commit time needs an OceanBase side:"
                " MariaDB and MySQL cannot tell when a row they hold was last written"
                " (OceanBase can: ORA_ROWSCN). Give options.lww_column {db.table: column}"
                " with a column the application sets to the change's UTC time, or use"
                " site_priority"
            )

    def _check_two_way(self) -> None:
        if self.topology is not Topology.TWO_WAY:
            if self.reverse is not None:
                raise ValueError("reverse: only for topology: two-way")
            return
        if MigrationType.INCREMENTAL not in self.types:
            raise ValueError(
                "topology: two-way needs 'incremental' in types (the reverse task starts"
                " once the forward task's incremental sync is monitoring)"
            )
        if len(self.name) + len(REVERSE_SUFFIX) > 64:
            raise ValueError(
                f"name: at most {64 - len(REVERSE_SUFFIX)} characters for a two-way task"
                f" (its reverse task is named NAME{REVERSE_SUFFIX})"
            )
        if self.name.endswith(REVERSE_SUFFIX):
            raise ValueError(f"name: must not end with {REVERSE_SUFFIX!r} (reverse tasks use it)")
        policy = self.options.conflict
        if self.filters and policy is not None and policy.converging:
            raise ValueError(
                f"filters: a filtered two-way pair cannot use conflict: {policy} (a decided"
                " row may lie outside the filter on one side); use overwrite or ignore, or"
                " remove the filters"
            )
        if self.options.dml != tuple(DmlKind):
            raise ValueError(
                "options.dml: a two-way pair carries every kind of row change; remove"
                " options.dml, or use topology: one-way"
            )

    @property
    def conflict_policy(self) -> ConflictPolicy | None:
        """The conflict policy incremental sync applies (None: none, idempotent)."""
        if self.options.conflict is None and self.topology is Topology.TWO_WAY:
            return ConflictPolicy.OVERWRITE
        return self.options.conflict

    @property
    def reverse_name(self) -> str:
        return self.name + REVERSE_SUFFIX

    def _known_sources(self) -> tuple[list[str], list[str]]:
        """Source tables the file names explicitly: (renamed, others that are selected)."""
        renamed = list(self.rename.tables)
        others = list(self.select.objects)
        for key in (*self.filters, *self.rename.columns):
            if key not in others and self.select.matches(*key.split(".")):
                others.append(key)
        return renamed, [k for k in others if k not in self.rename.tables]

    def _check_known_targets(self) -> None:
        """Collisions visible in the file itself; check_catalog repeats this with the
        real list of selected objects."""
        renamed, others = self._known_sources()
        same = same_server(self.source, self.target)
        if same:
            if not self.rename.databases and not self.rename.tables:
                raise ValueError(self._same_table_message("every selected table"))
            for database in self.select.databases:
                if self.rename.databases.get(database, database) == database:
                    raise ValueError(
                        self._same_table_message(f"every table of database {show_value(database)}")
                    )
        targets: dict[tuple[str, str], str] = {}
        for key in [*renamed, *others]:
            database, name = key.split(".")
            target = self.rename.table(database, name)
            if same and target == (database, name):
                raise ValueError(self._same_table_message(key))
            other = targets.setdefault(target, key)
            if other != key:
                raise ValueError(
                    f"rename: {other} and {key} would both become {'.'.join(target)} on the target"
                )

    def _same_table_message(self, what: str) -> str:
        return (
            f"target: source and target are the same table: {what} would be copied onto itself"
            f" on {self.source.display}; rename it (rename.databases or rename.tables)"
            " or choose another target"
        )

    def selected_tables(self, catalog: Catalog) -> list[Table]:
        """Selected source tables (not views), in catalog order."""
        return [
            t for db in catalog.databases for t in db.tables if self.select.matches(db.name, t.name)
        ]

    def selected_views(self, catalog: Catalog) -> list[View]:
        """Selected source views, in catalog order."""
        return [
            v for db in catalog.databases for v in db.views if self.select.matches(db.name, v.name)
        ]

    def filter_for(self, database: str, table: str) -> str | None:
        """The row filter condition (without WHERE) of a source table, if any."""
        return self.filters.get(f"{database}.{table}")

    def check_catalog(self, catalog: Catalog) -> None:
        """Refuse what only the source catalog reveals: two selected objects renamed
        onto one target, an object copied onto itself on the same server, a column
        renamed onto another column of its table. Raise ``ConfigError`` listing all."""
        problems: list[str] = []
        same = same_server(self.source, self.target)
        targets: dict[tuple[str, str], str] = {}
        tables = self.selected_tables(catalog)
        objects: list[Table | View] = [*tables, *self.selected_views(catalog)]
        for obj in objects:
            target = self.rename.table(obj.database, obj.name)
            if same and target == (obj.database, obj.name):
                problems.append(f"source and target are the same table: {obj.qualified}")
            other = targets.setdefault(target, obj.qualified)
            if other != obj.qualified:
                problems.append(f"{other} and {obj.qualified} would both become {'.'.join(target)}")
        for table in tables:
            names: dict[str, str] = {}
            for col in table.columns:
                new = self.rename.column(table.database, table.name, col.name)
                if (other := names.setdefault(new.lower(), col.name)) != col.name:
                    problems.append(
                        f"{table.qualified}: columns {other} and {col.name} would both become {new}"
                    )
        if problems:
            raise ConfigError("; ".join(problems), task=self.name, endpoint=self.source.display)
