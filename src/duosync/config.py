"""Validated configuration: endpoints given as URLs.

Configuration is validated once, here, at the edge; everything inward receives
these typed, frozen objects. A password never appears in ``str()``/``repr()`` or in
an error: it is a ``SecretStr``, and ``Endpoint.display`` is the only way an
endpoint is named in messages.

URL form::

    mariadb://user:password@host:port/database?password_env=NAME&connect_timeout=10&io_timeout=60

``mysql://``, ``mariadb://`` and ``oceanbase://`` are accepted. The password may be
left out of the URL and read from the environment variable named by
``password_env`` (in the URL query or as a field), so it never sits in a file.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from duosync.errors import ConfigError


class Flavor(StrEnum):
    """Database family named by the URL scheme (and confirmed by the server)."""

    MYSQL = "mysql"
    MARIADB = "mariadb"
    OCEANBASE = "oceanbase"
    #: PostgreSQL: a target of schema and full migration so far (``spec`` says so)
    POSTGRESQL = "postgresql"


DEFAULT_PORTS: dict[Flavor, int] = {
    Flavor.MYSQL: 3306,
    Flavor.MARIADB: 3306,
    Flavor.OCEANBASE: 2881,
    Flavor.POSTGRESQL: 5432,
}

# Query parameters a URL may carry; anything else is a typo we refuse.
_URL_PARAMS = {"password_env", "connect_timeout", "io_timeout", "name"}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def redact_url(text: str) -> str:
    """Replace the password of ``scheme://user:password@host...`` with ``***``.

    Used on raw user input that may not parse, so an error can quote it. The password
    runs from the first ':' after ``//`` to the *last* '@': an unescaped '/', '?', '#'
    or '@' inside it must not end the redaction early.
    """
    start = text.find("//")
    start = start + 2 if start >= 0 else 0
    at = text.rfind("@")
    if at < start:
        return text
    colon = text.find(":", start, at)
    if colon < 0:
        return text
    return f"{text[: colon + 1]}***{text[at:]}"


class Endpoint(BaseModel):
    """One database server we read from or write to."""

    # hide_input_in_errors: a validation error must not echo a URL or password back.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    flavor: Flavor
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    user: str = Field(min_length=1)
    password: SecretStr | None = None
    password_env: str | None = None
    database: str | None = None
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    #: seconds an incremental-sync connection (apply, OceanBase capture reads, filter
    #: evaluation) may stay silent before it is taken for dead (a half-open link) and
    #: replaced; a statement legitimately running longer fails and is retried
    io_timeout: float = Field(default=60.0, ge=5, le=3600)
    #: optional label used in messages instead of the address
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_url(cls, data: Any) -> Any:
        """Allow ``url: mariadb://...`` (plus overrides) wherever an endpoint is expected."""
        if isinstance(data, str):
            return _parse_url(data)
        if isinstance(data, dict) and "url" in data:
            rest = {k: v for k, v in data.items() if k != "url"}
            parsed = _parse_url(str(data["url"]))
            parsed.update(rest)
            return parsed
        return data

    @model_validator(mode="after")
    def _check_password_source(self) -> Endpoint:
        if self.password is not None and self.password_env is not None:
            raise ValueError("give either a password or password_env, not both")
        if self.password_env is not None and not _ENV_NAME.match(self.password_env):
            raise ValueError(f"password_env {self.password_env!r} is not a valid variable name")
        return self

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Endpoint:
        """Parse and validate *url*; raise ``ConfigError`` naming the (redacted) URL."""
        data: dict[str, Any] = {"url": url, **overrides}
        try:
            return cls.model_validate(data)
        except ConfigError:
            raise
        except ValidationError as exc:
            raise ConfigError(
                f"invalid endpoint URL {redact_url(url)!r}: {_first_error(exc)}"
            ) from None

    @property
    def display(self) -> str:
        """How the endpoint is named in every message: never with its password."""
        if self.name:
            return self.name
        host = f"[{self.host}]" if ":" in self.host else self.host
        db = f"/{self.database}" if self.database else ""
        return f"{self.flavor.value}://{self.user}@{host}:{self.port}{db}"

    def resolved_password(self) -> str:
        """The password to send: from the URL, from ``password_env``, or empty."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"environment variable {self.password_env} (password_env) is not set",
                    endpoint=self.display,
                )
            return value
        return ""

    def __str__(self) -> str:
        return self.display


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _parse_url(url: str) -> dict[str, Any]:
    """Split an endpoint URL into fields; raise ``ConfigError`` on malformed input."""
    shown = redact_url(url)

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"invalid endpoint URL {shown!r}: {why}",
            hint="expected mysql|mariadb|oceanbase|postgresql://user[:password]@host[:port]"
            "[/database]",
        )

    if "@" in url and url.count("@") > 1:
        raise bad("more than one '@' (percent-encode '@' in a user or password as %40)")
    try:
        parts = urlsplit(url.strip())
        port_value = parts.port
    except ValueError:
        # urlsplit's own message may quote part of a misparsed password: say it ourselves.
        raise bad(
            "the port is not a number from 1 to 65535 (percent-encode '/', '?', '#' in a"
            " password as %2F, %3F, %23)"
        ) from None
    try:
        flavor = Flavor(parts.scheme.lower())
    except ValueError:
        raise bad(f"unknown scheme {parts.scheme!r}") from None
    if not parts.hostname:
        raise bad("no host")
    if parts.username is None or not unquote(parts.username):
        raise bad("no user")
    if parts.fragment:
        raise bad("unexpected '#' part (percent-encode '#' in a user name as %23)")
    path = unquote(parts.path).strip("/")
    if "/" in path:
        raise bad(f"path {path!r} names more than one database")

    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - _URL_PARAMS)
    if unknown:
        raise bad(
            f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_URL_PARAMS))}"
        )
    data: dict[str, Any] = {
        "flavor": flavor,
        "host": parts.hostname,
        "port": port_value if port_value is not None else DEFAULT_PORTS[flavor],
        "user": unquote(parts.username),
        "database": path or None,
    }
    if parts.password is not None:
        data["password"] = unquote(parts.password)
    for key, values in query.items():
        data[key] = values[-1]
    return data
