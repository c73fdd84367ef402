"""Facts about this machine, read once at the edge (no decisions): which container engines it
has and whether they answer, and how its Docker daemon is managed."""
