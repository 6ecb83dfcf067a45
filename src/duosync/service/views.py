"""How a task is shown outside the service (API, console, ``duosync task show``):
plain JSON-able dicts, never a password."""

from __future__ import annotations

from typing import Any

from duosync.config import Endpoint
from duosync.service.phases.twoway import REVERSE_SUFFIX
from duosync.service.runtime.live import Figures
from duosync.service.runtime.runner import runnable
from duosync.service.runtime.states import ACTIVE, State
from duosync.service.store.metadata import MetadataStore, TaskRecord
from duosync.service.store.specs import public_spec

#: events shown with a task (a task retrying for days writes thousands)
HISTORY_LIMIT = 500

#: the actions the API offers, and the states each is allowed from
_ACTIONS: dict[str, frozenset[State]] = {
    "start": frozenset({State.NOT_STARTED, State.FAILED}),
    "pause": ACTIVE,
    "resume": frozenset({State.PAUSED}),
    "release": frozenset({State.NOT_STARTED, State.PAUSED, State.FAILED, State.COMPLETED}),
}


def _display(endpoint: Any) -> str:
    try:
        return Endpoint.model_validate(endpoint).display
    except ValueError:  # pydantic's ValidationError: a spec of another version
        return "?"


def task_summary(store: MetadataStore, record: TaskRecord, live: Figures | None) -> dict[str, Any]:
    spec = record.spec
    two_way = spec.get("topology") == "two-way"
    reverse_name = f"{record.name}{REVERSE_SUFFIX}"
    reverse = store.find_task(reverse_name) if two_way else None
    actions = [a for a, allowed in _ACTIONS.items() if record.state in allowed]
    if (
        two_way
        and record.state is State.INCREMENTAL_MONITORING
        and (reverse is None or reverse.state is State.RELEASED)
    ):
        actions.append("configure_reverse")
    forward = record.name[: -len(REVERSE_SUFFIX)] if record.name.endswith(REVERSE_SUFFIX) else None
    if forward is not None and store.find_task(forward) is None:
        forward = None  # a one-way task that merely ends in .reverse
    return {
        "name": record.name,
        "state": record.state.value,
        "error": record.error,
        "kind": "reverse" if forward else spec.get("topology"),
        "forward_task": forward,
        "source": _display(spec.get("source")),
        "target": _display(spec.get("target")),
        "types": spec.get("types", []),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "runner": record.owner if not runnable(record) and record.state in ACTIVE else None,
        "actions": actions,
        "reverse_task": None
        if reverse is None
        else {"name": reverse.name, "state": reverse.state.value},
        "health": health(record),
        "progress": None if live is None else live.snapshot(),
    }


def health(record: TaskRecord) -> dict[str, Any]:
    """Whether the task is healthy, or retrying (why, how often, when next)."""
    return {
        "healthy": record.healthy,
        "retrying": record.retry_attempts > 0,
        "attempts": record.retry_attempts,
        "since": record.retry_since,
        "next_attempt_at": record.retry_next,
        "last_error": record.retry_error if record.retry_attempts else record.error,
        "last_error_at": record.last_error_at,
        "retries_total": record.retries_total,
    }


def task_detail(store: MetadataStore, record: TaskRecord, live: Figures | None) -> dict[str, Any]:
    out = task_summary(store, record, live)
    if live is not None:
        out["progress"] = live.snapshot(chart=True)
    out["spec"] = public_spec(record.spec)
    out["prechecks"] = prechecks(store, record.name)
    # the timeline: phase changes, retries, recoveries, failures, pauses, notes
    out["history"] = [
        {"at": e.at, "kind": e.kind, "from": e.from_state, "to": e.to_state, "detail": e.detail}
        for e in store.history(record.name, limit=HISTORY_LIMIT)
    ]
    return out


def prechecks(store: MetadataStore, name: str) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "status": c.status, "detail": c.detail, "at": c.at, "skipped": c.skipped}
        for c in store.prechecks(name)
    ]
