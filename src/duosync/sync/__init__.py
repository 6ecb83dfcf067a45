"""Incremental sync: batching, merging, parallel apply, checkpoints."""
