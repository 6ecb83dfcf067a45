"""Dual-active two-way sync that converges: the converging conflict policies
(``last_writer_wins``, ``site_priority``) and why both sides end identical.

The shape: one arbiter, one echo
--------------------------------

Of the two sides, one is the **arbiter**: the winner side of ``site_priority``;
for ``last_writer_wins`` the OceanBase side when exactly one side is OceanBase (it
dates every row it holds: ``ORA_ROWSCN``), else the forward task's target. The
task that writes the arbiter is the **decider**; the other one, writing the other
side (the **follower**), is the **echo**.

- The decider applies a change of the follower side to the arbiter only if it
  wins: without a conflict (the arbiter holds what the follower held before the
  change, compared by the arbiter server itself) it always wins; in a conflict
  the policy decides (``decide``). A change that loses is not applied, and the
  arbiter's row is written again as it is (deleted and inserted, or inserted and
  deleted when absent) so that its state is in the arbiter's log once more.
  Both are in the transaction that moves the decider's checkpoint and records the
  conflict: exactly once, like every other row.
- The echo applies every arbiter transaction to the follower side idempotently,
  *including the decider's own*: it drops only its own transactions (the loop
  guard's marker), not the decider's. So the decider's verdicts, wins and
  re-asserted losers alike, reach the follower side. The decider drops the echo's
  transactions as before, so nothing travels further: a change of the follower
  side goes there and back once, a change of the arbiter side goes over once.

Why it converges, for any interleaving. Take one key after the last write of
the application on either side, once both tasks have read everything:

1. Every write to the follower's row comes from the application or from the echo.
   Every application write there is read by the decider, which then writes the
   arbiter's row (the change, or the row re-asserted): an arbiter transaction the
   echo applies *after* that application write. (When that write changes nothing,
   the arbiter already holds the follower's row: the same state, see 2.) So the
   follower's last write is an echo write, or leaves the arbiter's state.
2. The echo applies every arbiter transaction, in the arbiter's commit order, so
   its last write to the key leaves the arbiter's last state of it.
3. Hence the follower's row equals the arbiter's, whatever each decision was: the
   policy only chooses *which* row both sides end with, never *whether* they
   agree. A wrong guess (a clock skewed, a row dated approximately) can make the
   "wrong" change win, but both sides still end with the same one.

Kill -9 of either task at any point only replays from its checkpoints: the
decider decides again on the rows its lost transaction held (the arbiter's rows
are as before it; an application write since may change a verdict, which 1-3 do
not depend on), the echo's writes are idempotent.

Dating rows (last_writer_wins)
------------------------------

A change's time is its source commit time (the stream's ``commit_ts``: 1 s
resolution from a MariaDB binlog, ns from OceanBase), or with ``lww_column`` the
application's column in the row. The arbiter row's time is: the column
(``lww_column``); else, for a row the decider wrote, the time of the change it
wrote, kept in ``oms.duosync_row_version`` with a digest of the row (so a later
application write is told apart); for a row the application wrote on an
OceanBase arbiter, ``ORA_ROWSCN``; for a row deleted, the registry's tombstone,
else (deleted by the application, or never seen) the arbiter's clock now. Ties
go to the arbiter. Registry entries older than ``RETENTION`` are purged: a change
arriving after that long sees the row as the application's.

Clock skew: the times of the two sides come from two clocks. With a skew of S
seconds, a change up to S seconds later in real time can lose to the other side's
earlier one, consistently on both sides (point 3 above). Keep the servers' clocks
synchronised (NTP); with ``lww_column``, the application's clock decides.

What a user must not do: write the ``oms`` database (checkpoints are the loop
markers, the registry dates rows: a changed row there changes verdicts or lets a
change loop); run a converging pair's tasks with different policies (the spec
refuses it); write a side through another path that the tasks do not read.
Resolution is per row: the rows of one source transaction may get different
winners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from duosync.config import Flavor
from duosync.spec import ConflictPolicy, Side, TaskSpec

#: seconds the registry keeps a row's version and tombstones (see above)
RETENTION = 86400.0


class Part(StrEnum):
    """The role of one task of a converging pair."""

    DECIDER = "decider"  #: writes the arbiter, decides every conflict
    ECHO = "echo"  #: writes the follower side, applies every arbiter transaction


@dataclass(frozen=True)
class Role:
    """A task's part in a converging pair (``role_of``)."""

    part: Part
    policy: ConflictPolicy
    #: the decider's task name: its entries in the registry (``sync.versions``)
    pair: str
    #: the target is OceanBase: rows are dated by ORA_ROWSCN
    rowscn: bool = False
    #: target "db.table" -> target column dating its rows (lww_column, renamed)
    lww_columns: dict[str, str] = field(default_factory=dict)


def arbiter_side(forward: TaskSpec) -> Side:
    """Which side of *forward*'s pair is the arbiter (see the module docstring)."""
    if forward.options.conflict is ConflictPolicy.SITE_PRIORITY:
        assert forward.options.winner is not None  # the spec requires it
        return forward.options.winner
    ob = [
        side
        for side, ep in ((Side.SOURCE, forward.source), (Side.TARGET, forward.target))
        if ep.flavor is Flavor.OCEANBASE
    ]
    return ob[0] if len(ob) == 1 else Side.TARGET


def role_of(forward: TaskSpec, reverse: bool) -> Role | None:
    """The part of *forward*'s task (or, with *reverse*, of its reverse task) in a
    converging pair; None when its policy does not converge."""
    policy = forward.options.conflict
    if policy is None or not policy.converging:
        return None
    writes = Side.SOURCE if reverse else Side.TARGET
    decider = writes is arbiter_side(forward)
    target = forward.source if reverse else forward.target
    columns: dict[str, str] = {}
    for key, column in forward.options.lww_column.items():
        db, table = key.split(".")
        if reverse:
            columns[key] = column
        else:
            there = forward.rename.table(db, table)
            columns[".".join(there)] = forward.rename.column(db, table, column)
    return Role(
        part=Part.DECIDER if decider else Part.ECHO,
        policy=policy,
        pair=forward.reverse_name if reverse else forward.name,
        rowscn=target.flavor is Flavor.OCEANBASE,
        lww_columns=columns,
    )


@dataclass(frozen=True, order=True)
class Version:
    """When a row state was written: its time, then the side (the arbiter's 1 wins
    a tie)."""

    ts: float
    arbiter: int = 0


@dataclass(frozen=True)
class Verdict:
    conflict: bool
    #: whether the incoming change is applied (it wins, or there is no conflict)
    apply: bool
    reason: str


def decide(
    policy: ConflictPolicy, *, matches: bool, incoming: Version, current: Version | None
) -> Verdict:
    """The decider's verdict on one row: *matches* when the arbiter holds what the
    source held before the change (no conflict); *incoming* dates the change,
    *current* the arbiter's row (None: unknown, only for site_priority)."""
    if matches:
        return Verdict(conflict=False, apply=True, reason="")
    if policy is ConflictPolicy.SITE_PRIORITY:
        return Verdict(conflict=True, apply=False, reason="the priority side holds another row")
    assert current is not None
    later = incoming > current
    return Verdict(
        conflict=True,
        apply=later,
        reason=(
            f"{'the change' if later else 'the target row'} is later"
            f" ({incoming.ts:.6f} vs {current.ts:.6f})"
        ),
    )
