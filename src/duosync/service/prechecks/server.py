"""Pre-check items about server settings: the source's binlog and its retention,
time zones and character sets (see ``precheck_items`` for the list and ids).

Each function returns a ``CheckResult`` whose name the caller fills in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from duosync.config import Endpoint, Flavor
from duosync.core.catalog import Database, ServerInfo, Table
from duosync.endpoints.mysql.connection import Connection, driver_errors
from duosync.schema.translate import map_charset
from duosync.service.prechecks.checks import CheckResult, Status
from duosync.spec import TaskSpec

#: rows per second assumed for the full copy when the task sets no rate: below what
#: was measured here for one client (25-33k rows/s, DESIGN.md section 5), so that the
#: estimate errs on the long side
DEFAULT_ROWS_PER_SECOND = 20_000
_LISTED = 8  # objects named in a detail before "and N more"


def binlog(info: ServerInfo, endpoint: Endpoint) -> CheckResult:
    if info.flavor == "oceanbase":
        return CheckResult(
            "", Status.PASS, "OceanBase has no binlog: changes are captured by triggers"
        )
    if info.capture_problems:
        return CheckResult(
            "",
            Status.FAIL,
            f"the binlog of {endpoint.display} cannot feed incremental sync: "
            + "; ".join(info.capture_problems)
            + ". Set these server options (log_bin, binlog_format=ROW, binlog_row_image=FULL,"
            " binlog_row_metadata=FULL) in the [mysqld] section of its configuration and"
            " restart it, or remove 'incremental' from types",
        )
    metadata = (
        f", binlog_row_metadata {info.binlog_row_metadata}" if info.binlog_row_metadata else ""
    )
    return CheckResult(
        "",
        Status.PASS,
        f"{endpoint.display}: log_bin ON, binlog_format {info.binlog_format},"
        f" binlog_row_image {info.binlog_row_image}{metadata}",
    )


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``: rounded up, never to zero."""
    s = max(1, math.ceil(seconds))
    if s < 60:
        return f"{s} s"
    m = math.ceil(s / 60)
    if m < 60:
        return f"{m} min"
    if m < 24 * 60:
        return f"{m // 60} h" + (f" {m % 60} min" if m % 60 else "")
    h = math.ceil(m / 60)
    return f"{h // 24} d" + (f" {h % 24} h" if h % 24 else "")


def _variables(conn: Connection[Any], endpoint: Endpoint, names: Sequence[str]) -> dict[str, str]:
    # SHOW ... WHERE tolerates variables a server does not have, SELECT @@x does not.
    marks = ", ".join(["%s"] * len(names))
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", list(names))
        return {str(r[0]).lower(): str(r[1]) for r in cur.fetchall()}


def _retention(conn: Connection[Any], endpoint: Endpoint) -> tuple[float, str]:
    """(seconds binlogs are kept, 0 for ever; the setting that says so)."""
    v = _variables(
        conn,
        endpoint,
        ("binlog_expire_logs_seconds", "expire_logs_days", "binlog_expire_logs_auto_purge"),
    )
    if v.get("binlog_expire_logs_auto_purge", "ON").upper() in ("OFF", "0"):
        return 0, "binlog_expire_logs_auto_purge = OFF"
    # binlog_expire_logs_seconds wins when set (MySQL 8; on MariaDB 10.6+ the two are
    # one setting); older servers only have expire_logs_days.
    seconds = float(v.get("binlog_expire_logs_seconds") or 0)
    if seconds > 0:
        return seconds, f"binlog_expire_logs_seconds = {seconds:.0f}"
    days = float(v.get("expire_logs_days") or 0)
    if days > 0:
        return days * 86400, f"expire_logs_days = {days:g}"
    if "binlog_expire_logs_seconds" in v:
        return 0, "binlog_expire_logs_seconds = 0"
    return 0, "expire_logs_days = 0"


def binlog_retention(spec: TaskSpec, conn: Connection[Any], tables: Sequence[Table]) -> CheckResult:
    endpoint = spec.source
    dbs = sorted({t.database for t in tables})
    selected = {(t.database, t.name) for t in tables}
    marks = ", ".join(["%s"] * len(dbs))
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH"
            f" FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({marks})",
            dbs,
        )
        stats = [r for r in cur.fetchall() if (str(r[0]), str(r[1])) in selected]
    rows = sum(int(r[2] or 0) for r in stats)
    size = sum(int(r[3] or 0) for r in stats)
    rate = spec.options.rate_rows_per_second
    estimate = rows / (rate or DEFAULT_ROWS_PER_SECOND)
    how = (
        f"{rate:,} rows/s (options.rate_rows_per_second)"
        if rate
        else f"{DEFAULT_ROWS_PER_SECOND:,} rows/s, an assumed rate (set"
        " options.rate_rows_per_second to yours)"
    )
    if spec.options.rate_bytes_per_second:
        by_bytes = size / spec.options.rate_bytes_per_second
        if by_bytes > estimate:
            estimate = by_bytes
            how = f"{spec.options.rate_bytes_per_second:,} bytes/s (options.rate_bytes_per_second)"
    keep, setting = _retention(conn, endpoint)
    figures = (
        f"estimated full migration {duration(estimate)} ({rows:,} rows, {size:,} bytes of"
        f" data in {len(stats)} table{'s' if len(stats) != 1 else ''} at {how});"
        f" binlog retention on {endpoint.display}:"
    )
    if keep == 0:
        return CheckResult("", Status.PASS, f"{figures} binlogs are never purged ({setting})")
    figures += f" {duration(keep)} ({setting})"
    advice = (
        f"binlogs written during the copy may be purged before incremental sync reads them:"
        f" keep them longer, e.g. SET GLOBAL binlog_expire_logs_seconds = {math.ceil(estimate * 3)}"
        " (and in the server's configuration)"
    )
    if keep < estimate:
        return CheckResult("", Status.FAIL, f"{figures}, shorter than the estimate; {advice}")
    if keep < 2 * estimate:
        return CheckResult(
            "",
            Status.WARN,
            f"{figures}, less than twice the estimate: if the copy is slower, {advice}",
        )
    return CheckResult("", Status.PASS, figures)


