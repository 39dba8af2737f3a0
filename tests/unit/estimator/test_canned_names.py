"""The canned estimators without TensorFlow: importing them, and the optimizer names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.estimator.canned.optimizers import (
    OPTIMIZER_NAMES,
    _scope_name,
    resolve_optimizer,
)
from airflow_tf_export.savedmodel.errors import DefinitionError


def test_importing_the_canned_estimators_does_not_import_tensorflow() -> None:
    script = (
        "import json, sys\n"
        "from airflow_tf_export import estimator\n"
        "names = [estimator.LinearClassifier, estimator.LinearRegressor,\n"
        "         estimator.DNNClassifier, estimator.DNNRegressor,\n"
        "         estimator.DNNLinearCombinedClassifier, estimator.DNNLinearCombinedRegressor]\n"
        "assert all(issubclass(n, estimator.Estimator) for n in names)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(("name", "kind"), sorted(OPTIMIZER_NAMES.items()))
def test_optimizer_names_make_the_legacy_class_with_the_estimator_s_learning_rate(
    name: str, kind: str
) -> None:
    spec = resolve_optimizer(name, argument="optimizer", default_learning_rate=0.2)
    assert (spec.kind, spec.name) == (kind, kind)
    assert spec.hyperparameters["learning_rate"] == 0.2
    assert spec.hyperparameters["decay"] == 0.0
    default = resolve_optimizer(name, argument="optimizer", default_learning_rate=None)
    assert default.hyperparameters["learning_rate"] == (0.01 if kind == "SGD" else 0.001)


@given(st.text(min_size=1, max_size=12))
def test_any_other_name_is_a_definition_error_naming_the_argument(name: str) -> None:
    if name in OPTIMIZER_NAMES:
        return
    with pytest.raises(DefinitionError, match="dnn_optimizer="):
        resolve_optimizer(name, argument="dnn_optimizer", default_learning_rate=None)


@given(st.sampled_from(sorted(OPTIMIZER_NAMES.values())), st.integers(min_value=1))
def test_keras_3_automatic_names_stand_for_the_legacy_name(kind: str, number: int) -> None:
    automatic = {"Adagrad": "adagrad", "Adam": "adam", "Ftrl": "ftrl", "RMSprop": "rm_sprop"}
    base = automatic.get(kind, "sgd")
    assert _scope_name(kind, base) == kind
    assert _scope_name(kind, f"{base}_{number}") == kind
    assert _scope_name(kind, f"my_{base}") == f"my_{base}"
    assert _scope_name(kind, f"{base}_x{number}") == f"{base}_x{number}"
