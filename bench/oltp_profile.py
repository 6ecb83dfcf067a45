"""Where the OLTP catch-up's time goes (``bench/oltp_backlog.py``): CPU seconds of
processes from /proc, and a summary of a py-spy raw profile split by thread."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# -- CPU time ----------------------------------------------------------------------------------


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # comm (field 2) may hold spaces: split after its closing parenthesis
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _clock_ticks()


def children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds used during a catch-up, by process."""

    duosync: float
    source: float
    target: float
    wall: float

    def line(self) -> str:
        total = self.duosync + self.source + self.target
        share = (lambda x: f"{x:.1f} s ({100 * x / total:.0f}%)") if total else str
        return (
            f"CPU in {self.wall:.1f} s wall: duosync {share(self.duosync)}, source mariadbd"
            f" {share(self.source)}, target {share(self.target)}"
            f" (of {2 * self.wall:.1f} core-s on 2 cores)"
        )


# -- py-spy profile ----------------------------------------------------------------------------


_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*?)(?::\d+)?\)$")


def _frame(text: str) -> str:
    m = _FRAME.match(text)
    if m is None:
        return text
    path = m.group("path")
    for marker in ("/src/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def _thread_group(name: str) -> str:
    if name.startswith("apply"):
        return "apply threads"
    return {"changes": "reader thread (changes)", "MainThread": "main thread"}.get(name, name)


@dataclass
class _Samples:
    total: int = 0
    leaf: Counter[str] = field(default_factory=Counter)
    #: the innermost duosync frame of each sample: library time charged to our caller
    ours: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """Per thread group: share of all samples, then the hottest functions."""
    groups: dict[str, _Samples] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        at = next((i for i, p in enumerate(parts) if p.startswith("thread (")), None)
        if at is None or not count.isdigit():
            continue
        thread = parts[at].split(": ", 1)[-1]
        frames = [_frame(p) for p in parts[at + 1 :]] or ["(idle)"]
        n = int(count)
        g = groups.setdefault(_thread_group(thread), _Samples())
        g.total += n
        g.leaf[frames[-1]] += n
        ours = [f for f in frames if "duosync/" in f and "duosync/cli" not in f]
        g.ours[ours[-1] if ours else "(no duosync frame)"] += n
        for f in set(frames):
            g.inclusive[f] += n
    total = sum(g.total for g in groups.values()) or 1
    out = [f"profile {path}: {total} samples (non-idle, 100 Hz; threads named by Python)"]
    for name, g in sorted(groups.items(), key=lambda kv: -kv[1].total):
        out.append(f"== {name}: {100 * g.total / total:.1f}% of samples")
        for title, counter in (("self", g.leaf), ("innermost duosync frame", g.ours)):
            out.append(f"  -- {title}")
            out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in counter.most_common(top)]
        out.append("  -- inclusive (duosync functions)")
        mine = [(f, n) for f, n in g.inclusive.most_common() if "duosync/" in f]
        out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in mine[:top]]
    return out
