"""OceanBase (MySQL mode) endpoint: what differs from MySQL/MariaDB."""
