"""The HTML report of a run directory: what it holds, its tables and plots."""
