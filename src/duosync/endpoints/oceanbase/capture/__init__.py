"""Trigger-based change capture for OceanBase sources (it has no binlog to read)."""

from duosync.endpoints.oceanbase.capture.consumers import install, now, remove, status
from duosync.endpoints.oceanbase.capture.stream import TriggerLogStream

__all__ = ["TriggerLogStream", "install", "now", "remove", "status"]
