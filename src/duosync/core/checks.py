"""A pre-check item's verdict: passed, warned or failed, with the explanation a
user acts on. Endpoint packages produce them for their own family's items."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def __str__(self) -> str:
        return f"pre-check {self.name}: {self.status.value}: {self.detail}"
