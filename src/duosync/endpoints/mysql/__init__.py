"""MySQL and MariaDB endpoint."""
