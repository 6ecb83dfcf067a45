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

import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from duosync.config import Endpoint, Flavor, redact_url
from duosync.core.catalog import Catalog, Table, View
from duosync.errors import ConfigError


class MigrationType(StrEnum):
    """A phase of the task; phases always run in this order."""

    SCHEMA = "schema"
    FULL = "full"
    INCREMENTAL = "incremental"


class NonEmptyTarget(StrEnum):
    """What full migration does when a target table already holds rows."""

    STOP = "stop"  #: refuse to start: the rows may be someone else's data
    IGNORE = "ignore"  #: go on; conflicting rows are logged, the target's are kept


class ConflictPolicy(StrEnum):
    """What incremental sync does with a change that conflicts with the target's
    rows (see ``sync.conflicts``); every conflict is recorded either way."""

    IGNORE = "ignore"  #: keep the target's row
    OVERWRITE = "overwrite"  #: the source's row wins
    #: two-way only, both sides end with the same row (``sync.convergence``): the
    #: change committed later wins, ties to the arbiter side
    LAST_WRITER_WINS = "last_writer_wins"
    #: two-way only: the side named by ``options.winner`` wins every conflict
    SITE_PRIORITY = "site_priority"

    @property
    def converging(self) -> bool:
        """Whether the policy makes both sides of a two-way sync end identical."""
        return self in (ConflictPolicy.LAST_WRITER_WINS, ConflictPolicy.SITE_PRIORITY)


class Side(StrEnum):
    """A side of a two-way sync, named as the forward task sees it."""

    SOURCE = "source"
    TARGET = "target"


class OnDataError(StrEnum):
    """What incremental sync does with a row the target refuses (a value out of
    range, a NOT NULL or foreign-key violation ...)."""

    STOP = "stop"  #: the task fails, naming the row, its table and position
    SKIP = "skip"  #: the row is recorded in the conflict log with its images; go on


