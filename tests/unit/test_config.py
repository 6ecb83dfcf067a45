"""Unit tests for duosync.config: endpoint URLs, validation and password hygiene."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from duosync.config import DEFAULT_PORTS, Endpoint, Flavor, redact_url
from duosync.errors import ConfigError

SECRET = "S3cretPw!"


def _assign(obj: object, field: str, value: object) -> None:
    setattr(obj, field, value)


# -- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "flavor", "port"),
    [
        ("mysql", Flavor.MYSQL, 3306),
        ("mariadb", Flavor.MARIADB, 3306),
        ("oceanbase", Flavor.OCEANBASE, 2881),
    ],
)
def test_scheme_gives_flavor_and_default_port(scheme: str, flavor: Flavor, port: int) -> None:
    ep = Endpoint.from_url(f"{scheme}://alice:{SECRET}@db.example.com/shop")
    assert ep.flavor is flavor
    assert ep.host == "db.example.com"
    assert ep.port == port
    assert ep.port == DEFAULT_PORTS[flavor]
    assert ep.user == "alice"
    assert ep.database == "shop"
    assert ep.password is not None
    assert ep.password.get_secret_value() == SECRET
    assert ep.password_env is None
    assert ep.name is None
    assert ep.connect_timeout == 10.0


def test_default_ports_table() -> None:
    assert DEFAULT_PORTS == {
        Flavor.MYSQL: 3306,
        Flavor.MARIADB: 3306,
        Flavor.OCEANBASE: 2881,
        Flavor.POSTGRESQL: 5432,
    }
    assert set(DEFAULT_PORTS) == set(Flavor)


def test_scheme_is_case_insensitive() -> None:
    ep = Endpoint.from_url("MariaDB://u@h")
    assert ep.flavor is Flavor.MARIADB


def test_explicit_port_and_no_database_or_password() -> None:
    ep = Endpoint.from_url("oceanbase://root@127.0.0.1:2882")
    assert ep.flavor is Flavor.OCEANBASE
    assert ep.host == "127.0.0.1"
    assert ep.port == 2882
    assert ep.user == "root"
    assert ep.database is None
    assert ep.password is None


def test_trailing_slash_means_no_database() -> None:
    ep = Endpoint.from_url("mysql://u@h:3310/")
    assert ep.database is None
    assert ep.port == 3310


def test_percent_encoded_user_and_password() -> None:
    ep = Endpoint.from_url("mysql://us%40er%3Ax:p%40ss%3Aw@h/db")
    assert ep.user == "us@er:x"
    assert ep.password is not None
    assert ep.password.get_secret_value() == "p@ss:w"
    assert ep.resolved_password() == "p@ss:w"


def test_ipv6_host_in_brackets() -> None:
    ep = Endpoint.from_url("mariadb://u:pw@[::1]:3307/db")
    assert ep.host == "::1"
    assert ep.port == 3307
    assert ep.display == "mariadb://u@[::1]:3307/db"


def test_ipv6_host_default_port() -> None:
    ep = Endpoint.from_url("oceanbase://u@[fe80::1]")
    assert ep.host == "fe80::1"
    assert ep.port == 2881


def test_query_parameters() -> None:
    ep = Endpoint.from_url("mysql://u@h/db?password_env=DB_PW&connect_timeout=2.5&name=primary")
    assert ep.password is None
    assert ep.password_env == "DB_PW"
    assert ep.connect_timeout == 2.5
    assert ep.name == "primary"
    # a name replaces the address in messages
    assert ep.display == "primary"


def test_last_repeated_query_parameter_wins() -> None:
    ep = Endpoint.from_url("mysql://u@h?connect_timeout=3&connect_timeout=7")
    assert ep.connect_timeout == 7.0


def test_overrides_are_applied_over_url() -> None:
    ep = Endpoint.from_url("mysql://u@h/db", connect_timeout=30, name="src")
    assert ep.connect_timeout == 30.0
    assert ep.name == "src"


def test_model_validate_from_dict_with_url() -> None:
    ep = Endpoint.model_validate({"url": "mariadb://u@h:3316/d", "password_env": "X"})
    assert ep.flavor is Flavor.MARIADB
    assert ep.host == "h"
    assert ep.port == 3316
    assert ep.database == "d"
    assert ep.password is None
    assert ep.password_env == "X"


def test_model_validate_from_plain_string() -> None:
    ep = Endpoint.model_validate("mysql://u@h/d")
    assert ep.flavor is Flavor.MYSQL
    assert ep.database == "d"


def test_model_validate_refuses_extra_fields() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        Endpoint.model_validate({"url": "mariadb://u@h/d", "bogus": 1})


def test_from_url_refuses_extra_override_as_config_error() -> None:
    with pytest.raises(ConfigError, match="bogus") as info:
        Endpoint.from_url(f"mysql://u:{SECRET}@h/db", bogus=1)
    assert SECRET not in str(info.value)


def test_endpoint_is_frozen() -> None:
    ep = Endpoint.from_url("mysql://u@h/db")
    with pytest.raises(ValidationError):
        _assign(ep, "host", "other")
    assert ep.host == "h"


# -- malformed URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"postgres://u:{SECRET}@h/db", "unknown scheme 'postgres'"),
        (f"mysql://u:{SECRET}@/db", "no host"),
        (f"mysql://:{SECRET}@h/db", "no user"),
        (f"mysql://u:{SECRET}@h:99999/db", "from 1 to 65535"),
        (f"mysql://u:{SECRET}@h:abc/db", "abc"),
        (f"mysql://u:{SECRET}@h/db?pasword_env=X", "unknown parameter(s) pasword_env"),
        (f"mysql://u:{SECRET}@h/db/extra", "more than one database"),
        (f"mysql://u:{SECRET}@h/db?password_env=PW", "either a password or password_env"),
        (f"mysql://u:{SECRET}@h/db#frag", "'#'"),
        (f"mysql://u:{SECRET}@h:0/db", "port"),
        (f"mysql://u:{SECRET}@h/db?connect_timeout=abc", "connect_timeout"),
        (f"mysql://u:{SECRET}@h/db?connect_timeout=0", "connect_timeout"),
    ],
)
def test_malformed_url_with_password(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint.from_url(url)
    text = str(info.value)
    assert why in text
    # the URL is named, with its password replaced
    assert redact_url(url) in text
    assert SECRET not in text
    assert "S3cret" not in text
    assert "invalid endpoint URL" in text


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgres://u@h/db", "unknown scheme"),
        ("mysql:///db", "no host"),
        ("mysql://h/db", "no user"),
        ("mysql://u@h:99999", "from 1 to 65535"),
        ("mysql://u@h:abc", "abc"),
        ("mysql://u@h?foo=1", "unknown parameter(s) foo"),
        ("mysql://u@h/a/b", "'a/b'"),
        ("mysql://u@h?password_env=1bad", "password_env"),
    ],
)
def test_malformed_url_without_password_names_url(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint.from_url(url)
    text = str(info.value)
    assert repr(url) in text
    assert why in text


def test_malformed_url_error_carries_hint() -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint.from_url("postgres://u@h/db")
    assert info.value.hint is not None
    assert "mysql|mariadb|oceanbase" in info.value.hint


def test_redact_url() -> None:
    assert redact_url(f"mysql://u:{SECRET}@h/db") == "mysql://u:***@h/db"
    assert redact_url("mysql://u@h/db") == "mysql://u@h/db"
    # An unescaped '@' or '/' in the password must not end the redaction early.
    assert redact_url("mysql://u:S3c@ret/Pw!@h/db") == "mysql://u:***@h/db"


# -- password never shown ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://alice:{SECRET}@h:3306/db",
        f"oceanbase://alice:{SECRET}@[::1]/db",
        f"mariadb://alice:{SECRET}@h/db?name=src",
    ],
)
def test_password_not_in_display_str_repr(url: str) -> None:
    ep = Endpoint.from_url(url)
    assert ep.resolved_password() == SECRET
    for text in (ep.display, str(ep), repr(ep), f"{ep}", ep.model_dump_json()):
        assert SECRET not in text


def test_display_format() -> None:
    ep = Endpoint.from_url(f"mysql://alice:{SECRET}@h:3310/db")
    assert ep.display == "mysql://alice@h:3310/db"
    assert str(ep) == ep.display
    no_db = Endpoint.from_url("oceanbase://root@h")
    assert no_db.display == "oceanbase://root@h:2881"


# -- resolved_password -------------------------------------------------------------------


def test_resolved_password_from_url() -> None:
    assert Endpoint.from_url(f"mysql://u:{SECRET}@h").resolved_password() == SECRET


def test_resolved_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUOSYNC_TEST_PW", SECRET)
    ep = Endpoint.from_url("mysql://u@h/db?password_env=DUOSYNC_TEST_PW")
    assert ep.resolved_password() == SECRET
    assert SECRET not in repr(ep)


def test_resolved_password_from_env_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUOSYNC_TEST_PW2", "other")
    ep = Endpoint.model_validate({"url": "mysql://u@h/db", "password_env": "DUOSYNC_TEST_PW2"})
    assert ep.resolved_password() == "other"


def test_resolved_password_env_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUOSYNC_MISSING_PW", raising=False)
    ep = Endpoint.from_url("mysql://u@h:3306/db?password_env=DUOSYNC_MISSING_PW")
    with pytest.raises(ConfigError) as info:
        ep.resolved_password()
    err = info.value
    text = str(err)
    assert "DUOSYNC_MISSING_PW" in text
    assert err.endpoint == ep.display
    assert ep.display in text


def test_resolved_password_env_missing_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # another variable holds a secret; nothing from the environment may appear
    monkeypatch.setenv("DUOSYNC_OTHER", SECRET)
    monkeypatch.delenv("DUOSYNC_MISSING_PW", raising=False)
    ep = Endpoint.from_url("mysql://u@h/db?password_env=DUOSYNC_MISSING_PW")
    with pytest.raises(ConfigError) as info:
        ep.resolved_password()
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_resolved_password_empty_env_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUOSYNC_EMPTY_PW", "")
    ep = Endpoint.from_url("mysql://u@h?password_env=DUOSYNC_EMPTY_PW")
    assert ep.resolved_password() == ""


def test_resolved_password_none_given() -> None:
    ep = Endpoint.from_url("mariadb://u@h/db")
    assert ep.password is None
    assert ep.password_env is None
    assert ep.resolved_password() == ""


def test_empty_password_in_url() -> None:
    ep = Endpoint.from_url("mysql://u:@h")
    assert ep.password is not None
    assert ep.resolved_password() == ""


# -- passwords with unescaped special characters, other entry points ------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:S3c/retPw!@h/db",
        "mysql://u:S3c?retPw!@h/db",
        "mysql://u:S3c#retPw!@h/db",
        "mysql://u:S3c@retPw!@h:abc/db",
    ],
)
def test_unescaped_password_characters_do_not_leak(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint.from_url(url)
    text = str(info.value)
    assert "S3c" not in text
    assert "retPw" not in text


def test_model_validate_error_does_not_leak_password() -> None:
    with pytest.raises(ValidationError) as info:
        Endpoint.model_validate({"url": f"mysql://u:{SECRET}@h/db", "password_env": "X"})
    assert "S3cret" not in str(info.value)
