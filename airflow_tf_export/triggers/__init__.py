"""Airflow triggers (run in the triggerer: async, never load tensorflow)."""
