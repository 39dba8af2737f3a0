"""The `airflow-tf-export` command: exporter dirs outside Airflow (list, dry-run retention,
verify, export). It calls the same core, storage and savedmodel functions as the operators
and imports no Airflow class."""
