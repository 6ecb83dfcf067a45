"""The REST API, console and metrics of ``duosync serve``."""
