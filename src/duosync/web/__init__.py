"""The web console: static files served by ``duosync serve`` under /console/."""
