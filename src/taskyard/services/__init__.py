"""Everything that runs: the worker, the scheduler, maintenance, leadership and the manager."""