#: retry_for's default: a day, so a weekend-long outage still needs no person
DEFAULT_RETRY_FOR = 24 * 3600.0
_DURATION = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: Any) -> float:
    """Seconds of a duration written as a number of seconds or as ``90s``, ``30m``,
    ``24h``, ``1h30m``, ``7d`` (units in that order)."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 15m, 24h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        match = _DURATION.match(text)
        if text and re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif not text or match is None or not any(match.groupdict().values()):
            raise ValueError(
                f"{show_value(value)} is not a duration: write e.g. 30s, 15m, 24h, 1h30m, 7d"
                " or a number of seconds"
            )
        else:
            seconds = sum(
                float(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n
            )
    else:
        raise ValueError("a duration such as 30s, 15m, 24h or a number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: seconds, written as a duration (``parse_duration``)
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=365 * 86400.0)]


class Topology(StrEnum):
    ONE_WAY = "one-way"
    #: a forward task plus a reverse task (incremental DML only) from target to source
    TWO_WAY = "two-way"


class StorageFormat(StrEnum):
    """Storage of tables created on an OceanBase (4.3+) target."""

    DEFAULT = "default"  #: whatever the tenant's settings say
    ROW = "row"
    COLUMN = "column"
    HYBRID = "hybrid"


# -- names -------------------------------------------------------------------------------

# Never selected by a wildcard and refused when named: copying the server's own
# catalogs is never what a data migration means, and `oms` holds the transaction
# marker tables two-way sync uses to drop its own changes; copying those would break
# loop prevention. Compared case-insensitively, as the servers do for these names.
SYSTEM_DATABASES = frozenset(
    {
        "information_schema",
        "performance_schema",
        "mysql",
        "sys",
        "oceanbase",
        "lbacsys",
        "oraauditor",
        "__public",
        "__recyclebin",
        "oms",
    }
)

_WILDCARD_CHARS = frozenset("*?[")
_TASK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def is_system_database(name: str) -> bool:
    return name.lower() in SYSTEM_DATABASES


def show_value(value: object) -> str:
    """Quote user text in a message; a URL with a password typed in the wrong place
    must still not leak it."""
    return repr(redact_url(str(value)))


def _check_part(value: str, what: str) -> None:
    if not value:
        raise ValueError(f"{what} is empty")
    if value != value.strip():
        raise ValueError(f"{what} {show_value(value)} has spaces around it")


def _split_qualified(value: str, what: str) -> tuple[str, str]:
    """Split ``db.name``. Names containing a dot are legal in MySQL (quoted), but then
    ``a.b.c`` would be ambiguous; we refuse them rather than guess the split."""
    if value.count(".") != 1:
        extra = "; a name containing a dot is not supported" if value.count(".") > 1 else ""
        raise ValueError(f"{what} {show_value(value)} must be 'db.name'{extra}")
    database, name = value.split(".")
    _check_part(database, f"the database part of {what}")
    _check_part(name, f"the name part of {what}")
    return database, name


def _no_wildcards(value: str, what: str, hint: str) -> None:
    # A '*' here is almost always someone expecting a pattern; say where patterns go
    # instead of silently looking for a table literally named 'order_*'.
    if _WILDCARD_CHARS & set(value):
        raise ValueError(f"{what} {show_value(value)} names one object; {hint}")


def _not_system(database: str, what: str) -> None:
    if is_system_database(database):
        raise ValueError(
            f"{what} {show_value(database)} is a system database; it cannot be migrated"
        )


def _check_database(value: str) -> str:
    _check_part(value, "database name")
    if "." in value:
        raise ValueError(
            f"database name {show_value(value)}: a name containing a dot is not supported"
        )
    _no_wildcards(value, "database", "use include: ['db_pattern.*'] for wildcards")
    _not_system(value, "database")
    return value


def _check_object(value: str) -> str:
    database, _ = _split_qualified(value, "object")
    _no_wildcards(value, "object", "use include: for wildcards")
    _not_system(database, "database")
    return value


def _check_rule(value: str) -> str:
    # Patterns are matched part by part so that '*' never runs across the dot: with
    # one pattern over the whole "db.name", 'shop*' would also pick 'shopping.x'.
    if value.count(".") != 1:
        raise ValueError(
            f"rule {show_value(value)} must be 'db_pattern.name_pattern' with exactly one dot"
            " (e.g. 'sales_*.order_?', 'shop.*')"
        )
    db_pattern, name_pattern = value.split(".")
    _check_part(db_pattern, "the database pattern of a rule")
    _check_part(name_pattern, "the name pattern of a rule")
    if not _WILDCARD_CHARS & set(db_pattern):
        _not_system(db_pattern, "database")
    return value


def _check_keyed_object(value: str) -> str:
    """Keys of rename.tables, rename.columns and filters: one source table."""
    _split_qualified(value, "table")
    _no_wildcards(value, "table", "wildcards are not supported here")
    return value


def _check_table_target(value: str) -> str:
    if "." in value:
        database, _ = _split_qualified(value, "rename target")
        _not_system(database, "target database")
    else:
        _check_part(value, "rename target")
    return value


def _check_name(value: str) -> str:
    _check_part(value, "name")
    return value


_WHERE = re.compile(r"\s*where\b", re.IGNORECASE)


def _check_condition(value: str) -> str:
    """A row filter is pasted into ``WHERE (<condition>) AND <chunk range>``; it must be
    one expression that cannot escape those parentheses or end the statement."""
    text = value.strip()
    if not text:
        raise ValueError("a row filter must not be empty")
    if _WHERE.match(text):
        raise ValueError("write only the condition, without the word WHERE")
    quote: str | None = None
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if quote is not None:
            if ch == "\\" and quote != "`":
                i += 1  # the escaped character cannot close the string
            elif ch == quote:
                if nxt == quote:
                    i += 1  # a doubled quote stands for itself
                else:
                    quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            raise ValueError("a row filter is one condition: ';' outside quotes is not allowed")
        elif ch == "#" or (ch == "/" and nxt == "*") or (ch == "-" and nxt == "-"):
            following = text[i + 2 : i + 3]
            # '--' starts a comment only when followed by a space or the end ("a--1"
            # is a minus twice); a comment would swallow the chunk range after it.
            if ch != "-" or following in ("", " ", "\t", "\n", "\r"):
                raise ValueError("a row filter must not contain SQL comments")
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("a row filter has a ')' without its '('")
        i += 1
    if quote is not None:
        raise ValueError(f"a row filter has an unterminated {quote} quote")
    if depth:
        raise ValueError("a row filter has a '(' without its ')'")
    return text


def _check_task_name(value: str) -> str:
    if not _TASK_NAME.fullmatch(value):
        raise ValueError("use 1 to 64 letters, digits, '_', '.' or '-'")
    return value


DatabaseName = Annotated[str, AfterValidator(_check_database)]
ObjectName = Annotated[str, AfterValidator(_check_object)]
Rule = Annotated[str, AfterValidator(_check_rule)]
SourceTable = Annotated[str, AfterValidator(_check_keyed_object)]
# a source database only has to be a name: renaming one never selected is harmless
SourceDatabase = Annotated[str, AfterValidator(_check_name)]
TargetDatabase = DatabaseName
TableTarget = Annotated[str, AfterValidator(_check_table_target)]
ColumnName = Annotated[str, AfterValidator(_check_name)]
Condition = Annotated[str, AfterValidator(_check_condition)]
TaskName = Annotated[str, AfterValidator(_check_task_name)]


@lru_cache(maxsize=256)
def _split_rules(rules: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Cached on the (validated, immutable) tuple: matches() runs once per table.
    return tuple((r.split(".")[0], r.split(".")[1]) for r in rules)


@lru_cache(maxsize=256)
def _as_set(items: tuple[str, ...]) -> frozenset[str]:
    return frozenset(items)


class _Spec(BaseModel):
    # hide_input_in_errors: an error must not echo input back (an endpoint URL may
    # hold a password); parse_spec renders errors itself from field paths.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# -- selection -----------------------------------------------------------------------------


class Selection(_Spec):
    """Which source tables and views the task moves.

    An object is selected when its database is listed in ``databases``, or it is
    listed in ``objects`` as ``db.name``, or it matches an ``include`` rule; and it
    matches no ``exclude`` rule. Rules are ``db_pattern.name_pattern`` with fnmatch
    wildcards (``*`` any run, ``?`` one character, ``[abc]`` a class), matched
    case-sensitively and part by part (``*`` never crosses the dot). Rules never match
    system databases (``mysql``, ``information_schema``, ``oms``, ...).
    """

    databases: tuple[DatabaseName, ...] = ()
    objects: tuple[ObjectName, ...] = ()
    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()

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
            fnmatchcase(database, d) and fnmatchcase(name, n) for d, n in _split_rules(self.exclude)
        )

    def matches(self, database: str, name: str) -> bool:
        """Whether the source table or view ``database.name`` is selected."""
        if self._excluded(database, name):
            return False
        if database in _as_set(self.databases) or f"{database}.{name}" in _as_set(self.objects):
            return True
        if is_system_database(database):
            return False
        return any(
            fnmatchcase(database, d) and fnmatchcase(name, n) for d, n in _split_rules(self.include)
        )

    def candidate_databases(self, available: Sequence[str]) -> list[str]:
        """Those of *available* (in their order) that may hold selected objects: the
        databases worth inspecting. A database excluded as a whole (``db.*``) is left
        out."""
        named = _as_set(self.databases) | {o.split(".")[0] for o in self.objects}
        result: list[str] = []
        for database in available:
            if database in result:
                continue
            if any(fnmatchcase(database, d) and n == "*" for d, n in _split_rules(self.exclude)):
                continue
            if database in named or (
                not is_system_database(database)
                and any(fnmatchcase(database, d) for d, _ in _split_rules(self.include))
            ):
                result.append(database)
        return result


# -- renames -------------------------------------------------------------------------------


class Renames(_Spec):
    """Target names of source objects; anything not listed keeps its name.

    ``tables`` values are ``dst_table`` (kept in the database's target, i.e. after
    the database rename) or ``dst_db.dst_table``; a table rename wins over the
    database rename. It applies to views too. Column names are matched
    case-insensitively, as the servers do.
    """

    databases: dict[SourceDatabase, TargetDatabase] = {}
    tables: dict[SourceTable, TableTarget] = {}
    columns: dict[SourceTable, dict[ColumnName, ColumnName]] = {}

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


# -- options -------------------------------------------------------------------------------


class Strategy(StrEnum):
    """How a cluster picks the node that runs a task (``duosync.cluster.placement``),
    Otter's three load-balancing strategies applied to a whole task."""

    STICK = "stick"  #: stays on its node while the node lives; new tasks go to the least busy
    ROUND_ROBIN = "round_robin"  #: spread evenly; a node that joins receives its share
    RANDOM = "random"  #: a random eligible node whenever the task needs one


