"""Pure decisions: versions, strategies, comparison, retention plans (no I/O, airflow or TF)."""
