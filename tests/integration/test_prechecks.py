"""Pre-check items against real servers: what passes, warns and fails, and that each
detail names the endpoint and the fix (never a password)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from duosync.config import Endpoint
from duosync.service.prechecks.checks import CheckResult, Status
from duosync.service.prechecks.items import task_prechecks
from duosync.service.prechecks.privileges import Grants
from duosync.spec import TaskSpec
from duosync.specfile import parse_spec
from tests.helpers import query, run_sql

pytestmark = pytest.mark.integration

SECRET = "Pc-Secret-771"


def _url(endpoint: Endpoint, user: str = "root", password: str | None = None) -> str:
    auth = f"{user}:{password}" if password else user
    return f"{endpoint.flavor.value}://{auth}@{endpoint.host}:{endpoint.port}"


def _spec(name: str, source: str, target: str, body: dict[str, Any]) -> TaskSpec:
    return parse_spec({"name": name, "source": source, "target": target, **body}, name)


def _by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    print("\n".join(map(str, results)))  # shown when a test fails
    names = [r.name for r in results]
    assert len(names) == len(set(names)), names
    return {r.name: r for r in results}


def _offset(endpoint: Endpoint) -> int:
    """The offset from UTC of the server's global time zone, read independently."""
    row = query(
        endpoint,
        "SELECT @@GLOBAL.time_zone, @@system_time_zone",
    )[0]
    if str(row[0]).upper() != "SYSTEM":
        sign = -1 if str(row[0]).startswith("-") else 1
        hours, minutes = str(row[0]).lstrip("+-").split(":")
        return sign * (int(hours) * 3600 + int(minutes) * 60)
    return int(query(endpoint, "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())")[0][0])


@contextmanager
def _user(endpoint: Endpoint, name: str, grants: list[str]) -> Iterator[str]:
    """A user with *grants* (``{u}`` stands for the account); its URL, then dropped."""
    account = f"'{name}'@'%'"
    run_sql(
        endpoint,
        [
            f"DROP USER IF EXISTS {account}",
            f"CREATE USER {account} IDENTIFIED BY '{SECRET}'",
            *(g.format(u=account) for g in grants),
        ],
    )
    try:
        yield _url(endpoint, name, SECRET)
    finally:
        run_sql(endpoint, [f"DROP USER IF EXISTS {account}"])


def test_clean_two_way_mariadb_to_mariadb_passes_every_item(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        ["CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO t VALUES (1, 'a')"],
        src,
    )
    spec = _spec(
        "pc-clean",
        _url(mariadb1),
        _url(mariadb2),
        {
            "types": ["schema", "full", "incremental"],
            "topology": "two-way",
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
        },
    )
    results = task_prechecks(spec)
    got = _by_name(results)
    assert [r.name for r in results] == [
        "source.connectivity",
        "target.connectivity",
        "source.version",
        "target.version",
        "source.privileges",
        "target.privileges",
        "source.binlog",
        "source.binlog_retention",
        "source.keyless_tables",
        "source.routines",
        "target.non_empty_tables",
        "time_zone",
        "charset",
        "filters",
        "source.oms",
        "target.oms",
    ]
    assert {r.name: r.status for r in results} == {r.name: Status.PASS for r in results}
    assert got["source.connectivity"].detail.startswith(f"connected to {mariadb1.display} as root@")
    assert "runs MariaDB 10." in got["target.version"].detail
    assert "REPLICATION SLAVE" in got["source.privileges"].detail
    assert "INSERT" in got["target.privileges"].detail
    assert "binlog_format ROW, binlog_row_image FULL" in got["source.binlog"].detail
    assert "20,000 rows/s" in got["source.binlog_retention"].detail
    assert "every table has a primary" in got["source.keyless_tables"].detail
    assert "no target table on" in got["target.non_empty_tables"].detail
    assert got["filters"].detail == "no row filters"
    assert got["target.oms"].detail.startswith(
        f"transaction tables on the target ({mariadb2.display}): oms.duosync_checkpoint"
    )


