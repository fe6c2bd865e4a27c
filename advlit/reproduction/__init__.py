"""Every table of the paper: the runs of a table, their plan, finished-run checks, the report."""
