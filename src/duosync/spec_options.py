"""The options of a task spec (``duosync.spec``): tuning of the phases, conflict
policies, placement in a cluster, and the reverse task's options."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from duosync.spec_names import SpecModel
from duosync.spec_values import (
    DEFAULT_RETRY_FOR,
    ConflictPolicy,
    DdlKind,
    DmlKind,
    Duration,
    NonEmptyTarget,
    OnDataError,
    Side,
    StorageFormat,
    parse_ddl_kinds,
)


class Strategy(StrEnum):
    """How a cluster picks the node that runs a task (``duosync.cluster.placement``),
    Otter's three load-balancing strategies applied to a whole task."""

    STICK = "stick"  #: stays on its node while the node lives; new tasks go to the least busy
    ROUND_ROBIN = "round_robin"  #: spread evenly; a node that joins receives its share
    RANDOM = "random"  #: a random eligible node whenever the task needs one


_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


class Placement(SpecModel):
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


class Options(SpecModel):
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
    #: incremental sync: row changes above which a source transaction is applied
    #: as it is read (in fragments of this many rows, one target transaction)
    #: instead of being held whole in memory: the memory bound (sync.streamed)
    fragment_rows: int = Field(default=25_000, ge=100, le=1_000_000)
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
    #: fails (service.runtime.healing); 0 fails at once
    retry_for: Duration = DEFAULT_RETRY_FOR
    #: incremental sync: a row the target refuses stops the task, or is recorded in
    #: the conflict log and skipped
    on_data_error: OnDataError = OnDataError.STOP
    #: incremental sync: the row changes it carries, any non-empty subset (e.g. an
    #: archive target that never deletes: [insert, update]); applied to a change as
    #: it reaches the target, after a row filter turned it into an insert or delete
    dml: tuple[DmlKind, ...] = Field(default=tuple(DmlKind), min_length=1)
    #: incremental sync: the schema changes it carries; false for none
    ddl: Annotated[tuple[DdlKind, ...], BeforeValidator(parse_ddl_kinds)] = tuple(DdlKind)
    #: create the source's procedures, functions and events on the target, and its
    #: triggers where they cannot fire twice on replicated rows (README, Routines)
    routines: bool = False
    #: in a cluster: the strategy that picks the task's node, and the labels it needs
    placement: Placement = Field(default_factory=Placement)


#: fields of a task that the reverse task of a two-way sync takes from its forward task
_REVERSE_DERIVED = ("select", "rename", "filters", "types", "source", "target", "name")


class ReverseOptions(SpecModel):
    """Options of the reverse task of a two-way sync (incremental DML only). Its
    objects, endpoints and phases come from the forward task."""

    write_concurrency: int = Field(default=4, ge=1, le=512)
    rate_rows_per_second: int | None = Field(default=None, gt=0)
    rate_bytes_per_second: int | None = Field(default=None, gt=0)
    #: unset: the forward task's converging policy if it has one, else overwrite
    conflict: ConflictPolicy | None = None
    heartbeat_seconds: int | None = Field(default=None, ge=1, le=60)
    fragment_rows: int = Field(default=25_000, ge=100, le=1_000_000)
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
            fragment_rows=self.fragment_rows,
            retry_for=self.retry_for,
            on_data_error=self.on_data_error,
            placement=self.placement,
        )
