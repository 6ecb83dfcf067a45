"""Unit tests for duosync.spec_import and ``select.import``: the object list's
format, its errors (each naming the list and the line), how specfile merges it into
the spec, and that a stored spec no longer depends on the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from duosync.errors import ConfigError
from duosync.service.store.specs import stored_spec
from duosync.spec import TaskSpec
from duosync.spec_import import ImportedObject, parse_objects, read_objects
from duosync.specfile import load_spec, parse_spec

HEADER = """\
name: imported
source: mariadb://alice@src.example.com:3306
target: oceanbase://root@dst.example.com:2881
"""


def data(**select: Any) -> dict[str, Any]:
    return {
        "name": "imported",
        "source": "mariadb://alice@src.example.com:3306",
        "target": "oceanbase://root@dst.example.com:2881",
        "select": select,
    }


def problem(text: str, name: str = "objects.txt") -> str:
    with pytest.raises(ConfigError) as info:
        parse_objects(text, name)
    return str(info.value)


def write_spec(directory: Path, body: str, objects: str | None = None) -> Path:
    """A spec file in *directory* (its select block is *body*), with objects.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    if objects is not None:
        (directory / "objects.txt").write_text(objects, encoding="utf-8")
    path = directory / "task.yaml"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    return str(info.value)


# -- the format ----------------------------------------------------------------------------


def test_lines_give_objects_and_their_targets_in_order() -> None:
    text = (
        "# objects of the shop\n"
        "\n"
        "shop.orders\n"
        "  shop.customers\tcrm.clients   # renamed on the target\n"
        "shop.items items_v2\n"
        "   \n"
        "crm.leads#no space before the comment\n"
    )
    assert parse_objects(text, "objects.txt") == (
        ImportedObject(line=3, source="shop.orders"),
        ImportedObject(line=4, source="shop.customers", target="crm.clients"),
        ImportedObject(line=5, source="shop.items", target="items_v2"),
        ImportedObject(line=7, source="crm.leads"),
    )


def test_an_imported_object_is_a_frozen_value() -> None:
    obj = parse_objects("shop.orders", "x")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.source = "shop.other"  # type: ignore[misc]