_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


class Placement(_Spec):
    """Where a task may run in a cluster (ignored by a single ``duosync serve``)."""

    strategy: Strategy = Strategy.STICK
    #: the task runs only on nodes carrying every one of these labels (``--label k=v``)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            for part in (key, val):
                if not _LABEL.match(part):
                    raise ValueError(
                        f"label {key}={val}: keys and values are 1 to 63 letters, digits,"
                        " '_', '.' or '-'"
                    )
        return value


class Options(_Spec):
    """Tuning of the phases. Limits follow the product we mirror (512 threads)."""

    read_concurrency: int = Field(default=4, ge=1, le=512)
    write_concurrency: int = Field(default=4, ge=1, le=512)
    #: throttles of the full copy and of incremental apply; None means unlimited
    rate_rows_per_second: int | None = Field(default=None, gt=0)
    rate_bytes_per_second: int | None = Field(default=None, gt=0)
    non_empty_target: NonEmptyTarget = NonEmptyTarget.STOP
    #: create non-unique secondary indexes after the full copy (faster bulk loads)
    post_indexing: bool = False
    oceanbase_storage: StorageFormat = StorageFormat.DEFAULT
    #: rows per primary-key range chunk: below 100 the per-chunk round trips dominate,
    #: above a million one chunk holds too much in memory and takes too long to retry
    chunk_rows: int = Field(default=10000, ge=100, le=1_000_000)
    #: incremental without full migration: start at the first source transaction
    #: committed at or after this time (naive times are UTC); default: now
    incremental_start: datetime | None = None
    #: every N seconds write a row to the source's oms.duosync_heartbeat, so the
    #: position advances and lag stays measurable while the source is idle
    heartbeat_seconds: int | None = Field(default=None, ge=1, le=60)
    #: incremental sync: what to do with a change the target's rows contradict
    #: (sync.conflicts). Unset: a one-way task writes the source's row state whatever
    #: the target holds and records nothing; a two-way task uses overwrite.
    conflict: ConflictPolicy | None = None
    #: site_priority: the side (of the forward task) that wins every conflict
    winner: Side | None = None
    #: last_writer_wins: per source table ("db.table"), a column holding the time of
    #: the row's last change (a UTC DATETIME/TIMESTAMP) that dates changes instead of
    #: the source commit time
    lww_column: dict[str, str] = Field(default_factory=dict)
    #: how long a phase that fails with a transient fault (a lost connection, a
    #: restarting server, a deadlock ...) is retried, with back-off, before the task
    #: fails (service.healing); 0 fails at once
    retry_for: Duration = DEFAULT_RETRY_FOR
    #: incremental sync: a row the target refuses stops the task, or is recorded in
    #: the conflict log and skipped
    on_data_error: OnDataError = OnDataError.STOP
    #: in a cluster: the strategy that picks the task's node, and the labels it needs
    placement: Placement = Field(default_factory=Placement)


