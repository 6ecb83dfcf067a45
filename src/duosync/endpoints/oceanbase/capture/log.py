"""The change log's tables in the source's ``oms`` database, and who reads them.

- ``duosync_changelog``: one row per row change, written by our triggers inside the
  writer's transaction. ``tx`` is ``ob_transaction_id()``; ``seq`` (auto-increment)
  orders rows within a transaction. The commit version is the row's ``ORA_ROWSCN``,
  known only once the transaction commits, which is why readers order by it rather
  than by ``seq``: a transaction may allocate low ``seq`` values and commit after
  others that allocated higher ones. Rows with op ``S`` are schema markers, written
  by capture itself when a table's columns change (``capture.schema_watch``).
- ``duosync_capture_version``: the columns a table had when its triggers were made
  (``ver``); change-log rows name their version, so rows written before a DDL decode
  with the columns they were written with.
- ``duosync_capture_consumer``: each task reading the log, the tables it captures,
  and how far it has durably applied (``scn``, ``tx``); rows every consumer is past
  are purged.

Users must not write to these tables; dropping them stops capture.
"""

from __future__ import annotations

from typing import Any

from duosync.core.catalog import OMS_DATABASE
from duosync.endpoints.mysql.dialect import qualified, quote_ident

CHANGELOG = qualified(OMS_DATABASE, "duosync_changelog")
VERSIONS = qualified(OMS_DATABASE, "duosync_capture_version")
CONSUMERS = qualified(OMS_DATABASE, "duosync_capture_consumer")

_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {quote_ident(OMS_DATABASE)}",
    f"CREATE TABLE IF NOT EXISTS {CHANGELOG} ("
    " seq BIGINT NOT NULL AUTO_INCREMENT,"
    " tx BIGINT NOT NULL,"
    " db VARCHAR(128) NOT NULL,"
    " tbl VARCHAR(128) NOT NULL,"
    " ver INT NOT NULL,"
    " op CHAR(1) NOT NULL,"
    " before_img LONGTEXT NULL,"
    " after_img LONGTEXT NULL,"
    " PRIMARY KEY (seq))",
    f"CREATE TABLE IF NOT EXISTS {VERSIONS} ("
    " db VARCHAR(128) NOT NULL,"
    " tbl VARCHAR(128) NOT NULL,"
    " ver INT NOT NULL,"
    " signature VARCHAR(64) NOT NULL,"
    " columns LONGTEXT NOT NULL,"
    " created_at DOUBLE NOT NULL,"
    " PRIMARY KEY (db, tbl, ver))",
    f"CREATE TABLE IF NOT EXISTS {CONSUMERS} ("
    " consumer VARCHAR(64) NOT NULL,"
    " tables LONGTEXT NOT NULL,"
    " scn BIGINT NOT NULL,"
    " tx BIGINT NOT NULL,"
    " updated_at DOUBLE NOT NULL,"
    " PRIMARY KEY (consumer))",
)


def create_tables(cur: Any) -> None:
    """Create the ``oms`` database and the log's tables if missing (idempotent)."""
    for sql in _DDL:
        cur.execute(sql)


def tables_exist(cur: Any) -> bool:
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME IN ('duosync_changelog', 'duosync_capture_version',"
        " 'duosync_capture_consumer')",
        (OMS_DATABASE,),
    )
    return int(cur.fetchone()[0]) == 3


def drop_tables(cur: Any) -> None:
    """Remove the log entirely (when its last consumer goes)."""
    for table in (CHANGELOG, VERSIONS, CONSUMERS):
        cur.execute(f"DROP TABLE IF EXISTS {table}")


def purge(cur: Any, done: int | None = None) -> int | None:
    """Delete the log rows every consumer is past; return the floor used (None with
    no consumer). Skipped when the floor is still *done* (the last one purged)."""
    cur.execute(f"SELECT MIN(scn) FROM {CONSUMERS}")
    found = cur.fetchone()[0]
    if found is None:
        return None
    floor = int(found)
    if floor != done:
        # Strictly below: rows of the floor's own commit version may be unconsumed.
        # In slices, so that no delete becomes a huge transaction.
        while cur.execute(f"DELETE FROM {CHANGELOG} WHERE ORA_ROWSCN < %s LIMIT 10000", (floor,)):
            pass
    return floor
