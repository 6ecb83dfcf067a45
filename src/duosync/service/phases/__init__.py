"""A task's phases: schema and full migration, positions, two-way pairs, cutover."""