def test_windows_line_ends_and_a_bom_are_read(tmp_path: Path) -> None:
    path = tmp_path / "objects.txt"
    path.write_bytes(b"\xef\xbb\xbfshop.orders\r\nshop.items crm.items\r\n")
    assert read_objects(path, "objects.txt") == (
        ImportedObject(line=1, source="shop.orders"),
        ImportedObject(line=2, source="shop.items", target="crm.items"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shop.a\n\nshop\n", "objects.txt:3: 'shop' is not db.table"),
        ("a.b.c", "objects.txt:1: object 'a.b.c' must be 'db.name'; a name containing a dot"),
        ("shop.", "objects.txt:1: the name part of object is empty"),
        ("shop.a\nshop.b x.y z\n", "objects.txt:2: 3 fields where at most 2 are expected"),
        ("shop.order_*", "objects.txt:1: object 'shop.order_*' names one object"),
        ("# system\nmysql.user", "objects.txt:2: database 'mysql' is a system database"),
        ("shop.a x.y.z", "objects.txt:1: rename target 'x.y.z' must be 'db.name'"),
        ("shop.a sys.a", "objects.txt:1: target database 'sys' is a system database"),
        ("shop.a .b", "objects.txt:1: the database part of rename target is empty"),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong(text: str, expected: str) -> None:
    assert problem(text).startswith(expected), problem(text)


def test_an_object_listed_twice_names_both_lines() -> None:
    msg = problem("shop.a\nshop.b\n# again\nshop.a crm.a\n")
    assert msg.startswith("objects.txt:4: shop.a is listed twice (lines 1 and 4)"), msg
    # names are case-sensitive, as in select.objects: these are two tables
    assert len(parse_objects("shop.A\nshop.a", "x")) == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only\n   # comments\n"])
def test_an_empty_list_selects_nothing_and_says_so(text: str) -> None:
    msg = problem(text)
    assert msg.startswith("objects.txt: lists no objects"), msg
    assert "selects nothing" in msg


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(ConfigError, match=f"cannot read {missing}: no such file"):
        read_objects(missing)
    with pytest.raises(ConfigError, match=f"cannot read {tmp_path}: is a directory"):
        read_objects(tmp_path)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"shop.\xff\xfe")
    with pytest.raises(ConfigError, match=f"cannot read {binary}: is not UTF-8 text"):
        read_objects(binary)
    # messages about lines use the path unless given a name
    bad = tmp_path / "bad.txt"
    bad.write_text("shop\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^{bad}:1: 'shop' is not db.table"):
        read_objects(bad)


# -- select.import in a spec ---------------------------------------------------------------


def test_import_is_merged_into_objects_and_renames(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        "select:\n  import: objects.txt\n  databases: [billing]\n  objects: [crm.leads]\n"
        "rename:\n  tables: {crm.leads: prospects}\n",
        "shop.orders\nshop.customers crm.clients\ncrm.leads  # also in select.objects\n",
    )
    spec = load_spec(path)
    assert spec.select.databases == ("billing",)
    assert spec.select.objects == ("crm.leads", "shop.orders", "shop.customers")
    assert spec.select.import_file is None
    assert spec.rename.tables == {"crm.leads": "prospects", "shop.customers": "crm.clients"}
    assert spec.select.matches("shop", "orders") and not spec.select.matches("shop", "x")
    assert spec.rename.table("shop", "customers") == ("crm", "clients")
    assert spec.rename.table("shop", "orders") == ("shop", "orders")


def test_import_alone_selects_and_keeps_the_database_rename(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        "select: {import: objects.txt}\nrename: {databases: {shop: shop_v2}}\n",
        "shop.orders\nshop.items items_v2\n",
    )
    spec = load_spec(path)
    assert spec.select.objects == ("shop.orders", "shop.items")
    assert spec.rename.table("shop", "items") == ("shop_v2", "items_v2")
    assert spec.rename.table("shop", "orders") == ("shop_v2", "orders")


def test_import_is_relative_to_the_spec_file_s_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = tmp_path / "specs"
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "shop.txt").write_text("shop.orders\n", encoding="utf-8")
    path = write_spec(specs, "select: {import: ../lists/shop.txt}\n")
    monkeypatch.chdir(tmp_path / "lists")  # not where the spec is
    assert load_spec(Path("../specs/task.yaml")).select.objects == ("shop.orders",)
    # a name that exists only in the current directory is not found
    (tmp_path / "lists" / "here.txt").write_text("shop.here\n", encoding="utf-8")
    path.write_text(HEADER + "select: {import: here.txt}\n", encoding="utf-8")
    msg = load_error(path)
    assert msg == (f"{path}: select.import: cannot read {specs / 'here.txt'}: no such file"), msg


def test_an_absolute_import_path_is_used_as_is(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "objects.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text("shop.orders\n", encoding="utf-8")
    path = write_spec(tmp_path / "specs", f"select: {{import: '{elsewhere}'}}\n")
    assert load_spec(path).select.objects == ("shop.orders",)


def test_parse_spec_resolves_import_from_its_base_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "objects.txt").write_text("shop.orders\n", encoding="utf-8")
    given = data(**{"import": "objects.txt"})
    assert parse_spec(given, "x", tmp_path).select.objects == ("shop.orders",)
    assert given["select"] == {"import": "objects.txt"}  # the caller's data is not changed
    monkeypatch.chdir(tmp_path)  # default: the current directory
    assert parse_spec(given, "x").select.objects == ("shop.orders",)


def test_errors_name_the_spec_the_field_the_file_and_the_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "select: {import: objects.txt}\n", "shop.a\n\n# a comment\nshop\n")
    assert load_error(path) == f"{path}: select.import: objects.txt:4: 'shop' is not db.table" + (
        " (write db.table, or db.table target_db.target_table to rename it)"
    )