def test_mariadb_to_oceanbase_warns_of_time_zone_and_charset(
    mariadb1: Endpoint, oceanbase: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src = fresh_database(mariadb1, "src")
    run_sql(
        mariadb1,
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1)"
        " DEFAULT CHARSET=utf8mb4",
        src,
    )
    dst = fresh_database(oceanbase, "dst")
    spec = _spec(
        "pc-ob",
        _url(mariadb1),
        _url(oceanbase),
        {"select": {"databases": [src]}, "rename": {"databases": {src: dst}}},
    )
    got = _by_name(task_prechecks(spec))
    assert "source.binlog" not in got and "source.oms" not in got  # no incremental, one-way
    assert got["target.version"].status is Status.PASS
    assert "runs OceanBase 4." in got["target.version"].detail
    assert got["target.privileges"].status is Status.PASS
    assert oceanbase.display in got["target.privileges"].detail
    # OceanBase defaults to +08:00; the sandbox's MariaDB follows the machine.
    zone = got["time_zone"]
    if _offset(mariadb1) != _offset(oceanbase):
        assert zone.status is Status.WARN
        assert "duosync moves TIMESTAMP values in UTC" in zone.detail
    else:
        assert zone.status is Status.PASS
    assert f"UTC{'+08:00' if _offset(oceanbase) == 8 * 3600 else ''}" in zone.detail
    charset = got["charset"]
    assert charset.status is Status.WARN
    assert f"column {src}.t.name (latin1) becomes utf8mb4" in charset.detail
    assert oceanbase.display in charset.detail


