"""Pure decisions: versions, strategies, comparison and retention plans (no I/O, no airflow, no tensorflow)."""
