"""Schema translation between MySQL-family dialects."""
