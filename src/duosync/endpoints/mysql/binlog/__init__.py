"""Our own binlog change stream for MySQL and MariaDB (see ``stream.BinlogStream``)."""

from duosync.endpoints.mysql.binlog.stream import BinlogStream

__all__ = ["BinlogStream"]
