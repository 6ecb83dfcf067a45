"""Names in a task spec: databases, objects, rules, row filter conditions and
task names, each checked as the user wrote it (``duosync.spec``)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
)

from duosync.spec_values import show_value

SYSTEM_DATABASES = frozenset(
    {
        "information_schema",
        "performance_schema",
        "mysql",
        "sys",
        "oceanbase",
        "lbacsys",
        "oraauditor",
        "__public",
        "__recyclebin",
        "oms",
    }
)

_WILDCARD_CHARS = frozenset("*?[")
_TASK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def is_system_database(name: str) -> bool:
    return name.lower() in SYSTEM_DATABASES


def _check_part(value: str, what: str) -> None:
    if not value:
        raise ValueError(f"{what} is empty")
    if value != value.strip():
        raise ValueError(f"{what} {show_value(value)} has spaces around it")


def _split_qualified(value: str, what: str) -> tuple[str, str]:
    """Split ``db.name``. Names containing a dot are legal in MySQL (quoted), but then
    ``a.b.c`` would be ambiguous; we refuse them rather than guess the split."""
    if value.count(".") != 1:
        extra = "; a name containing a dot is not supported" if value.count(".") > 1 else ""
        raise ValueError(f"{what} {show_value(value)} must be 'db.name'{extra}")
    database, name = value.split(".")
    _check_part(database, f"the database part of {what}")
    _check_part(name, f"the name part of {what}")
    return database, name


def _no_wildcards(value: str, what: str, hint: str) -> None:
    # A '*' here is almost always someone expecting a pattern; say where patterns go
    # instead of silently looking for a table literally named 'order_*'.
    if _WILDCARD_CHARS & set(value):
        raise ValueError(f"{what} {show_value(value)} names one object; {hint}")


def _not_system(database: str, what: str) -> None:
    if is_system_database(database):
        raise ValueError(
            f"{what} {show_value(database)} is a system database; it cannot be migrated"
        )


def _check_database(value: str) -> str:
    _check_part(value, "database name")
    if "." in value:
        raise ValueError(
            f"database name {show_value(value)}: a name containing a dot is not supported"
        )
    _no_wildcards(value, "database", "use include: ['db_pattern.*'] for wildcards")
    _not_system(value, "database")
    return value


def _check_object(value: str) -> str:
    database, _ = _split_qualified(value, "object")
    _no_wildcards(value, "object", "use include: for wildcards")
    _not_system(database, "database")
    return value


def _check_rule(value: str) -> str:
    # Patterns are matched part by part so that '*' never runs across the dot: with
    # one pattern over the whole "db.name", 'shop*' would also pick 'shopping.x'.
    if value.count(".") != 1:
        raise ValueError(
            f"rule {show_value(value)} must be 'db_pattern.name_pattern' with exactly one dot"
            " (e.g. 'sales_*.order_?', 'shop.*')"
        )
    db_pattern, name_pattern = value.split(".")
    _check_part(db_pattern, "the database pattern of a rule")
    _check_part(name_pattern, "the name pattern of a rule")
    if not _WILDCARD_CHARS & set(db_pattern):
        _not_system(db_pattern, "database")
    return value


def _check_keyed_object(value: str) -> str:
    """Keys of rename.tables, rename.columns and filters: one source table."""
    _split_qualified(value, "table")
    _no_wildcards(value, "table", "wildcards are not supported here")
    return value


def _check_table_target(value: str) -> str:
    if "." in value:
        database, _ = _split_qualified(value, "rename target")
        _not_system(database, "target database")
    else:
        _check_part(value, "rename target")
    return value


def _check_name(value: str) -> str:
    _check_part(value, "name")
    return value


_WHERE = re.compile(r"\s*where\b", re.IGNORECASE)


def _check_condition(value: str) -> str:
    """A row filter is pasted into ``WHERE (<condition>) AND <chunk range>``; it must be
    one expression that cannot escape those parentheses or end the statement."""
    text = value.strip()
    if not text:
        raise ValueError("a row filter must not be empty")
    if _WHERE.match(text):
        raise ValueError("write only the condition, without the word WHERE")
    quote: str | None = None
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if quote is not None:
            if ch == "\\" and quote != "`":
                i += 1  # the escaped character cannot close the string
            elif ch == quote:
                if nxt == quote:
                    i += 1  # a doubled quote stands for itself
                else:
                    quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            raise ValueError("a row filter is one condition: ';' outside quotes is not allowed")
        elif ch == "#" or (ch == "/" and nxt == "*") or (ch == "-" and nxt == "-"):
            following = text[i + 2 : i + 3]
            # '--' starts a comment only when followed by a space or the end ("a--1"
            # is a minus twice); a comment would swallow the chunk range after it.
            if ch != "-" or following in ("", " ", "\t", "\n", "\r"):
                raise ValueError("a row filter must not contain SQL comments")
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("a row filter has a ')' without its '('")
        i += 1
    if quote is not None:
        raise ValueError(f"a row filter has an unterminated {quote} quote")
    if depth:
        raise ValueError("a row filter has a '(' without its ')'")
    return text


def _check_task_name(value: str) -> str:
    if not _TASK_NAME.fullmatch(value):
        raise ValueError("use 1 to 64 letters, digits, '_', '.' or '-'")
    return value


DatabaseName = Annotated[str, AfterValidator(_check_database)]
ObjectName = Annotated[str, AfterValidator(_check_object)]
Rule = Annotated[str, AfterValidator(_check_rule)]
SourceTable = Annotated[str, AfterValidator(_check_keyed_object)]
# a source database only has to be a name: renaming one never selected is harmless
SourceDatabase = Annotated[str, AfterValidator(_check_name)]
TargetDatabase = DatabaseName
TableTarget = Annotated[str, AfterValidator(_check_table_target)]
ColumnName = Annotated[str, AfterValidator(_check_name)]
Condition = Annotated[str, AfterValidator(_check_condition)]
TaskName = Annotated[str, AfterValidator(_check_task_name)]


@lru_cache(maxsize=256)
def split_rules(rules: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Cached on the (validated, immutable) tuple: matches() runs once per table.
    return tuple((r.split(".")[0], r.split(".")[1]) for r in rules)


@lru_cache(maxsize=256)
def as_set(items: tuple[str, ...]) -> frozenset[str]:
    return frozenset(items)


class SpecModel(BaseModel):
    # hide_input_in_errors: an error must not echo input back (an endpoint URL may
    # hold a password); parse_spec renders errors itself from field paths.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# -- selection -----------------------------------------------------------------------------
