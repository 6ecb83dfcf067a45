"""Prometheus metrics at ``/metrics``: per task, its phase (every task in the
store) and, for the tasks this service runs, rows/s, bytes/s, lag and conflicts.

Collected fresh at each scrape from the store and the runners' live figures (no
global registry: two apps in one process, as in tests, do not share series).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from duosync.service.runtime.states import State
from duosync.service.runtime.supervisor import Supervisor
from duosync.service.store.metadata import MetadataStore
from duosync.sync.checkpoint import REFUSED


class _Tasks(Collector):
    def __init__(self, store: MetadataStore, supervisor: Supervisor) -> None:
        self.store = store
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        phase = GaugeMetricFamily(
            "duosync_task_phase",
            "1 for the task's current state (phase), 0 for the others",
            labels=["task", "phase"],
        )
        rows_s = GaugeMetricFamily(
            "duosync_task_rows_per_second", "Rows written per second (last 5 s)", labels=["task"]
        )
        bytes_s = GaugeMetricFamily(
            "duosync_task_bytes_per_second", "Bytes written per second (last 5 s)", labels=["task"]
        )
        lag = GaugeMetricFamily(
            "duosync_task_lag_seconds",
            "Incremental sync lag: now minus the source commit time of the last applied change",
            labels=["task"],
        )
        rows = CounterMetricFamily(
            "duosync_task_rows", "Rows written (copied plus synced) by this run", labels=["task"]
        )
        conflicts = CounterMetricFamily(
            "duosync_task_conflicts",
            "Changes recorded in the conflict log by this run",
            labels=["task"],
        )
        retries = CounterMetricFamily(
            "duosync_task_retries",
            "Phase attempts that failed with a transient fault and were retried",
            labels=["task"],
        )
        last_error = GaugeMetricFamily(
            "duosync_task_last_error_timestamp_seconds",
            "Unix time of the task's last error (retried or not)",
            labels=["task"],
        )
        healthy = GaugeMetricFamily(
            "duosync_task_healthy",
            "1 while the task is not failed and not retrying, else 0",
            labels=["task"],
        )
        live = self.supervisor.running()
        for record in self.store.list_tasks():
            for state in State:
                phase.add_metric([record.name, state.value], 1.0 if state is record.state else 0.0)
            retries.add_metric([record.name], float(record.retries_total))
            healthy.add_metric([record.name], 1.0 if record.healthy else 0.0)
            if record.last_error_at is not None:
                last_error.add_metric([record.name], record.last_error_at)
            figures = live.get(record.name)
            if figures is None:
                continue
            # the snapshot: the same for a task run here or on another node
            shot = figures.snapshot()
            rows_s.add_metric([record.name], float(shot["rows_per_second"]))
            bytes_s.add_metric([record.name], float(shot["bytes_per_second"]))
            if shot["lag_seconds"] is not None:
                lag.add_metric([record.name], float(shot["lag_seconds"]))
            rows.add_metric([record.name], float(shot["rows"]))
            conflicts.add_metric([record.name], float(shot["conflicts"]))
        fenced = CounterMetricFamily(
            "duosync_fenced_transactions",
            "Target transactions this process refused to commit (rolled back, nothing"
            " committed) because its cluster node no longer held the task: fenced by a"
            " newer epoch, or its ZooKeeper membership unconfirmed",
        )
        fenced.add_metric([], float(REFUSED.value))
        yield from (
            phase,
            rows_s,
            bytes_s,
            lag,
            rows,
            conflicts,
            retries,
            last_error,
            healthy,
            fenced,
        )


def metrics_text(store: MetadataStore, supervisor: Supervisor) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Tasks(store, supervisor))
    return generate_latest(registry), CONTENT_TYPE_LATEST
