"""Unit tests for parse_table_options (OceanBase SHOW CREATE TABLE table clauses)."""

from __future__ import annotations

from duosync.endpoints.oceanbase.inspector import parse_table_options

# Verbatim SHOW CREATE TABLE output of OceanBase 4.3.5.
CREATE_TABLE = (
    "CREATE TABLE `a` (\n"
    "  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,\n"
    "  `b` varchar(10) DEFAULT 'x',\n"
    "  `c` decimal(65,30) DEFAULT NULL,\n"
    "  `g` int(11) GENERATED ALWAYS AS ((`n` + 1)) STORED,\n"
    "  PRIMARY KEY (`id`),\n"
    "  UNIQUE KEY `uc` (`c`) BLOCK_SIZE 16384 LOCAL,\n"
    "  KEY `kb` (`b`) BLOCK_SIZE 16384 LOCAL\n"
    ") ORGANIZATION INDEX AUTO_INCREMENT = 1 DEFAULT CHARSET = utf8mb4 ROW_FORMAT = DYNAMIC"
    " COMPRESSION = 'zstd_1.3.8' BLOCK_SIZE = 16384 TABLET_SIZE = 134217728 PCTFREE = 0"
)

EXPECTED: tuple[tuple[str, str], ...] = (
    ("ORGANIZATION", "INDEX"),
    ("ROW_FORMAT", "DYNAMIC"),
    ("COMPRESSION", "'zstd_1.3.8'"),
    ("BLOCK_SIZE", "16384"),
    ("TABLET_SIZE", "134217728"),
    ("PCTFREE", "0"),
)

MODELLED = {"AUTO_INCREMENT", "DEFAULT CHARSET", "CHARSET", "COLLATE", "COMMENT", "ENGINE"}


def _keys(options: tuple[tuple[str, str], ...]) -> list[str]:
    return [k for k, _v in options]


def test_result_is_tuple_of_pairs() -> None:
    options = parse_table_options(CREATE_TABLE)
    assert isinstance(options, tuple)
    assert options
    for pair in options:
        assert isinstance(pair, tuple)
        assert len(pair) == 2
        assert all(isinstance(x, str) for x in pair)


def test_kept_options_verbatim() -> None:
    options = dict(parse_table_options(CREATE_TABLE))
    # quotes of a string value are kept
    assert options["COMPRESSION"] == "'zstd_1.3.8'"
    assert options["TABLET_SIZE"] == "134217728"
    assert options["PCTFREE"] == "0"


def test_column_list_clauses_are_not_options() -> None:
    # BLOCK_SIZE 16384 inside the index definitions must not leak into table options,
    # nor must column-level DEFAULT / AUTO_INCREMENT text
    options = parse_table_options(CREATE_TABLE)
    assert _keys(options).count("BLOCK_SIZE") == 1
    assert "LOCAL" not in " ".join(_keys(options))
    assert not any(v == "'x'" for _k, v in options)


def test_organization_index() -> None:
    assert ("ORGANIZATION", "INDEX") in parse_table_options(CREATE_TABLE)


def test_modelled_options_dropped() -> None:
    options = parse_table_options(CREATE_TABLE)
    for key, value in options:
        assert key not in MODELLED
        assert value.upper() not in MODELLED
        assert "AUTO_INCREMENT" not in value.upper()
        assert value != "utf8mb4"


def test_modelled_option_keys_dropped() -> None:
    keys = _keys(parse_table_options(CREATE_TABLE))
    assert not MODELLED & set(keys)


def test_full_expected_result() -> None:
    assert parse_table_options(CREATE_TABLE) == EXPECTED


def test_with_column_group() -> None:
    text = CREATE_TABLE + " WITH COLUMN GROUP(all columns, each column)"
    assert parse_table_options(text) == (
        *EXPECTED,
        ("COLUMN GROUP", "all columns, each column"),
    )


def test_partition_clause_kept() -> None:
    text = (
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n)"
        " ORGANIZATION INDEX DEFAULT CHARSET = utf8mb4 PCTFREE = 0"
        "\n partition by hash(id)\n(partition `p0`,\npartition `p1`)"
    )
    options = parse_table_options(text)
    assert options[:2] == (("ORGANIZATION", "INDEX"), ("PCTFREE", "0"))
    assert options[2][0] == "PARTITION BY"
    assert options[2][1].startswith("hash(id)")
    assert "`p1`" in options[2][1]
    assert len(options) == 3


def test_character_set_spellings_dropped() -> None:
    text = CREATE_TABLE.replace(
        "DEFAULT CHARSET = utf8mb4",
        "DEFAULT CHARACTER SET = utf8mb4 DEFAULT COLLATE = utf8mb4_bin",
    )
    assert parse_table_options(text) == EXPECTED


def test_collate_and_comment_dropped() -> None:
    text = CREATE_TABLE.replace(
        "DEFAULT CHARSET = utf8mb4",
        "DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin COMMENT = 'it''s a table'",
    )
    options = parse_table_options(text)
    keys = _keys(options)
    assert "COLLATE" not in keys
    assert "COMMENT" not in keys
    assert not any("utf8mb4_bin" in v or "table" in v for _k, v in options)
    assert options == EXPECTED


def test_without_organization_clause() -> None:
    # the same table without the ORGANIZATION clause parses exactly
    text = CREATE_TABLE.replace("ORGANIZATION INDEX ", "")
    assert parse_table_options(text) == EXPECTED[1:]


def test_no_options() -> None:
    assert parse_table_options("CREATE TABLE `t` (\n  `id` int(11) NOT NULL\n)") == ()


# Parentheses inside quoted strings (comments, defaults) must not end the column list.
def test_unbalanced_paren_in_column_comment() -> None:
    text = (
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL COMMENT 'step 1) load',\n"
        "  PRIMARY KEY (`id`)\n) ORGANIZATION INDEX PCTFREE = 0"
    )
    assert parse_table_options(text) == (("ORGANIZATION", "INDEX"), ("PCTFREE", "0"))


def test_open_paren_in_column_comment_with_column_group() -> None:
    text = (
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL COMMENT 'a (b',\n"
        "  PRIMARY KEY (`id`)\n) ORGANIZATION INDEX PCTFREE = 0 WITH COLUMN GROUP(each column)"
    )
    assert parse_table_options(text) == (
        ("ORGANIZATION", "INDEX"),
        ("PCTFREE", "0"),
        ("COLUMN GROUP", "each column"),
    )
