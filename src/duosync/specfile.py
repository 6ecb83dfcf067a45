"""Reading a task spec file: YAML to a validated ``TaskSpec``, and every problem to
one ``ConfigError`` that names the file and the field path and never quotes a
password (the models themselves are in ``duosync.spec``). A ``select.import`` file
is read here and merged into the spec (``duosync.spec_import``)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from duosync.config import Endpoint, redact_url
from duosync.errors import ConfigError
from duosync.spec import Options, Renames, ReverseOptions, Selection, TaskSpec, show_value
from duosync.spec_import import ImportedObject, parse_objects, read_objects

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- loading -------------------------------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: PyYAML would keep the
    last one silently, and a second ``filters:`` block dropping the first is the kind
    of mistake that copies rows nobody wanted."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # '<<: *defaults' keys may be overridden on purpose
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {show_value(key)} is given twice", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_spec(path: Path) -> TaskSpec:
    """Read and validate a YAML task spec; every problem is a ``ConfigError``."""
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{origin}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{origin}: is a directory, not a spec file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot be read ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # a SafeLoader: builds plain data only
    except yaml.MarkedYAMLError as exc:
        # Our own wording: str(exc) quotes the offending line, which may hold a URL
        # with a password.
        where = ""
        if exc.problem_mark is not None:
            where = f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}: "
        problem = redact_url(exc.problem or exc.context or "malformed")
        raise ConfigError(f"{origin}: {where}invalid YAML: {problem}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{origin}: invalid YAML") from None
    return parse_spec(data, origin, path.parent)


def parse_spec(
    data: object,
    origin: str = "<spec>",
    base_dir: Path | None = Path(),
    *,
    objects_text: str | None = None,
) -> TaskSpec:
    """Validate already-parsed spec data (a mapping); *origin* names it in errors.

    A relative ``select.import`` is read from *base_dir* (default: the current
    directory); with *base_dir* None, ``select.import`` is refused (data sent over
    the network must not read the server's files). *objects_text* holds lines in
    the same format, given directly (the console's object list), named
    ``objects_text`` in messages. Both are merged into ``select.objects`` and
    ``rename.tables`` before validation: the spec keeps no trace of them."""
    if data is None:
        raise ConfigError(f"{origin}: the spec is empty", hint="see examples/*.yaml")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(
            f"{origin}: expected a mapping of fields (name, source, target, select, ...)"
            f" at the top level, not {kind}"
        )
    data = _imported(data, origin, base_dir)
    if objects_text is not None:
        try:
            data = _merge_objects(data, parse_objects(objects_text, "objects_text"), "objects_text")
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc.message}", hint=exc.hint) from None
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_describe(exc)}") from None
    except ConfigError as exc:  # defensive: any endpoint error that escaped its field
        raise ConfigError(f"{origin}: {exc.message}", hint=exc.hint) from None


# -- select.import -------------------------------------------------------------------------


def _imported(data: dict[Any, Any], origin: str, base_dir: Path | None) -> dict[Any, Any]:
    """*data* with its ``select.import`` file read and merged (a new mapping)."""
    select = data.get("select")
    if not isinstance(select, dict) or "import" not in select:
        return data
    value = select["import"]
    where = f"{origin}: select.import"
    if base_dir is None:
        raise ConfigError(
            f"{where}: not accepted here: it would read a file on the server",
            hint="send the file's lines as objects_text",
        )
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}: give the path of a text file listing the objects, one db.table"
            " per line (relative to the spec file's directory)"
        )
    try:
        objects = read_objects(base_dir.joinpath(Path(value).expanduser()).absolute(), value)
        merged = _merge_objects(data, objects, value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
    merged_select = dict(merged["select"])
    del merged_select["import"]
    return {**merged, "select": merged_select}


def _merge_objects(
    data: dict[Any, Any], objects: Sequence[ImportedObject], name: str
) -> dict[Any, Any]:
    """*data* with *objects* added to ``select.objects`` (once each) and their
    targets to ``rename.tables``; a target that differs from the one
    ``rename.tables`` gives is an error. Fields of the wrong shape are left as they
    are, for validation to report."""
    out = dict(data)
    select = out.get("select", {})
    if isinstance(select, dict):
        select = dict(select)
        listed = select.get("objects", [])
        if isinstance(listed, list | tuple):
            extra = [o.source for o in objects if o.source not in listed]
            select["objects"] = [*listed, *extra]
        out["select"] = select
    renamed = [o for o in objects if o.target is not None]
    if not renamed:
        return out
    rename = out.get("rename", {})
    if not isinstance(rename, dict) or not isinstance(rename.get("tables", {}), dict):
        return out
    tables = dict(rename.get("tables", {}))
    for o in renamed:
        given = tables.setdefault(o.source, o.target)
        if given != o.target:
            raise ConfigError(
                f"{name}:{o.line}: {o.source} is renamed to {show_value(o.target)} here but to"
                f" {show_value(given)} by rename.tables; give its target once"
            )
    out["rename"] = {**rename, "tables": tables}
    return out


_MAX_SHOWN = 3


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_context=False)
    shown = [_describe_one(err) for err in errors[:_MAX_SHOWN]]
    if len(errors) > _MAX_SHOWN:
        shown.append(f"and {len(errors) - _MAX_SHOWN} more")
    return "; ".join(shown)


def _describe_one(err: ErrorDetails) -> str:
    loc = list(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc.pop()
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        msg = _unknown_field(tuple(loc[:-1]), str(loc[-1]))
    elif kind == "string_type" and not isinstance(err.get("input"), str):
        # The input itself is never shown; its type is enough to explain the usual
        # cause: YAML reads `no`, `on`, `null`, `2024`, `2024-01-01` as non-text.
        msg += " (YAML did not read this as text: quote it)"
    # a bad dict key is named as the key of its mapping, not as a path step
    path = (
        f"{_render_loc(loc[:-1])}: key {show_value(loc[-1])}"
        if is_key and loc
        else _render_loc(loc)
    )
    return f"{path}: {msg}" if path else msg


def _render_loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{show_value(part)}]"
    return out


def _unknown_field(parent: tuple[Any, ...], key: str) -> str:
    model = _MODELS_AT.get(parent)
    if model is None:
        return "unknown field"
    # a field with an alias (select.import) is written by its alias
    written = [field.alias or name for name, field in model.model_fields.items()]
    allowed = sorted(written) + (["url"] if model is Endpoint else [])
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown field (did you mean {close[0]}?)"
    return f"unknown field (allowed: {', '.join(allowed)})"


_MODELS_AT: dict[tuple[Any, ...], type[BaseModel]] = {
    (): TaskSpec,
    ("select",): Selection,
    ("rename",): Renames,
    ("options",): Options,
    ("reverse",): ReverseOptions,
    ("source",): Endpoint,
    ("target",): Endpoint,
}
