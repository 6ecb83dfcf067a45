"""A task spec as the metadata store keeps it, and as it leaves the service.

The store keeps the passwords (the runner needs them to run the task after a
restart; the file is the user's own, like their spec files). Everything the
service shows goes through ``public_spec``: every password replaced by a mark.
"""

from __future__ import annotations

from typing import Any

from duosync.spec import TaskSpec

#: what a password is shown as
HIDDEN = "********"


def stored_spec(spec: TaskSpec) -> dict[str, Any]:
    """The spec as the store keeps it: JSON, with the passwords."""
    data = spec.model_dump(mode="json")
    for side in ("source", "target"):
        secret = getattr(spec, side).password
        data[side]["password"] = None if secret is None else secret.get_secret_value()
    return data


def public_spec(data: dict[str, Any]) -> dict[str, Any]:
    """A stored spec without its passwords."""
    out = dict(data)
    for side in ("source", "target"):
        if isinstance(out.get(side), dict):
            endpoint = dict(out[side])
            if endpoint.get("password") is not None:
                endpoint["password"] = HIDDEN
            out[side] = endpoint
    return out
