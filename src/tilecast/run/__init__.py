"""Jobs: plan, progress, the record of committed work, the run log."""
