"""Pre-checks: the items a task runs before it starts, and their verdicts."""
