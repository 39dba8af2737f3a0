"""The Estimator as a model definition, without TensorFlow: its checks, the modes it can
export, resolution by import string, and the package's lazy names."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_tf_export import estimator
from airflow_tf_export.savedmodel.definition import ExportDefinition, resolve_definition
from airflow_tf_export.savedmodel.errors import DefinitionError
from airflow_tf_export.savedmodel.writer import write_saved_model


def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
    raise AssertionError("checking a definition must not call the model_fn")


def receiver_fn() -> Any:
    raise AssertionError("checking a definition must not call a receiver")


def test_the_mode_keys_are_tf_estimators() -> None:
    keys = estimator.ModeKeys
    assert (keys.TRAIN, keys.EVAL, keys.PREDICT) == ("train", "eval", "infer")


def test_an_estimator_is_an_export_definition_of_tf_checkpoints() -> None:
    definition = estimator.Estimator(model_fn, params={"units": 3})
    assert isinstance(definition, ExportDefinition)
    assert definition.keras_weights is False
    assert definition.model_fn is model_fn
    assert definition.model_fn_arguments == frozenset({"features", "labels", "mode", "params"})
    assert repr(definition) == "Estimator(model_fn=model_fn)"


def test_params_are_copied_at_construction_and_for_every_call() -> None:
    params = {"hidden_units": [4]}
    definition = estimator.Estimator(model_fn, params=params)
    params["hidden_units"].append(2)
    first = definition.params
    first["hidden_units"].append(1)
    assert definition.params == {"hidden_units": [4]}
    assert estimator.Estimator(model_fn).params == {}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"params": [1, 2]}, "params must be a dict of hyperparameters, got \\[1, 2\\]"),
        ({"serving_input_receiver_fn": "fn"}, "serving_input_receiver_fn must be a function"),
        ({"supervised_input_receiver_fn": 3}, "supervised_input_receiver_fn must be a function"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(DefinitionError, match=expected):
        estimator.Estimator(model_fn, **arguments)


def test_a_model_fn_without_params_refuses_params() -> None:
    def no_params(features: Any, mode: str) -> Any:
        return features

    with pytest.raises(DefinitionError, match="no_params takes no `params` argument"):
        estimator.Estimator(no_params, params={"a": 1})


@pytest.mark.parametrize(
    ("receivers", "modes", "missing"),
    [
        ({"serving_input_receiver_fn": receiver_fn}, ("train",), "supervised_input_receiver_fn"),
        ({"serving_input_receiver_fn": receiver_fn}, ("eval", "serve"), "supervised_input"),
        ({"supervised_input_receiver_fn": receiver_fn}, ("infer",), "serving_input_receiver_fn"),
        ({}, ("serve",), "serving_input_receiver_fn"),
    ],
)
def test_modes_without_their_receiver_are_refused(
    receivers: dict[str, Any], modes: tuple[str, ...], missing: str
) -> None:
    with pytest.raises(DefinitionError, match=f"cannot export mode .*{missing}"):
        estimator.Estimator(model_fn, **receivers).check_modes(modes)


def test_modes_with_their_receivers_are_accepted() -> None:
    definition = estimator.Estimator(
        model_fn, serving_input_receiver_fn=receiver_fn, supervised_input_receiver_fn=receiver_fn
    )
    definition.check_modes(("train", "eval", "serve", "infer"))


def test_write_saved_model_checks_the_modes_before_writing(tmp_path: Path) -> None:
    definition = estimator.Estimator(model_fn, serving_input_receiver_fn=receiver_fn)
    export_dir = tmp_path / "export"
    with pytest.raises(DefinitionError, match="cannot export mode 'train'"):
        write_saved_model(definition, str(tmp_path / "model.ckpt-1"), export_dir, modes=["train"])
    assert not export_dir.exists()


@pytest.fixture
def definition_module() -> Iterator[types.ModuleType]:
    """A user's definition module: an Estimator, a factory and a canned-style subclass."""

    class Canned(estimator.Estimator):
        def __init__(self) -> None:
            super().__init__(model_fn, params={}, serving_input_receiver_fn=receiver_fn)

    module = types.ModuleType("estimator_definition_module")
    module.definition = estimator.Estimator(model_fn, serving_input_receiver_fn=receiver_fn)  # type: ignore[attr-defined]
    module.factory = lambda: module.definition  # type: ignore[attr-defined]
    module.Canned = Canned  # type: ignore[attr-defined]
    module.failing = lambda: estimator.Estimator(model_fn, params=[1])  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_estimators_resolve_by_import_string(definition_module: types.ModuleType) -> None:
    assert resolve_definition("estimator_definition_module:definition") is (
        definition_module.definition
    )
    assert resolve_definition("estimator_definition_module:factory") is (
        definition_module.definition
    )
    assert resolve_definition(definition_module.definition) is definition_module.definition
    canned = resolve_definition("estimator_definition_module:Canned")
    assert isinstance(canned, definition_module.Canned)


def test_a_failing_factory_is_named_by_its_import_string(
    definition_module: types.ModuleType,
) -> None:
    with pytest.raises(DefinitionError) as raised:
        resolve_definition("estimator_definition_module:failing")
    message = str(raised.value)
    assert "'estimator_definition_module:failing'" in message
    assert "params must be a dict" in message


def test_importing_the_package_and_its_public_names_does_not_import_tensorflow() -> None:
    script = (
        "import json, sys\n"
        "from airflow_tf_export import estimator\n"
        "names = [estimator.Estimator, estimator.EstimatorSpec, estimator.ModeKeys,\n"
        "         estimator.export.PredictOutput, estimator.export.ClassificationOutput,\n"
        "         estimator.export.RegressionOutput, estimator.export.ExportOutput,\n"
        "         estimator.export.ServingInputReceiver,\n"
        "         estimator.export.SupervisedInputReceiver,\n"
        "         estimator.export.build_parsing_serving_input_receiver_fn,\n"
        "         estimator.export.build_raw_serving_input_receiver_fn,\n"
        "         estimator.experimental.build_raw_supervised_input_receiver_fn]\n"
        "estimator.export.build_parsing_serving_input_receiver_fn({'age': object()})\n"
        "estimator.experimental.build_raw_supervised_input_receiver_fn({'x': 1}, 2)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps([len(names), heavy]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [12, []]


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'Exporter'"):
        estimator.Exporter  # noqa: B018
    assert {"Estimator", "EstimatorSpec", "ModeKeys", "export", "experimental"} <= set(
        dir(estimator)
    )


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: estimator.export.build_parsing_serving_input_receiver_fn({}),
            "feature_spec must be a non-empty dict",
        ),
        (
            lambda: estimator.export.build_raw_serving_input_receiver_fn(["age"]),
            "features must be a non-empty dict of feature name to tensor, got \\['age'\\]",
        ),
        (
            lambda: estimator.export.build_raw_serving_input_receiver_fn({"a": 1}, 0),
            "default_batch_size must be a positive int or None",
        ),
        (
            lambda: estimator.experimental.build_raw_supervised_input_receiver_fn(
                {"x": 1, "label": 2}, 3
            ),
            "features and labels must have distinct keys; both have \\['label'\\]",
        ),
    ],
)
def test_receiver_builders_check_their_arguments_when_called(build: Any, expected: str) -> None:
    with pytest.raises(DefinitionError, match=expected):
        build()