#: fields of a task that the reverse task of a two-way sync takes from its forward task
_REVERSE_DERIVED = ("select", "rename", "filters", "types", "source", "target", "name")


class ReverseOptions(_Spec):
    """Options of the reverse task of a two-way sync (incremental DML only). Its
    objects, endpoints and phases come from the forward task."""

    write_concurrency: int = Field(default=4, ge=1, le=512)
    rate_rows_per_second: int | None = Field(default=None, gt=0)
    rate_bytes_per_second: int | None = Field(default=None, gt=0)
    #: unset: the forward task's converging policy if it has one, else overwrite
    conflict: ConflictPolicy | None = None
    heartbeat_seconds: int | None = Field(default=None, ge=1, le=60)
    retry_for: Duration = DEFAULT_RETRY_FOR
    on_data_error: OnDataError = OnDataError.STOP
    placement: Placement = Field(default_factory=Placement)

    @model_validator(mode="before")
    @classmethod
    def _not_derived(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _REVERSE_DERIVED:
                if key in data:
                    raise ValueError(
                        f"{key}: the reverse task's objects, endpoints and phases are matched"
                        " automatically from the forward task (renames inverted) and cannot"
                        " be edited; remove it"
                    )
        return data

    def as_options(self, forward: ConflictPolicy | None = None) -> Options:
        """The reverse task's options; *forward* is the forward task's policy."""
        conflict = self.conflict
        if conflict is None:
            conflict = forward if forward is not None and forward.converging else None
        return Options(
            write_concurrency=self.write_concurrency,
            rate_rows_per_second=self.rate_rows_per_second,
            rate_bytes_per_second=self.rate_bytes_per_second,
            conflict=conflict or ConflictPolicy.OVERWRITE,
            heartbeat_seconds=self.heartbeat_seconds,
            retry_for=self.retry_for,
            on_data_error=self.on_data_error,
            placement=self.placement,
        )


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


class TaskSpec(_Spec):
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
    filters: dict[SourceTable, Condition] = {}
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
        if MigrationType.INCREMENTAL in self.types and self.filters:
            raise ValueError(
                "filters: row filters apply to the full migration only; incremental sync"
                " would copy filtered-out rows when they change. Remove 'incremental' or"
                " the filters"
            )
        self._check_two_way()
        self._check_convergence()
        self._check_known_targets()
        return self

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
