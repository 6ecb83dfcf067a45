"""Which row filter conditions can be evaluated on change events.

Incremental sync evaluates a task's row filter on every change of a filtered table
(``sync.row_selection``), on the source server, against the row images the change
carries (``endpoints.mysql.filter_eval``). That gives the condition the meaning
the full copy gave it (the same server, collations, NULLs, functions, session time
zone) only if the result depends on the row alone. Refused, at spec time:

- subqueries (``SELECT`` anywhere): they read other rows, or other tables, whose
  state at the time of the change the event does not carry;
- functions whose result changes with the time, the session or the server's state
  (``NOW()``, ``RAND()``, ``UUID()``, ``CONNECTION_ID()``, locks, sleeps ...);
- user and system variables (``@x``, ``@@sql_mode``): another session's values.

Stored functions cannot be checked here: a filter calling one must call a
deterministic one (README, Row filters).

The check tokenizes the condition with sqlglot's MySQL tokenizer (strings, quoted
identifiers and comments are told apart by it), never interpreting the SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot.tokenizer_core import Token

#: functions whose result is not a function of the row (MariaDB and OceanBase names)
NON_DETERMINISTIC = frozenset(
    {
        "BENCHMARK", "CONNECTION_ID", "CURDATE", "CURRENT_DATE", "CURRENT_ROLE",
        "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER", "CURTIME", "DATABASE",
        "FOUND_ROWS", "GET_LOCK", "IS_FREE_LOCK", "IS_USED_LOCK", "LASTVAL",
        "LAST_INSERT_ID", "LOAD_FILE", "LOCALTIME", "LOCALTIMESTAMP", "MASTER_POS_WAIT",
        "NEXTVAL", "NOW", "RAND", "RANDOM_BYTES", "RELEASE_ALL_LOCKS", "RELEASE_LOCK",
        "ROW_COUNT", "SCHEMA", "SESSION_USER", "SETVAL", "SLEEP", "SYSDATE",
        "SYSTEM_USER", "SYS_GUID", "UNIX_TIMESTAMP", "USER", "UTC_DATE", "UTC_TIME",
        "UTC_TIMESTAMP", "UUID", "UUID_SHORT",
    }
)  # fmt: skip
#: of those, the ones SQL allows without parentheses
_BARE = frozenset(
    {
        "CURRENT_DATE", "CURRENT_ROLE", "CURRENT_TIME", "CURRENT_TIMESTAMP",
        "CURRENT_USER", "LOCALTIME", "LOCALTIMESTAMP", "UTC_DATE", "UTC_TIME",
        "UTC_TIMESTAMP",
    }
)  # fmt: skip


def event_problem(condition: str) -> str | None:
    """Why *condition* cannot be evaluated on a change event, or None when it can."""
    # Imported here: sqlglot takes 0.09 s to import, and only a task with row
    # filters needs it; every duosync process start paid for it.
    from sqlglot.dialects.mysql import MySQL
    from sqlglot.errors import TokenError
    from sqlglot.tokenizer_core import TokenType

    literals = (TokenType.STRING, TokenType.IDENTIFIER, TokenType.NUMBER)
    try:
        tokens: list[Token] = MySQL().tokenizer_class().tokenize(condition)
    except TokenError as exc:
        return f"it cannot be read as SQL ({exc})"
    for i, token in enumerate(tokens):
        if token.token_type in literals:
            continue
        word = token.text.upper()
        if token.token_type is TokenType.SELECT or word == "SELECT":
            return "it holds a subquery, which reads rows the change does not carry"
        if token.token_type in (TokenType.PARAMETER, TokenType.SESSION_PARAMETER):
            return "it reads a user or system variable (@name, @@name): another session's"
        called = i + 1 < len(tokens) and tokens[i + 1].token_type is TokenType.L_PAREN
        if word in NON_DETERMINISTIC and (called or word in _BARE):
            return f"{word}() depends on when and where it runs, not on the row alone"
    return None
