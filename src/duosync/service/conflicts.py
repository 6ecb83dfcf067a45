"""What ``duosync conflicts TASK`` shows: the task's conflict log on its target
(incremental sync) and the rows its full copy kept on the target (metadata store)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from duosync.config import Endpoint
from duosync.errors import ConfigError
from duosync.service.store.metadata import MetadataStore
from duosync.specfile import load_spec, parse_spec
from duosync.sync.conflict_log import ConflictRecord, count_conflicts, list_conflicts

_REDACTED = "**********"


@dataclass(frozen=True)
class TaskConflicts:
    task: str
    endpoint: str
    total: int
    records: list[ConflictRecord]
    copy: list[tuple[str, Any, str]]

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "target": self.endpoint,
            "total": self.total,
            "conflicts": [asdict(r) for r in self.records],
            "copy_conflicts": [{"table": t, "key": k, "detail": d} for t, k, d in self.copy],
        }

    def render(self) -> str:
        shown = len(self.records)
        more = f" (showing the first {shown})" if shown < self.total else ""
        lines = [f"task {self.task}: {self.total} conflicts recorded on {self.endpoint}{more}"]
        for r in self.records:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.recorded_at))
            won = f", winner: the {r.winner}'s row" if r.winner else ""
            lines.append(
                f"#{r.id} {at} {r.table} {r.op} key {json.dumps(r.key)}: {r.resolution}{won}"
                f" ({r.reason})"
            )
            for label, image in (("before", r.before), ("after", r.after), ("target", r.current)):
                if image is not None:
                    values = ", ".join(
                        f"{c}={json.dumps(v)}" for c, v in zip(r.columns, image, strict=False)
                    )
                    lines.append(f"    {label}: {values}")
        if self.copy:
            lines.append(f"full migration: {len(self.copy)} rows kept on the target")
            lines.extend(f"    {t} key {json.dumps(k)}: {d}" for t, k, d in self.copy[:100])
        return "\n".join(lines)


def task_conflicts(
    store: MetadataStore, task: str, spec_file: Path | None, *, limit: int = 100
) -> TaskConflicts:
    target = _target_of(store, task, spec_file)
    return TaskConflicts(
        task=task,
        endpoint=target.display,
        total=count_conflicts(target, task),
        records=list_conflicts(target, task, limit=limit),
        copy=_copy_conflicts(store, task),
    )


def _copy_conflicts(store: MetadataStore, task: str) -> list[tuple[str, Any, str]]:
    try:
        store.get_task(task)
    except ConfigError:
        return []
    return store.copy_conflicts(task)


def _target_of(store: MetadataStore, task: str, spec_file: Path | None) -> Endpoint:
    """The endpoint the task writes, from its spec file when given (passwords are
    never stored), else from the metadata store."""
    if spec_file is not None:
        spec = load_spec(spec_file)
        if task == spec.name:
            return spec.target
        if task == spec.reverse_name:
            return spec.source
        raise ConfigError(
            f"{spec_file} is the spec of task {spec.name!r}, not of {task!r}"
            f" (nor of its reverse task {spec.reverse_name!r})",
            task=task,
        )
    record = store.get_task(task)
    target = record.spec.get("target", {})
    if target.get("password") == _REDACTED and not target.get("password_env"):
        raise ConfigError(
            "the task's target password is not kept in the metadata store",
            task=task,
            hint="pass the task's spec file: duosync conflicts TASK -f SPEC"
            " (for NAME.reverse, the forward task's spec)",
        )
    return parse_spec(record.spec, f"stored spec of {task}").target
