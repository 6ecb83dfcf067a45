"""The objects to move, listed in a text file (``select.import``) or pasted in the
console: one ``db.table`` per line, optionally followed by its target
``target_db.target_table`` (a ``rename.tables`` entry).

Blank lines and ``#`` comments (whole line or trailing) are ignored. Names follow
the rules of ``select.objects`` and ``rename.tables`` (``duosync.spec_names``);
every problem is a ``ConfigError`` naming the list and the line,
``objects.txt:7: 'shop' is not db.table``. ``specfile.parse_spec`` merges the result
into the spec, so nothing downstream knows a file was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from duosync.errors import ConfigError
from duosync.spec_names import _check_object, _check_table_target
from duosync.spec_values import show_value

_FORMAT = "write db.table, or db.table target_db.target_table to rename it"


@dataclass(frozen=True)
class ImportedObject:
    """One line of an object list."""

    #: where it was written (1-based), for messages
    line: int
    #: the source table or view, ``db.table``
    source: str
    #: its target (``target_db.target_table`` or ``target_table``), as in
    #: ``rename.tables``; None: it keeps its name
    target: str | None = None


def parse_objects(text: str, name: str) -> tuple[ImportedObject, ...]:
    """The objects listed in *text*, in order; *name* (a file name) starts every
    message. An object listed twice, or a list naming nothing, is an error."""
    found: list[ImportedObject] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{name}:{number}"
        if len(fields) > 2:
            raise ConfigError(
                f"{where}: {len(fields)} fields where at most 2 are expected ({_FORMAT};"
                " names cannot contain spaces)"
            )
        source = fields[0]
        target = fields[1] if len(fields) == 2 else None
        if "." not in source:
            raise ConfigError(f"{where}: {show_value(source)} is not db.table ({_FORMAT})")
        try:
            _check_object(source)
            if target is not None:
                _check_table_target(target)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if (earlier := first_line.setdefault(source, number)) != number:
            raise ConfigError(
                f"{where}: {source} is listed twice (lines {earlier} and {number});"
                " list each object once"
            )
        found.append(ImportedObject(line=number, source=source, target=target))
    if not found:
        raise ConfigError(
            f"{name}: lists no objects (only blank lines and comments), so it selects"
            f" nothing ({_FORMAT}, one per line)"
        )
    return tuple(found)


def read_objects(path: Path, name: str | None = None) -> tuple[ImportedObject, ...]:
    """The objects listed in the file *path*; *name* (default: the path) starts the
    messages about its lines, the path itself those about reading it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read {path}: is a directory, not a text file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {path}: is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_objects(text, str(path) if name is None else name)
