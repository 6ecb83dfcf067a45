"""The metadata store: tasks, states, chunk plans and checkpoints, on SQLite or a server."""
