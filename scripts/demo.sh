#!/usr/bin/env bash
# The demo pipeline: an embedded SQLite Airflow DB and local storage, all under the repo.
# Run through `make demo`, which puts the project's .venv first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

export AIRFLOW_HOME="$PWD/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
mkdir -p "$AIRFLOW_HOME"
export TF_CPP_MIN_LOG_LEVEL=2

echo "== Airflow $(airflow version) with AIRFLOW_HOME=$AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/migrate.log"; exit 1; }

echo "== This provider, as Airflow sees it"
airflow providers list --output plain | grep -E "^(package_name|airflow-tf-export)"

echo "== The DAGs folder ($AIRFLOW__CORE__DAGS_FOLDER)"
airflow dags list-import-errors --output plain
airflow dags list --output plain --columns dag_id,fileloc