@dataclass(frozen=True)
class Zone:
    setting: str  # e.g. "SYSTEM (UTC)" or "+08:00"
    seconds: int  # offset from UTC now

    @property
    def offset(self) -> str:
        sign = "-" if self.seconds < 0 else "+"
        h, m = divmod(abs(self.seconds) // 60, 60)
        return f"{sign}{h:02d}:{m:02d}"


def time_zone(conn: Connection[Any], endpoint: Endpoint) -> Zone:
    """The time zone new sessions get on the server. Our own sessions pin +00:00, so
    the global setting is adopted for one query and the pin put back."""
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.time_zone, @@system_time_zone")
        row = cur.fetchone()
        setting, system = (str(row[0]), row[1]) if row else ("?", None)
        if setting.upper() == "SYSTEM" and system:
            setting = f"SYSTEM ({system})"
        try:
            cur.execute("SET time_zone = @@GLOBAL.time_zone")
            cur.execute("SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())")
            diff = cur.fetchone()
        finally:
            cur.execute("SET time_zone = '+00:00'")
    # NOW() and UTC_TIMESTAMP() share the statement's start time; rounding to minutes
    # only guards against a server that does not.
    seconds = round(int(diff[0] if diff else 0) / 60) * 60
    return Zone(setting, seconds)


def _charsets(conn: Connection[Any], endpoint: Endpoint) -> tuple[set[str], str]:
    with driver_errors(endpoint), conn.cursor() as cur:
        cur.execute("SHOW CHARACTER SET")
        names = {str(r[0]).lower() for r in cur.fetchall()}
        cur.execute("SELECT @@GLOBAL.character_set_server")
        row = cur.fetchone()
    return names, str(row[0]) if row else "?"


def charset(
    src_conn: Connection[Any],
    source: Endpoint,
    tgt_conn: Connection[Any],
    target: Endpoint,
    target_flavor: Flavor,
    databases: Sequence[Database],
    tables: Sequence[Table],
) -> CheckResult:
    """Character sets of the selected objects the target does not have (and what
    schema migration makes of them), and differing server defaults."""
    _, src_default = _charsets(src_conn, source)
    known, tgt_default = _charsets(tgt_conn, target)
    objects: list[tuple[str, str, str | None]] = [
        (f"database {d.name}", d.charset, d.collation) for d in databases
    ]
    for t in tables:
        if t.charset:
            objects.append((f"table {t.qualified}", t.charset, t.collation))
        # a column is named only when it differs from its table: the table says the rest
        objects += [
            (f"column {t.qualified}.{c.name}", c.charset, c.collation)
            for c in t.columns
            if c.charset and c.charset != t.charset
        ]
    lost: list[str] = []
    for what, cs, co in objects:
        if cs.lower() in known:
            continue
        new_cs, new_co, _why = map_charset(cs, co, target_flavor)
        becomes = (
            f"{new_cs} ({new_co})"
            if new_cs and new_cs.lower() in known
            else "nothing the target has: create it by hand"
        )
        lost.append(f"{what} ({cs}) becomes {becomes}")
    notes: list[str] = []
    if lost:
        more = f"; and {len(lost) - _LISTED} more" if len(lost) > _LISTED else ""
        notes.append(
            f"{target.display} has no character set for: {'; '.join(lost[:_LISTED])}{more}."
            " Their text is converted to the new character set as it is copied"
        )
    if src_default.lower() != tgt_default.lower():
        notes.append(
            f"the servers' default character sets differ (character_set_server {src_default}"
            f" on {source.display}, {tgt_default} on {target.display}): duosync creates what it"
            f" migrates with the source's character sets, but objects created on the target by"
            f" other means get {tgt_default}"
        )
    if notes:
        return CheckResult("", Status.WARN, "; ".join(notes))
    return CheckResult(
        "",
        Status.PASS,
        f"{target.display} has every character set of the selected objects; both servers"
        f" default to {tgt_default}",
    )
