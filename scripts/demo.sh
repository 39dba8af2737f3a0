#!/usr/bin/env bash
# The demo pipeline: an embedded SQLite Airflow DB and local storage, all under the repo.
# Run through `make demo`, which puts the project's .venv first on PATH. DEMO_ROOT (default:
# the repo) holds .airflow/ and .demo/; DEMO_RUNS (default 5) is the number of DAG runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_ROOT="${DEMO_ROOT:-$PWD}"

export AIRFLOW_HOME="$DEMO_ROOT/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
export AIRFLOW_TF_EXPORT_DEMO_DIR="$DEMO_ROOT/.demo"
# Fresh every time: a new SQLite DB and an empty model directory.
rm -rf "$AIRFLOW_HOME" "$AIRFLOW_TF_EXPORT_DEMO_DIR"
mkdir -p "$AIRFLOW_HOME"
export TF_CPP_MIN_LOG_LEVEL=2
# `airflow dags` commands warn on stdout that graphviz (only for rendering DAG graphs) is
# missing; the demo prints only its own output.
export PYTHONWARNINGS="ignore:Could not import graphviz"

echo "== Airflow $(airflow version) with AIRFLOW_HOME=$AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/migrate.log"; exit 1; }

echo "== This provider, as Airflow sees it"
airflow providers list --output plain | grep -E "^(package_name|airflow-tf-export)"

echo "== The DAGs folder ($AIRFLOW__CORE__DAGS_FOLDER)"
airflow dags reserialize > "$AIRFLOW_HOME/reserialize.log" 2>&1
import_errors=$(airflow dags list-import-errors --output json)
if [ "$import_errors" != "[]" ]; then
    echo "DAG import errors:"; echo "$import_errors"; exit 1
fi
airflow dags list --output plain --columns dag_id,fileloc

RUNS="${DEMO_RUNS:-5}"
echo "== Running example_retraining $RUNS times with 'airflow dags test' (logs in $AIRFLOW_HOME/demo-runs/)"
mkdir -p "$AIRFLOW_HOME/demo-runs"
for day in $(seq 1 "$RUNS"); do
    date="2024-01-0$day"
    log="$AIRFLOW_HOME/demo-runs/$date.log"
    if ! timeout 600 airflow dags test example_retraining "$date" > "$log" 2>&1; then
        tail -40 "$log"; echo "run $date failed; full log: $log"; exit 1
    fi
    echo "   run $date finished"
done

echo
echo "== Task states per run (skipped: the comparison or the strategy exported nothing)"
python - <<'PY'
from sqlalchemy import select

from airflow.models import DagRun, TaskInstance
from airflow.utils.session import create_session

with create_session() as session:
    runs = session.scalars(
        select(DagRun).where(DagRun.dag_id == "example_retraining").order_by(DagRun.logical_date)
    ).all()
    tasks = sorted({ti.task_id for run in runs for ti in run.get_task_instances(session=session)})
    print("  " + "  ".join(["run".ljust(10), *(t.ljust(len(t)) for t in tasks)]))
    for run in runs:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        cells = [states.get(t, "-").ljust(len(t)) for t in tasks]
        print("  " + "  ".join([run.logical_date.date().isoformat().ljust(10), *cells]))
PY

echo
echo "== What each exporter holds, and what the DAG's retention rules decide (airflow-tf-export versions)"
airflow-tf-export versions --model-dir "$AIRFLOW_TF_EXPORT_DEMO_DIR/model" \
    --keep "$(python -c 'import json, runpy; print(json.dumps(runpy.run_path("dags/example_retraining.py")["KEEP"]))')"
