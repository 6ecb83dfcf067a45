"""Full migration: chunking, parallel copy, rate limiting."""
