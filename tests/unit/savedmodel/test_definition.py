"""Model definitions: import-string resolution and the checks made when one is declared."""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel.definition import (
    ModelDefinition,
    parse_reference,
    resolve_definition,
)
from airflow_tf_export.savedmodel.errors import DefinitionError, DefinitionUnavailableError
from airflow_tf_export.savedmodel.export_outputs import (
    ClassificationOutput,
    PredictOutput,
    RegressionOutput,
)
from airflow_tf_export.savedmodel.receivers import Feature, RawServingInput

RAW = RawServingInput({"x": Feature("float32", (3,))})


def _build() -> object:
    raise AssertionError("resolution must not build the model")


@pytest.fixture
def fake_module() -> Iterator[types.ModuleType]:
    """A real module registered in sys.modules, holding definitions and other objects."""
    module = types.ModuleType("fake_model_pkg")
    module.definition = ModelDefinition(build_model=_build, serving_input=RAW)  # type: ignore[attr-defined]
    module.factory = lambda: module.definition  # type: ignore[attr-defined]
    module.not_a_definition = 42  # type: ignore[attr-defined]
    module.bad_factory = lambda: "oops"  # type: ignore[attr-defined]
    module.nested = types.SimpleNamespace(definition=module.definition)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_the_example_definition_resolves_by_import_string() -> None:
    resolved = resolve_definition("airflow_tf_export.example.model:definition")
    assert resolved is example.definition


def test_attribute_factories_and_dotted_attributes_resolve(fake_module: types.ModuleType) -> None:
    assert resolve_definition("fake_model_pkg:factory") is fake_module.definition
    assert resolve_definition("fake_model_pkg:nested.definition") is fake_module.definition


def test_a_callable_or_a_definition_resolves(fake_module: types.ModuleType) -> None:
    assert resolve_definition(fake_module.factory) is fake_module.definition
    assert resolve_definition(fake_module.definition) is fake_module.definition


@pytest.mark.parametrize(
    "reference", ["no_colon", "pkg.mod:", ":attr", "pkg..mod:x", "pkg.mod:x:y", "pkg mod:x", ""]
)
def test_malformed_references_are_rejected_with_the_expected_form(reference: str) -> None:
    with pytest.raises(DefinitionError, match=r"package\.module:attribute") as raised:
        parse_reference(reference)
    assert repr(reference) in str(raised.value)


def test_an_unknown_module_is_named() -> None:
    with pytest.raises(DefinitionError) as raised:
        resolve_definition("no_such_pkg_xyz.model:definition")
    message = str(raised.value)
    assert "'no_such_pkg_xyz.model:definition'" in message
    assert "no module named 'no_such_pkg_xyz'" in message


def test_an_unknown_attribute_is_named(fake_module: types.ModuleType) -> None:
    with pytest.raises(DefinitionError, match="has no attribute 'missing'") as raised:
        resolve_definition("fake_model_pkg:missing")
    assert "'fake_model_pkg:missing'" in str(raised.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError: No module named"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ],
)
def test_a_module_failing_on_its_own_import_is_reported_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, expected: str
) -> None:
    (tmp_path / "broken_model_module.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_model_module", raising=False)
    with pytest.raises(DefinitionError, match=expected) as raised:
        resolve_definition("broken_model_module:definition")
    assert "importing 'broken_model_module'" in str(raised.value)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("fake_model_pkg:not_a_definition", "is a int, not a ModelDefinition"),
        ("fake_model_pkg:bad_factory", "returned a str, not a ModelDefinition"),
    ],
)
def test_wrong_targets_are_named(
    fake_module: types.ModuleType, reference: str, expected: str
) -> None:
    with pytest.raises(DefinitionError, match=expected):
        resolve_definition(reference)


def test_a_reference_of_another_type_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="must be an import string"):
        resolve_definition(42)  # type: ignore[arg-type]


def test_classify_and_regress_outputs_need_a_parsing_serving_input() -> None:
    for output in (ClassificationOutput(), RegressionOutput("value")):
        with pytest.raises(DefinitionError, match="ParsingServingInput"):
            ModelDefinition(
                build_model=_build, serving_input=RAW, export_outputs={"serving_default": output}
            )


def test_export_output_rules_are_applied_when_declared() -> None:
    with pytest.raises(DefinitionError, match="none is 'serving_default'"):
        ModelDefinition(
            build_model=_build,
            serving_input=RAW,
            export_outputs={"a": PredictOutput(), "b": PredictOutput()},
        )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("build_model", "not callable", "build_model must be callable"),
        ("serving_input", {"x": Feature("float32")}, "use RawServingInput or ParsingServingInput"),
        ("supervised_input", RAW, "use SupervisedInput"),
        ("checkpoint", "ckpt", "use TrackableCheckpoint or KerasWeights"),
        ("metrics", {"bad name": len}, "metric name 'bad name'"),
    ],
)
def test_wrong_field_types_are_named(field: str, value: Any, expected: str) -> None:
    with pytest.raises(DefinitionError, match=expected):
        dataclasses.replace(example.definition, **{field: value})


def test_modes_needing_missing_parts_name_them() -> None:
    serving_only = ModelDefinition(build_model=_build, serving_input=RAW)
    serving_only.check_modes(["serve"])
    with pytest.raises(DefinitionError, match=r"'train'.*supervised_input, loss, make_optimizer"):
        serving_only.check_modes(["serve", "train"])
    with pytest.raises(DefinitionError, match=r"'eval'.*supervised_input, loss$"):
        serving_only.check_modes(["eval"])
    example.definition.check_modes(["train", "eval", "serve"])


@pytest.mark.parametrize(
    ("body", "reference", "expected"),
    [
        (
            "raise TimeoutError('nfs server not responding')\n",
            "io_model_module:definition",
            "importing 'io_model_module' for model definition 'io_model_module:definition'",
        ),
        (
            "def factory():\n    raise OSError(116, 'Stale file handle')\n",
            "io_model_module:factory",
            "calling 'io_model_module:factory' for the model definition",
        ),
    ],
)
def test_an_io_error_loading_a_definition_is_named_and_stays_retryable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, reference: str, expected: str
) -> None:
    """An OSError (a network file system that did not answer) may pass: not a ValueError,
    so the export operators leave it to the task's retries."""
    (tmp_path / "io_model_module.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "io_model_module", raising=False)
    with pytest.raises(DefinitionUnavailableError) as raised:
        resolve_definition(reference)
    assert not isinstance(raised.value, ValueError)
    assert isinstance(raised.value.__cause__, OSError)
    message = str(raised.value)
    assert message.startswith(expected)
    assert "may be transient" in message


def test_a_factory_raising_anything_else_is_bad_input_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "raising_factory_module.py").write_text(
        "def factory():\n    raise RuntimeError('no GPU visible')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "raising_factory_module", raising=False)
    with pytest.raises(DefinitionError) as raised:
        resolve_definition("raising_factory_module:factory")
    assert str(raised.value) == (
        "calling 'raising_factory_module:factory' for the model definition failed: "
        "RuntimeError: no GPU visible"
    )
