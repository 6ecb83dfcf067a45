"""Unit tests for duosync.errors and the driver-error translation in the MySQL endpoint."""

from __future__ import annotations

import pymysql
import pytest

from duosync.config import Endpoint
from duosync.endpoints.mysql.connection import translate
from duosync.errors import ConfigError, DataError, DuosyncError, FatalError, RetriableError

SECRET = "S3cretPw!"
SUBCLASSES: tuple[type[DuosyncError], ...] = (ConfigError, FatalError, RetriableError, DataError)


# -- the error classes ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", SUBCLASSES)
def test_subclasses_share_root(cls: type[DuosyncError]) -> None:
    assert issubclass(cls, DuosyncError)
    assert issubclass(cls, Exception)
    err = cls("boom")
    assert isinstance(err, DuosyncError)
    with pytest.raises(DuosyncError):
        raise err


def test_subclasses_are_distinct() -> None:
    for a in SUBCLASSES:
        for b in SUBCLASSES:
            if a is not b:
                assert not issubclass(a, b)


def test_kinds_differ() -> None:
    classes: list[type[DuosyncError]] = [DuosyncError, *SUBCLASSES]
    kinds = [cls.kind for cls in classes]
    assert len(set(kinds)) == len(kinds)
    assert ConfigError.kind == "config error"
    assert FatalError.kind == "fatal"
    assert RetriableError.kind == "retriable"
    assert DataError.kind == "data error"
    assert DuosyncError.kind == "error"


def test_str_without_context_is_message() -> None:
    err = FatalError("binlog purged")
    assert str(err) == "binlog purged"
    assert err.message == "binlog purged"
    assert err.context() == ""
    assert err.args == ("binlog purged",)


def test_str_with_full_context_and_hint() -> None:
    err = DataError(
        "duplicate entry",
        task="t1",
        endpoint="mysql://u@h:3306",
        table="db.t",
        position="mysql-bin.000003:154",
        hint="check the unique key",
    )
    assert err.context() == (
        "task t1, endpoint mysql://u@h:3306, table db.t, position mysql-bin.000003:154"
    )
    assert str(err) == (
        "task t1, endpoint mysql://u@h:3306, table db.t, position mysql-bin.000003:154:"
        " duplicate entry (check the unique key)"
    )
    assert (err.task, err.endpoint, err.table, err.position, err.hint) == (
        "t1",
        "mysql://u@h:3306",
        "db.t",
        "mysql-bin.000003:154",
        "check the unique key",
    )


def test_str_with_partial_context() -> None:
    err = RetriableError("lost connection", endpoint="src", table="db.t")
    assert str(err) == "endpoint src, table db.t: lost connection"


def test_str_with_hint_only() -> None:
    err = ConfigError("bad option", hint="see --help")
    assert str(err) == "bad option (see --help)"


def test_empty_context_values_are_skipped() -> None:
    err = ConfigError("x", task="", endpoint=None, table="t")
    assert str(err) == "table t: x"


# -- translate() -----------------------------------------------------------------------


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint.from_url(f"mysql://u:{SECRET}@db.example.com:3307/shop")


def test_translate_access_denied_is_config_error(endpoint: Endpoint) -> None:
    exc = pymysql.err.OperationalError(1045, "Access denied for user 'u'@'h' (using password: YES)")
    err = translate(exc, endpoint, password=SECRET)
    assert type(err) is ConfigError
    assert err.endpoint == endpoint.display == "mysql://u@db.example.com:3307/shop"
    assert err.hint is not None
    assert "password" in err.hint
    text = str(err)
    assert endpoint.display in text
    assert "Access denied for user 'u'@'h'" in text
    assert "1045" in text
    assert err.hint in text
    assert SECRET not in text


def test_translate_cannot_connect_is_retriable(endpoint: Endpoint) -> None:
    exc = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db.example.com'")
    err = translate(exc, endpoint, password=SECRET)
    assert type(err) is RetriableError
    assert err.endpoint == endpoint.display
    assert err.hint is not None
    assert "2003" in str(err)


def test_translate_duplicate_is_data_error(endpoint: Endpoint) -> None:
    exc = pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'")
    err = translate(exc, endpoint, password=SECRET, table="shop.t")
    assert type(err) is DataError
    assert err.table == "shop.t"
    assert "Duplicate entry '1'" in str(err)
    assert "table shop.t" in str(err)


def test_translate_unknown_code_is_fatal(endpoint: Endpoint) -> None:
    exc = pymysql.err.ProgrammingError(1146, "Table 'shop.t' doesn't exist")
    err = translate(exc, endpoint, password=SECRET)
    assert type(err) is FatalError
    assert err.hint is None
    assert str(err) == (
        "endpoint mysql://u@db.example.com:3307/shop: Table 'shop.t' doesn't exist"
        " [MySQL error 1146]"
    )


def test_translate_action_prefix(endpoint: Endpoint) -> None:
    exc = pymysql.err.OperationalError(1049, "Unknown database 'shop'")
    err = translate(exc, endpoint, password=SECRET, action="connect")
    assert type(err) is ConfigError
    assert err.message == "cannot connect: Unknown database 'shop' [MySQL error 1049]"


def test_translate_scrubs_explicit_password(endpoint: Endpoint) -> None:
    exc = pymysql.err.OperationalError(1105, f"odd server text echoing {SECRET} back")
    err = translate(exc, endpoint, password=SECRET)
    assert SECRET not in str(err)
    assert "odd server text echoing *** back" in str(err)


def test_translate_scrubs_endpoint_password_by_default(endpoint: Endpoint) -> None:
    exc = pymysql.err.OperationalError(1105, f"{SECRET} and again {SECRET}")
    err = translate(exc, endpoint)
    assert SECRET not in str(err)
    assert "*** and again ***" in str(err)


def test_translate_os_error_is_retriable(endpoint: Endpoint) -> None:
    err = translate(ConnectionRefusedError(111, "Connection refused"), endpoint)
    assert type(err) is RetriableError
    assert "Connection refused" in str(err)


def test_translate_interface_error_is_retriable(endpoint: Endpoint) -> None:
    err = translate(pymysql.err.InterfaceError(0, ""), endpoint)
    assert type(err) is RetriableError


def test_translate_with_unset_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUOSYNC_UNSET_PW", raising=False)
    ep = Endpoint.from_url("mysql://u@h/db?password_env=DUOSYNC_UNSET_PW")
    exc = pymysql.err.OperationalError(1213, "Deadlock found")
    err = translate(exc, ep)
    assert type(err) is RetriableError
    assert "Deadlock found" in str(err)
