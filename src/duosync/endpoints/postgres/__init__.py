"""PostgreSQL 15 as a target: type mapping, dialect and DDL (issue 19, under way)."""