@pytest.mark.parametrize(("policy", "status"), [("stop", Status.FAIL), ("ignore", Status.WARN)])
def test_non_empty_target_table(
    policy: str,
    status: Status,
    mariadb1: Endpoint,
    mariadb2: Endpoint,
    fresh_database: Callable[..., str],
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    for endpoint, db in ((mariadb1, src), (mariadb2, dst)):
        run_sql(endpoint, ["CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE e (id INT)"], db)
    run_sql(mariadb2, "INSERT INTO t VALUES (7)", dst)
    spec = _spec(
        f"pc-busy-{policy}",
        _url(mariadb1),
        _url(mariadb2),
        {
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            "options": {"non_empty_target": policy},
        },
    )
    item = _by_name(task_prechecks(spec))["target.non_empty_tables"]
    assert item.status is status
    assert f"already hold rows: {dst}.t;" in item.detail  # e exists but is empty
    assert f"{dst}.e" not in item.detail and mariadb2.display in item.detail
    assert (
        "non_empty_target: ignore" if policy == "stop" else "their rows are kept"
    ) in item.detail


def test_rows_the_task_copied_itself_pass_with_a_note(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    """A failed task started again: its own copied tables are no reason to refuse;
    another busy table still is."""
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    for endpoint, db in ((mariadb1, src), (mariadb2, dst)):
        run_sql(endpoint, ["CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT)"], db)
    run_sql(mariadb2, ["INSERT INTO t VALUES (7)"], dst)
    spec = _spec(
        "pc-own",
        _url(mariadb1),
        _url(mariadb2),
        {"select": {"databases": [src]}, "rename": {"databases": {src: dst}}},
    )
    item = _by_name(task_prechecks(spec, own_tables=frozenset({f"{src}.t"})))[
        "target.non_empty_tables"
    ]
    assert item.status is Status.PASS
    assert f"{dst}.t holds rows this task copied itself" in item.detail
    run_sql(mariadb2, ["INSERT INTO u VALUES (1)"], dst)
    item = _by_name(task_prechecks(spec, own_tables=frozenset({f"{src}.t"})))[
        "target.non_empty_tables"
    ]
    assert item.status is Status.FAIL
    assert f"already hold rows: {dst}.u;" in item.detail
    assert f"{dst}.t holds rows this task copied itself" in item.detail


def test_target_user_without_insert_and_create_fails_naming_them(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, "CREATE TABLE t (id INT PRIMARY KEY)", src)
    grants = [f"GRANT SELECT, UPDATE, DELETE ON `{dst}`.* TO {{u}}"]
    with _user(mariadb2, "pc_tgt", grants) as target:
        spec = _spec(
            "pc-tgt-perm",
            _url(mariadb1),
            target,
            {
                "types": ["schema", "full", "incremental"],
                "select": {"databases": [src]},
                "rename": {"databases": {src: dst}},
            },
        )
        results = task_prechecks(spec)
    got = _by_name(results)
    item = got["target.privileges"]
    assert item.status is Status.FAIL
    assert f"'pc_tgt'@'%' on mariadb://pc_tgt@{mariadb2.host}:{mariadb2.port}" in item.detail
    # what it has (SELECT, UPDATE, DELETE) is not reported missing
    assert f"lacks INSERT, CREATE on {dst}.t;" in item.detail
    # the checkpoints of incremental sync
    assert "CREATE, SELECT, INSERT, UPDATE, DELETE on oms.* (needed to" in item.detail
    assert f"Run: GRANT INSERT, CREATE ON `{dst}`.* TO 'pc_tgt'@'%'" in item.detail
    assert got["source.privileges"].status is Status.PASS
    assert all(SECRET not in r.detail for r in results)


def test_source_user_without_replication_slave_fails(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, "CREATE TABLE t (id INT PRIMARY KEY)", src)
    body = {
        "types": ["full", "incremental"],
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
    }
    with _user(mariadb1, "pc_src", [f"GRANT SELECT ON `{src}`.* TO {{u}}"]) as source:
        results = task_prechecks(_spec("pc-src-perm", source, _url(mariadb2), body))
    item = _by_name(results)["source.privileges"]
    assert item.status is Status.FAIL
    wanted = "lacks REPLICATION SLAVE, BINLOG MONITOR (or REPLICATION CLIENT or SUPER) on *.*"
    assert wanted in item.detail
    assert "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'pc_src'@'%'" in item.detail
    assert "SELECT on" not in item.detail
    assert all(SECRET not in r.detail for r in results)
    # The same privileges through a (default) role count.
    role = "pc_reader"
    run_sql(mariadb1, [f"DROP ROLE IF EXISTS {role}", f"CREATE ROLE {role}"])
    try:
        grants = [
            f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {role}",
            f"GRANT SELECT ON `{src}`.* TO {role}",
            f"GRANT {role} TO {{u}}",
            f"SET DEFAULT ROLE {role} FOR {{u}}",
        ]
        with _user(mariadb1, "pc_src", grants) as source:
            item = _by_name(task_prechecks(_spec("pc-src-role", source, _url(mariadb2), body)))[
                "source.privileges"
            ]
    finally:
        run_sql(mariadb1, [f"DROP ROLE IF EXISTS {role}"])
    assert item.status is Status.PASS, item.detail
    assert "'pc_src'@'%'" in item.detail


def test_oceanbase_source_user_without_trigger_fails(
    oceanbase: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(oceanbase, "src"), fresh_database(mariadb2, "dst")
    run_sql(oceanbase, "CREATE TABLE t (id INT PRIMARY KEY)", src)
    body = {
        "types": ["full", "incremental"],
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
    }
    with _user(oceanbase, "pc_obsrc", [f"GRANT SELECT ON `{src}`.* TO {{u}}"]) as source:
        results = task_prechecks(_spec("pc-ob-src", source, _url(mariadb2), body))
    got = _by_name(results)
    assert "source.binlog_retention" not in got  # no binlog to keep
    assert got["source.binlog"].status is Status.PASS
    assert (
        got["source.binlog"].detail == "OceanBase has no binlog: changes are captured by triggers"
    )
    item = got["source.privileges"]
    assert item.status is Status.FAIL
    assert f"lacks TRIGGER on {src}.t;" in item.detail
    assert "CREATE, SELECT, INSERT, UPDATE, DELETE, DROP on oms.*" in item.detail
    assert f"GRANT TRIGGER ON `{src}`.* TO 'pc_obsrc'@'%'" in item.detail
    assert all(SECRET not in r.detail for r in results)
    # A privilege only a role gives cannot be confirmed on OceanBase (SHOW GRANTS does
    # not list the role's privileges): a warning, not a guessed failure.
    role = "pc_obrole"
    run_sql(oceanbase, [f"DROP ROLE IF EXISTS {role}", f"CREATE ROLE {role}"])
    try:
        grants = [
            f"GRANT TRIGGER ON `{src}`.* TO {role}",
            f"GRANT SELECT, TRIGGER ON `{src}`.* TO {{u}}",
            "GRANT ALL PRIVILEGES ON oms.* TO {u}",
            f"GRANT {role} TO {{u}}",
        ]
        with _user(oceanbase, "pc_obsrc", grants) as source:
            item = _by_name(task_prechecks(_spec("pc-ob-role", source, _url(mariadb2), body)))[
                "source.privileges"
            ]
        assert item.status is Status.PASS, item.detail  # all granted directly
        only_role = [*grants[:1], f"GRANT SELECT ON `{src}`.* TO {{u}}", *grants[2:]]
        with _user(oceanbase, "pc_obsrc", only_role) as source:
            item = _by_name(task_prechecks(_spec("pc-ob-role", source, _url(mariadb2), body)))[
                "source.privileges"
            ]
    finally:
        run_sql(oceanbase, [f"DROP ROLE IF EXISTS {role}"])
    assert item.status is Status.WARN
    assert f"is not granted TRIGGER on {src}.t directly" in item.detail
    assert "roles whose privileges cannot be listed" in item.detail
    # root has everything
    root = _by_name(task_prechecks(_spec("pc-ob-src", _url(oceanbase), _url(mariadb2), body)))
    assert root["source.privileges"].status is Status.PASS
    assert "TRIGGER" in root["source.privileges"].detail


def test_keyless_table_warns(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, ["CREATE TABLE k (id INT PRIMARY KEY)", "CREATE TABLE loose (v INT)"], src)
    spec = _spec(
        "pc-keyless",
        _url(mariadb1),
        _url(mariadb2),
        {"select": {"databases": [src]}, "rename": {"databases": {src: dst}}},
    )
    item = _by_name(task_prechecks(spec))["source.keyless_tables"]
    assert item.status is Status.WARN
    assert f"on {mariadb1.display}: {src}.loose: no primary key" in item.detail
    assert f"{src}.k" not in item.detail


def test_invalid_filter_fails(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        ["CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY)"],
        src,
    )
    body: dict[str, Any] = {
        "select": {"databases": [src]},
        "rename": {"databases": {src: dst}},
        "filters": {f"{src}.t": "no_such_column > 1", f"{src}.u": "id > 1"},
    }
    item = _by_name(task_prechecks(_spec("pc-filter", _url(mariadb1), _url(mariadb2), body)))[
        "filters"
    ]
    assert item.status is Status.FAIL
    assert item.detail.startswith(f"{src}.t: row filter is not valid on the source")
    assert "no_such_column" in item.detail and mariadb1.display in item.detail
    body["filters"] = {f"{src}.u": "id > 1"}
    item = _by_name(task_prechecks(_spec("pc-filter", _url(mariadb1), _url(mariadb2), body)))[
        "filters"
    ]
    assert item.status is Status.PASS
    assert f"row filters of {src}.u are valid" in item.detail
    # incremental sync evaluates the filter on events, in a scratch table: tried
    body["types"] = ["schema", "full", "incremental"]
    item = _by_name(task_prechecks(_spec("pc-filter", _url(mariadb1), _url(mariadb2), body)))[
        "filters"
    ]
    assert item.status is Status.PASS, item.detail
    assert "on change events too" in item.detail


def test_binlog_retention_against_the_estimated_copy(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(
        mariadb1,
        [
            "CREATE TABLE t (id INT PRIMARY KEY)",
            "INSERT INTO t SELECT seq FROM seq_1_to_100000",
            "ANALYZE TABLE t",
        ],
        src,
    )
    (rows,) = query(
        mariadb1,
        "SELECT TABLE_ROWS FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 't'",
        (src,),
    )[0]
    # 1 row/s: the estimate is TABLE_ROWS seconds (about 28 hours), so the retention
    # values set below are hours long and purge nothing another test still needs.
    spec = _spec(
        "pc-retention",
        _url(mariadb1),
        _url(mariadb2),
        {
            "types": ["full", "incremental"],
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
            "options": {"rate_rows_per_second": 1},
        },
    )
    (saved,) = query(mariadb1, "SELECT @@GLOBAL.binlog_expire_logs_seconds")[0]
    seen: dict[int, CheckResult] = {}
    try:
        for keep in (int(rows) // 2, int(rows) * 3 // 2, int(rows) * 3):
            run_sql(mariadb1, f"SET GLOBAL binlog_expire_logs_seconds = {keep}")
            seen[keep] = _by_name(task_prechecks(spec))["source.binlog_retention"]
    finally:
        run_sql(mariadb1, f"SET GLOBAL binlog_expire_logs_seconds = {int(saved)}")
    short, close, enough = (seen[k] for k in sorted(seen))
    assert short.status is Status.FAIL and "shorter than the estimate" in short.detail
    assert close.status is Status.WARN and "less than twice the estimate" in close.detail
    assert enough.status is Status.PASS
    for keep, item in seen.items():
        assert f"{int(rows):,} rows" in item.detail and "1 rows/s" in item.detail
        assert f"(binlog_expire_logs_seconds = {keep})" in item.detail
    assert "SET GLOBAL binlog_expire_logs_seconds =" in short.detail


def test_unreachable_source_fails_connectivity_without_raising(
    mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    dst = fresh_database(mariadb2, "dst")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    spec = _spec(
        "pc-down",
        f"mariadb://someone:{SECRET}@127.0.0.1:{port}?connect_timeout=3",
        _url(mariadb2),
        {"select": {"databases": ["shop"]}, "rename": {"databases": {"shop": dst}}},
    )
    results = task_prechecks(spec)
    got = _by_name(results)
    down = got["source.connectivity"]
    assert down.status is Status.FAIL
    assert f"mariadb://someone@127.0.0.1:{port}: cannot connect" in down.detail
    assert "server running" in down.detail
    assert got["target.connectivity"].status is Status.PASS
    assert got["target.version"].status is Status.PASS
    for name in ("source.version", "source.privileges", "target.privileges", "time_zone"):
        assert got[name].status is Status.FAIL
        assert got[name].detail.startswith("not checked: cannot connect to the source")
    assert all(SECRET not in r.detail for r in results)


# -- SHOW GRANTS parsing: forms the sandbox servers do not print ---------------------------


def test_grants_of_every_level_and_form() -> None:
    g = Grants()
    for line in [
        "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*D8F8AF5933E89E1E65767C'",
        "GRANT INSERT, SELECT ON `shop`.* TO 'u'",  # OceanBase quotes the grantee so
        r"GRANT CREATE ON `sales\_%`.* TO `u`@`%`",  # a LIKE pattern, '_' escaped
        "GRANT SELECT (`id`, `name`), UPDATE ON `crm`.`people` TO `u`@`%`",
        "GRANT ALL PRIVILEGES ON `oms`.* TO `u`@`%`",
        "GRANT REPLICATION REPLICA ON *.* TO `u`@`%`",
        "GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `u`@`%`",
    ]:
        g.add(line)
    assert g.has("INSERT", "shop", "orders") and not g.has("DELETE", "shop", "orders")
    assert g.has("CREATE", "sales_eu") and not g.has("CREATE", "salesXeu")
    assert g.has("UPDATE", "crm", "people") and not g.has("SELECT", "crm", "people")
    assert g.has("DROP", "oms") and g.has("TRIGGER", "oms", "x") and not g.has("DROP", "shop")
    assert g.has("REPLICATION SLAVE") and not g.has("SUPER")
    assert not g.has("EXECUTE", "shop", "p")  # a procedure is not a table
    assert not g.unresolved_roles


def test_partial_revokes_roles_and_case_folding() -> None:
    g = Grants(fold_case=True, literal_databases=True)
    for line in [
        "GRANT SELECT, INSERT ON *.* TO `u`@`%`",
        "REVOKE INSERT ON `mysql`.* FROM `u`@`%`",
        "GRANT DELETE ON `My_Db`.* TO `u`@`%`",
        "GRANT `reader`@`%`,`writer`@`%` TO `u`@`%`",
    ]:
        g.add(line)
    assert g.has("INSERT", "shop", "t") and not g.has("INSERT", "mysql", "t")
    assert g.has("SELECT", "mysql", "t")
    assert g.has("DELETE", "my_db", "t") and not g.has("DELETE", "myXdb", "t")  # literal '_'
    assert g.unresolved_roles


def test_binlog_settings_incremental_cannot_use_fail_naming_them(
    mariadb1: Endpoint, mariadb2: Endpoint, fresh_database: Callable[..., str]
) -> None:
    src, dst = fresh_database(mariadb1, "src"), fresh_database(mariadb2, "dst")
    run_sql(mariadb1, "CREATE TABLE t (id INT PRIMARY KEY)", src)
    spec = _spec(
        "pc-binlog",
        _url(mariadb1),
        _url(mariadb2),
        {
            "types": ["incremental"],
            "select": {"databases": [src]},
            "rename": {"databases": {src: dst}},
        },
    )
    (saved,) = query(mariadb1, "SELECT @@GLOBAL.binlog_row_metadata")[0]
    try:
        # dynamic, and restored at once: the server is shared by the whole session
        run_sql(mariadb1, "SET GLOBAL binlog_row_metadata = 'MINIMAL'")
        got = _by_name(task_prechecks(spec))
    finally:
        run_sql(mariadb1, f"SET GLOBAL binlog_row_metadata = '{saved}'")
    item = got["source.binlog"]
    assert item.status is Status.FAIL
    assert f"the binlog of {mariadb1.display} cannot feed incremental sync" in item.detail
    assert "binlog_row_metadata is MINIMAL: set it to FULL" in item.detail
    assert "binlog_format" not in item.detail.split(". Set")[0]  # only what is wrong
    assert "source.binlog_retention" not in got  # no full migration to outlive
    assert "target.non_empty_tables" not in got