def test_a_rename_conflicting_with_rename_tables_is_refused(tmp_path: Path) -> None:
    body = "select: {import: objects.txt}\nrename: {tables: {shop.b: crm.b}}\n"
    path = write_spec(tmp_path, body, "shop.a\nshop.b crm.other\n")
    msg = load_error(path)
    assert msg.startswith(
        f"{path}: select.import: objects.txt:2: shop.b is renamed to 'crm.other' here but to"
        " 'crm.b' by rename.tables"
    ), msg
    # the same target twice is no conflict; no target in the file keeps rename.tables'
    (tmp_path / "objects.txt").write_text("shop.a\nshop.b crm.b\n", encoding="utf-8")
    assert load_spec(path).rename.tables == {"shop.b": "crm.b"}
    (tmp_path / "objects.txt").write_text("shop.b\n", encoding="utf-8")
    assert load_spec(path).rename.tables == {"shop.b": "crm.b"}


def test_the_merged_spec_is_still_validated_as_a_whole(tmp_path: Path) -> None:
    # two objects renamed onto one target: the spec's own collision check sees them
    path = write_spec(tmp_path, "select: {import: objects.txt}\n", "a.x c.t\nb.y c.t\n")
    assert "c.t" in load_error(path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("''", "select.import: give the path of a text file"),
        ("[a.txt]", "select.import: give the path of a text file"),
        ("missing.txt", "select.import: cannot read "),
        ("empty.txt", "select.import: empty.txt: lists no objects"),
    ],
)
def test_a_bad_import_value_or_file_is_named(tmp_path: Path, value: str, expected: str) -> None:
    (tmp_path / "empty.txt").write_text("# nothing yet\n", encoding="utf-8")
    path = write_spec(tmp_path, f"select: {{import: {value}}}\n")
    msg = load_error(path)
    assert msg.startswith(f"{path}: {expected}"), msg


def test_a_misspelt_import_is_caught_and_the_model_does_not_read_files() -> None:
    with pytest.raises(ConfigError, match=r"select\.imports: unknown field \(did you mean import"):
        parse_spec(data(imports="objects.txt"), "x")
    with pytest.raises(ConfigError, match=r"select\.import_file: unknown field"):
        parse_spec(data(import_file="objects.txt"), "x")
    with pytest.raises(ValueError, match="read when the spec is loaded"):
        TaskSpec.model_validate(data(**{"import": "objects.txt"}))


def test_import_is_refused_without_a_base_directory(tmp_path: Path) -> None:
    (tmp_path / "objects.txt").write_text("shop.orders\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_spec(data(**{"import": str(tmp_path / "objects.txt")}), "request body", None)
    assert str(info.value).startswith(
        "request body: select.import: not accepted here: it would read a file on the server"
    )


def test_objects_text_is_merged_like_a_file() -> None:
    given = data(databases=["billing"])
    spec = parse_spec(given, "request body", None, objects_text="shop.a\nshop.b crm.b\n")
    assert spec.select.objects == ("shop.a", "shop.b")
    assert spec.rename.tables == {"shop.b": "crm.b"}
    del given["select"]  # objects_text alone selects
    assert parse_spec(given, "r", None, objects_text="shop.a").select.objects == ("shop.a",)
    with pytest.raises(ConfigError) as info:
        parse_spec(given, "request body", None, objects_text="shop.a\nshop.a\n")
    assert str(info.value).startswith(
        "request body: objects_text:2: shop.a is listed twice (lines 1 and 2)"
    )


# -- the stored spec -----------------------------------------------------------------------


def test_a_stored_spec_reloads_without_the_file(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        "select: {import: objects.txt, databases: [billing]}\n",
        "shop.orders\nshop.customers crm.clients\n",
    )
    spec = load_spec(path)
    stored = stored_spec(spec)
    assert "import" not in stored["select"] and "import_file" not in stored["select"]
    assert stored["select"]["objects"] == ["shop.orders", "shop.customers"]
    assert stored["rename"]["tables"] == {"shop.customers": "crm.clients"}
    (tmp_path / "objects.txt").unlink()  # the stored spec must not need it
    assert TaskSpec.model_validate(stored) == spec  # as the runner reloads it
    assert parse_spec(stored, "stored spec", None) == spec  # as the service re-parses it
    assert stored_spec(parse_spec(stored, "stored spec")) == stored
