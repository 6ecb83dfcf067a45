"""One root error for everything duosync raises on purpose.

Callers decide what to do by class, never by parsing messages:

* ``ConfigError``    bad input from the user (spec, URL, option); fix and rerun.
* ``FatalError``     the task cannot go on (server refuses us, binlog purged, ...).
* ``RetriableError`` a passing condition (server down, lost connection, lock wait);
                     the runner may retry with back-off.
* ``DataError``      one change or row cannot be applied (conflict, bad value); the
                     task records it and goes on.

Every error carries the context a user needs to act (task, endpoint, table,
position) and is rendered with it. Endpoint names are always rendered *without*
password: an error message is a log line, and logs are copied everywhere.
"""

from __future__ import annotations


class DuosyncError(Exception):
    """Root of every error duosync raises on purpose."""

    #: short word shown in front of the message by the CLI
    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        task: str | None = None,
        endpoint: str | None = None,
        table: str | None = None,
        position: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.task = task
        self.endpoint = endpoint
        self.table = table
        self.position = position
        self.hint = hint

    def context(self) -> str:
        parts = [
            f"{name} {value}"
            for name, value in (
                ("task", self.task),
                ("endpoint", self.endpoint),
                ("table", self.table),
                ("position", self.position),
            )
            if value
        ]
        return ", ".join(parts)

    def describe(self, *, task: bool = True) -> str:
        """The message with its context; without the task's name when *task* is
        False (for lines already about that task)."""
        if task or self.task is None:
            return str(self)
        saved, self.task = self.task, None
        try:
            return str(self)
        finally:
            self.task = saved

    def __str__(self) -> str:
        ctx = self.context()
        text = f"{ctx}: {self.message}" if ctx else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(DuosyncError):
    """Invalid user input: a spec field, URL or option. Nothing was changed."""

    kind = "config error"


class FatalError(DuosyncError):
    """The operation cannot continue without a person acting on the cause."""

    kind = "fatal"


class Fenced(DuosyncError):
    """A newer assignment of the task to another cluster node exists: this run's
    transaction committed nothing, and the run must give the task up (not fail it:
    the task lives on elsewhere). See ``sync.checkpoint``."""

    kind = "fenced"


class RetriableError(DuosyncError):
    """A condition that may pass by itself: the task runner retries the phase with
    back-off for as long as ``options.retry_for`` allows (``service.runtime.healing``)."""

    kind = "retriable"
    #: seconds after which a streak of this error is given up even if the task's
    #: retry_for is longer (None: the task's limit); for errors only likely transient
    give_up_after: float | None = None


class DataError(DuosyncError):
    """One row or change cannot be applied: the task stops naming it, or with
    ``options.on_data_error: skip`` records it in the conflict log and goes on."""

    kind = "data error"
