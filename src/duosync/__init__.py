"""duosync: data migration and two-way synchronization for MySQL-family databases."""

__version__ = "0.1.0"
