"""Several ``duosync serve`` nodes sharing tasks through ZooKeeper.

- ``model``: the cluster's address and what is kept in ZooKeeper (nodes,
  assignments with their epochs), as typed values.
- ``placement``: which node runs which task (stick, round_robin, random, labels,
  drains): pure logic.
- ``coordinator``: one node's ZooKeeper session: registration, leader election,
  the assignments, live figures, drains.
- ``leader``: what the elected node does: place tasks and record moves.
- ``runs``: what every node does: run the tasks assigned to it, give up the others.

A task's whole pipeline (read, transform, apply) runs on one node; the node that
runs it changes only when the leader assigns it elsewhere, and every assignment
carries an epoch (its ZooKeeper transaction id) that fences the commits of any
older assignment on the target (``sync.checkpoint``).
"""
