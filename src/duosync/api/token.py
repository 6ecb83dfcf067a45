"""The API token of ``duosync serve``: from an environment variable, or a random
one kept in HOME/api-token (readable by its owner only) so that the CLI user on
this machine can read it and a restart keeps it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from duosync.errors import ConfigError

TOKEN_ENV = "DUOSYNC_API_TOKEN"
TOKEN_FILE = "api-token"


def api_token(home: Path) -> tuple[str, str]:
    """(token, where it came from)."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        if len(given) < 16:
            raise ConfigError(f"${TOKEN_ENV} is shorter than 16 characters: too easy to guess")
        return given, f"${TOKEN_ENV}"
    path = home.expanduser() / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token, str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    # created with owner-only permissions from the start: no window where others read it
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token, str(path)
