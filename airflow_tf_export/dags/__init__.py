"""DAG templates: factory functions for retraining and backfill pipelines."""
