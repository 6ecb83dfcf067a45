"""Running tasks: the task service, runner and supervisor, states, healing, live figures."""
