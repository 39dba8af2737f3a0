"""docs/estimator-migration.md stays true without TensorFlow: its name-by-name tables cover
TensorFlow 2.15's whole `tf.estimator` and `tf.compat.v1.estimator` API and say rightly
which names `airflow_tf_export.estimator` has; its DAG builds without TensorFlow; its
TensorFlow 2.15 code uses only names of that API. (The examples that need TensorFlow run in
tests/integration/estimator/test_estimator_migration_doc.py.)"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "estimator-migration.md"

# The public names of TensorFlow 2.15.1's tf.estimator (tensorflow-estimator 2.15.0), below
# `tf.estimator.`: every non-module attribute, and those of its export and experimental
# submodules.
TF_ESTIMATOR_2_15 = [
    "BaselineClassifier",
    "BaselineEstimator",
    "BaselineRegressor",
    "BestExporter",
    "BinaryClassHead",
    "CheckpointSaverHook",
    "CheckpointSaverListener",
    "DNNClassifier",
    "DNNEstimator",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedEstimator",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "Estimator",
    "EstimatorSpec",
    "EvalSpec",
    "Exporter",
    "FeedFnHook",
    "FinalExporter",
    "FinalOpsHook",
    "GlobalStepWaiterHook",
    "Head",
    "LatestExporter",
    "LinearClassifier",
    "LinearEstimator",
    "LinearRegressor",
    "LoggingTensorHook",
    "LogisticRegressionHead",
    "ModeKeys",
    "MultiClassHead",
    "MultiHead",
    "MultiLabelHead",
    "NanLossDuringTrainingError",
    "NanTensorHook",
    "PoissonRegressionHead",
    "ProfilerHook",
    "RegressionHead",
    "RunConfig",
    "SecondOrStepTimer",
    "SessionRunArgs",
    "SessionRunContext",
    "SessionRunHook",
    "SessionRunValues",
    "StepCounterHook",
    "StopAtStepHook",
    "SummarySaverHook",
    "TrainSpec",
    "VocabInfo",
    "WarmStartSettings",
    "add_metrics",
    "classifier_parse_example_spec",
    "experimental.InMemoryEvaluatorHook",
    "experimental.LinearSDCA",
    "experimental.RNNClassifier",
    "experimental.RNNEstimator",
    "experimental.build_raw_supervised_input_receiver_fn",
    "experimental.call_logit_fn",
    "experimental.make_early_stopping_hook",
    "experimental.make_stop_at_checkpoint_step_hook",
    "experimental.stop_if_higher_hook",
    "experimental.stop_if_lower_hook",
    "experimental.stop_if_no_decrease_hook",
    "experimental.stop_if_no_increase_hook",
    "export.ClassificationOutput",
    "export.EvalOutput",
    "export.ExportOutput",
    "export.PredictOutput",
    "export.RegressionOutput",
    "export.ServingInputReceiver",
    "export.TensorServingInputReceiver",
    "export.build_parsing_serving_input_receiver_fn",
    "export.build_raw_serving_input_receiver_fn",
    "regressor_parse_example_spec",
    "train_and_evaluate",
]
# tf.compat.v1.estimator: the same names but the two RNN estimators, and these.
TF_COMPAT_V1_ESTIMATOR_ONLY_2_15 = [
    "experimental.KMeans",
    "experimental.dnn_logit_fn_builder",
    "experimental.linear_logit_fn_builder",
    "inputs.numpy_input_fn",
    "inputs.pandas_input_fn",
    "tpu.InputPipelineConfig",
    "tpu.RunConfig",
    "tpu.TPUConfig",
    "tpu.TPUEstimator",
    "tpu.TPUEstimatorSpec",
    "tpu.experimental.EmbeddingConfigSpec",
]


def table_rows(heading: str) -> list[tuple[list[str], str]]:
    """The rows of the table whose header's first cell is `heading`: the backticked names of
    the first cell, and the second cell."""
    text = DOC.read_text()
    start = text.index(f"| {heading} | here |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        first, second = line.strip("|").split(" | ", 1)
        rows.append((re.findall(r"`([^`]+)`", first), second))
    return rows


def here(row: str) -> str | None:
    """The `estimator.<path>` a row names as this package's counterpart, if any."""
    match = re.fullmatch(r"`estimator\.([\w.]+)` *", row.strip())
    return match.group(1) if match else None


def resolves(path: str) -> bool:
    """Whether `airflow_tf_export.estimator.<path>` exists."""
    value: object = importlib.import_module("airflow_tf_export.estimator")
    for part in path.split("."):
        if not hasattr(value, part):
            return False
        value = getattr(value, part)
    return True


def test_the_name_tables_cover_tensorflow_2_15_s_estimator_api_once() -> None:
    v2 = [name for names, _ in table_rows("`tf.estimator`") for name in names]
    v1 = [name for names, _ in table_rows("`tf.compat.v1.estimator`") for name in names]
    assert sorted(v2) == sorted(f"tf.estimator.{name}" for name in TF_ESTIMATOR_2_15)
    assert sorted(v1) == sorted(
        f"tf.compat.v1.estimator.{name}" for name in TF_COMPAT_V1_ESTIMATOR_ONLY_2_15
    )


@pytest.mark.parametrize("heading", ["`tf.estimator`", "`tf.compat.v1.estimator`"])
def test_the_tables_say_which_names_this_package_has(heading: str) -> None:
    for names, counterpart in table_rows(heading):
        leaves = [name.split(".estimator.", 1)[1] for name in names]
        target = here(counterpart)
        if target is None:
            assert not any(resolves(leaf) for leaf in leaves), (names, counterpart)
        else:
            assert leaves == [target], (names, counterpart)
            assert resolves(target), target


def test_the_tensorflow_2_15_code_uses_only_names_of_that_api() -> None:
    (before,) = [
        code
        for code in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
        if "train_and_evaluate" in code
    ]
    compile(before, "trainer/task.py", "exec")
    used = set(re.findall(r"tf\.estimator\.((?:export\.|experimental\.)?\w+)", before))
    assert used <= set(TF_ESTIMATOR_2_15), used - set(TF_ESTIMATOR_2_15)
    assert {"BestExporter", "LatestExporter", "train_and_evaluate"} <= used


def test_the_dag_builds_without_tensorflow() -> None:
    (dag_code,) = [
        code
        for code in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
        if code.startswith("# dags/")
    ]
    check = (
        f"{dag_code}\n"
        "import sys\n"
        "tasks = dag.task_dict\n"
        "print(sorted(tasks), tasks['export_latest'].modes, tasks['wait_for_eval'].mode)\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')])\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-2:] == [
        "['export_best', 'export_latest', 'wait_for_eval'] ('train', 'eval', 'serve') reschedule",
        "[]",
    ]
