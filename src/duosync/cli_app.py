"""The ``duosync`` command group, its context and the options several command
modules share. The commands live in ``cli`` (the entry point), ``cli_tasks`` and
``cli_nodes``, which all import this module and none of which imports another."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from duosync import __version__

if TYPE_CHECKING:
    from duosync.service.store.metadata import StoreLocation

DEFAULT_HOME = "~/.duosync"
_F = TypeVar("_F", bound=Callable[..., Any])


class Context:
    def __init__(self, home: Path, store: str | None = None) -> None:
        self.home = home.expanduser()
        #: --store: a server database shared by cluster nodes (None: HOME's file)
        self.store_url = store

    @property
    def store(self) -> StoreLocation:
        """Where the metadata store is: ``--store``, else HOME/duosync.db."""
        from duosync.service.store.metadata import DB_FILE, parse_store

        return parse_store(self.store_url) if self.store_url else self.home / DB_FILE


def _home_default() -> str:
    return os.environ.get("DUOSYNC_HOME", DEFAULT_HOME)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="duosync")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=_home_default,
    show_default="$DUOSYNC_HOME or ~/.duosync",
    help="Where duosync keeps its metadata store and the default sandbox.",
)
@click.option(
    "--store",
    default=lambda: os.environ.get("DUOSYNC_STORE") or None,
    metavar="URL",
    show_default="$DUOSYNC_STORE or HOME/duosync.db",
    help="The metadata store: a MariaDB/MySQL or PostgreSQL database"
    " (mariadb://USER[:PASSWORD]@HOST:PORT/DB, postgresql://...), which the nodes of a"
    " cluster share; default: the SQLite file in HOME.",
)
@click.pass_context
def cli(ctx: click.Context, home: Path, store: str | None) -> None:
    """Data migration and two-way synchronization for MySQL-family databases."""
    ctx.obj = Context(home, store)


def spec_option(help: str) -> Callable[[_F], _F]:
    """The ``-f/--file`` task spec option, with its own help line."""
    return click.option(
        "-f",
        "--file",
        "spec_file",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


skip_option = click.option(
    "--skip-check",
    "skip",
    multiple=True,
    metavar="ITEM",
    help="Skip this failed pre-check item (recorded with the task); repeatable.",
)
