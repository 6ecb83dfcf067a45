"""Statements that make the target equal to the source (``duosync verify --fix``).

Per table: extra rows are deleted by key, missing and different rows are written
with ``REPLACE`` and the source's current values. Values are never formatted by
us: the source server renders each row as INSERT ``VALUES`` text
(``endpoints.mysql.literals.row_expr``, the full migration's own path) and keys are the
literals the servers rendered (``normalize.key_literal_sql``), matched exactly
(binary comparison for text keys). Identifiers go through ``quote_ident``.

``REPLACE`` is a delete plus an insert: with foreign key checks on, replacing a
parent row would cascade to its children, and rows of several tables arrive in no
particular order. Like the incremental applier, the statements therefore run with
``foreign_key_checks = 0``, in a UTC session (TIMESTAMP literals are UTC; OceanBase
defaults to +08:00), without NO_BACKSLASH_ESCAPES (literals use backslash escapes).
A file of statements starts with the same settings.

Only the rows the comparison kept (``scan.KEEP_KEYS`` per kind and table) are
fixed; a table beyond that needs another ``verify --fix`` run, and a table without
a key cannot be fixed row by row at all. ``notes`` says so.

Rows kept by the task's ``options.dml`` (``scan.TableState.set_aside``: e.g. extra
rows of a task that does not carry deletes) are not differences and are left as
they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import driver_errors
from duosync.endpoints.mysql.dialect import qualified, quote_ident
from duosync.endpoints.mysql.sessions import text_connect
from duosync.verify.normalize import any_key_sql
from duosync.verify.report import VerifyReport, ordered
from duosync.verify.rows import LOOKUP_BATCH, batches
from duosync.verify.scan import TableState

SESSION = (
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET foreign_key_checks = 0",
)

#: bytes of VALUES text per REPLACE statement (well under any max_allowed_packet)
_STATEMENT_BYTES = 1 << 20


@dataclass(frozen=True)
class Statement:
    table: str  #: target ``db.table`` it changes
    sql: str
    rows: int


def _states(report: VerifyReport) -> list[TableState]:
    states = report.detail
    return [s for s in states or [] if isinstance(s, TableState)]


def notes(report: VerifyReport) -> list[str]:
    """What the statements will not fix, one line per table."""
    out: list[str] = []
    for s in _states(report):
        r = s.report
        if r.problem:
            out.append(f"{r.source}: not compared ({r.problem}); nothing to fix here")
        elif r.keyless_differs:
            out.append(f"{r.source}: no key, its rows cannot be fixed one by one")
        elif s.truncated:
            out.append(
                f"{r.source}: only the first {len(s.diff)} differing rows are fixed;"
                " run verify --fix again for the rest"
            )
        if r.kept:
            out.append(f"{r.source}: {r.kept} rows kept by options.dml are left as they are")
    return out


def statements(report: VerifyReport, source: Endpoint) -> Iterator[Statement]:
    """The correcting statements of every differing table, deletes first."""
    conn = text_connect(source)
    try:
        for s in _states(report):
            if s.pair is None or not s.pair.keyed or not len(s.diff):
                continue
            assert s.source is not None
            target = s.pair.target
            name = target.table.qualified
            table = qualified(target.table.database, target.table.name)
            for batch in batches(ordered(s.diff.extra)):
                cond = any_key_sql(target.table, target.key, batch)
                yield Statement(name, f"DELETE FROM {table} WHERE {cond}", len(batch))
            header = (
                f"REPLACE INTO {table} ({', '.join(quote_ident(c.name) for c in target.columns)})"
                " VALUES "
            )
            wanted = ordered([*s.diff.missing, *s.diff.different])
            for batch in batches(wanted, LOOKUP_BATCH):
                with driver_errors(source, table=s.report.source):
                    rows = s.source.insert_values_of(conn, batch)
                # a row gone from the source since the comparison has nothing to write
                values = [rows[k] for k in batch if k in rows]
                yield from _replace(name, header, values)
    finally:
        conn.close()


def _replace(name: str, header: str, values: list[bytes]) -> Iterator[Statement]:
    chunk: list[bytes] = []
    size = 0
    for v in values:
        if chunk and size + len(v) > _STATEMENT_BYTES:
            yield _replace_one(name, header, chunk)
            chunk, size = [], 0
        chunk.append(v)
        size += len(v) + 1
    if chunk:
        yield _replace_one(name, header, chunk)


def _replace_one(name: str, header: str, chunk: list[bytes]) -> Statement:
    # The server rendered utf8mb4 text and hex; surrogateescape keeps any byte and
    # the driver encodes it back the same way.
    text = b",".join(chunk).decode("utf-8", "surrogateescape")
    return Statement(name, header + text, len(chunk))


def apply(target: Endpoint, todo: Iterable[Statement]) -> int:
    """Run *todo* on the target, each statement on its own (autocommit); the number
    of rows the statements covered."""
    conn = text_connect(target)
    done = 0
    try:
        with conn.cursor() as cur:
            with driver_errors(target):
                for setting in SESSION:
                    cur.execute(setting)
            for st in todo:
                with driver_errors(target, table=st.table):
                    cur.execute(st.sql)  # no arguments: the text is used as it is
                done += st.rows
    finally:
        conn.close()
    return done
