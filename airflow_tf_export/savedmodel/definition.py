"""Model definitions: what an export needs to know about one model.

`ExportDefinition` is the one contract `write_saved_model`, the operators and the DAG
templates rely on. Two kinds implement it: `ModelDefinition` (Keras 3 / tf.Module models,
built eagerly) and `airflow_tf_export.estimator.Estimator` (a TF1 graph-mode `model_fn`).
`ModelDefinition` replaces an Estimator's `model_fn`, its receiver functions and its
checkpoint setup, one field per concept (see docs/keras-model-definition.md). A DAG names a
definition by import string ("my_pkg.model:definition") or passes a callable;
`resolve_definition` turns either into the definition at export time, so parsing the DAG
file never imports the model code.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

from airflow_tf_export.savedmodel.errors import DefinitionError, DefinitionUnavailableError
from airflow_tf_export.savedmodel.export_outputs import (
    DEFAULT_SIGNATURE_KEY,
    ExportOutput,
    PredictOutput,
    serving_signatures,
    takes_serialized_examples,
)
from airflow_tf_export.savedmodel.modes import EVAL, TRAIN
from airflow_tf_export.savedmodel.receivers import (
    ParsingServingInput,
    RawServingInput,
    ServingInput,
    SupervisedInput,
    check_input_names,
)

if TYPE_CHECKING:
    from airflow_tf_export.storage.base import WrittenModel

_DEFINITION_KINDS = "a ModelDefinition or another ExportDefinition (such as an estimator.Estimator)"
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REFERENCE = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


@runtime_checkable
class ExportDefinition(Protocol):
    """A model definition: how to write a SavedModel from one of its checkpoints.

    `write_saved_model` checks the arguments shared by every kind (modes, assets_extra,
    export_dir, the checkpoint's existence), calls `check_modes` and then `write`, and
    leaves `export_dir` as it found it when `write` fails. Implementations import
    TensorFlow only inside `write`, so importing and resolving a definition stays cheap.
    """

    @property
    def keras_weights(self) -> bool:
        """Whether its checkpoints are Keras `<name>-<step>.weights.h5` files (False: TF
        checkpoint prefixes): which files of a model dir count as its checkpoints."""
        ...

    def check_modes(self, modes: Iterable[str]) -> None:
        """Raise DefinitionError naming what is missing to export the given modes."""
        ...

    def write(
        self, checkpoint_path: str, export_dir: Path, modes: tuple[str, ...], *, as_text: bool
    ) -> WrittenModel:
        """Write the SavedModel of `checkpoint_path` into the empty dir `export_dir`, one
        MetaGraphDef per mode (canonical names, in MODE_ORDER) sharing one `variables/`."""
        ...


@dataclass(frozen=True)
class TrackableCheckpoint:
    """Checkpoints written by `tf.train.CheckpointManager` for a `tf.train.Checkpoint`.

    The fields are the keyword names the training code gave `tf.train.Checkpoint(...)`; None
    means the checkpoint has no such object. `optimizer` is restored only for the `train`
    mode (without it, from the optimizer state a compiled Keras model saved under the model,
    when that state fits make_optimizer's optimizer; else the train signature gets a new
    optimizer); `step` is the global step variable.
    """

    model: str = "model"
    optimizer: str | None = "optimizer"
    step: str | None = "step"


@dataclass(frozen=True)
class KerasWeights:
    """Keras weights files (`model.save_weights("ckpt-<step>.weights.h5")`).

    They hold no step: the global step is the number in the file name. Optimizer state, which
    a compiled model's file also holds, is not restored: the `train` mode starts from a new
    optimizer.
    """


CheckpointFormat = TrackableCheckpoint | KerasWeights


def _default_export_outputs() -> dict[str, ExportOutput]:
    return {DEFAULT_SIGNATURE_KEY: PredictOutput()}


@dataclass(frozen=True)
class ModelDefinition:
    """How to build, restore and export one model.

    :param build_model: `() ->` a built Keras 3 model or a tf.Module, called as
        `model(features)` with a dict of feature tensors (Keras models also get `training=`).
    :param serving_input: the `serve` signatures' input (serving_input_receiver_fn).
    :param export_outputs: serving signature key -> export output
        (EstimatorSpec.export_outputs).
    :param predictions: model output -> dict of named prediction tensors
        (EstimatorSpec.predictions); default: the model's dict output, or
        `{"output": tensor}` for a single tensor.
    :param supervised_input: the `train` and `eval` signatures' input (input_receiver_fn_map).
    :param loss: `(labels, model output) ->` scalar loss tensor (EstimatorSpec.loss).
    :param make_optimizer: `() ->` a Keras 3 optimizer; the `train` signature applies one
        step of it to the loss (EstimatorSpec.train_op).
    :param metrics: name -> `(labels, model output) ->` scalar metric for one batch
        (EstimatorSpec.eval_metric_ops).
    :param checkpoint: how the training code wrote its checkpoints.
    :param warmup_examples: feature dicts (feature -> value or list of values) that validate
        each export before it is published (docs/validation.md); default: generated from
        the serving input's features.

    Callables may import TensorFlow inside their bodies; the definition itself does not.
    """

    build_model: Callable[[], Any]
    serving_input: ServingInput
    export_outputs: Mapping[str, ExportOutput] = field(default_factory=_default_export_outputs)
    predictions: Callable[[Any], Mapping[str, Any]] | None = None
    supervised_input: SupervisedInput | None = None
    loss: Callable[[Any, Any], Any] | None = None
    make_optimizer: Callable[[], Any] | None = None
    metrics: Mapping[str, Callable[[Any, Any], Any]] = field(default_factory=dict)
    checkpoint: CheckpointFormat = field(default_factory=TrackableCheckpoint)
    warmup_examples: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        if not callable(self.build_model):
            raise DefinitionError(f"build_model must be callable, got {self.build_model!r}")
        if not isinstance(self.serving_input, RawServingInput | ParsingServingInput):
            raise DefinitionError(
                f"serving_input is {self.serving_input!r}; use RawServingInput or "
                "ParsingServingInput"
            )
        if self.supervised_input is not None and not isinstance(
            self.supervised_input, SupervisedInput
        ):
            raise DefinitionError(
                f"supervised_input is {self.supervised_input!r}; use SupervisedInput"
            )
        if not isinstance(self.checkpoint, TrackableCheckpoint | KerasWeights):
            raise DefinitionError(
                f"checkpoint is {self.checkpoint!r}; use TrackableCheckpoint or KerasWeights"
            )
        try:
            signatures = serving_signatures(self.export_outputs)
        except (TypeError, ValueError) as error:
            raise DefinitionError(str(error)) from error
        if isinstance(self.serving_input, RawServingInput):
            for key, output in signatures.items():
                if takes_serialized_examples(output):
                    raise DefinitionError(
                        f"export output {key!r} is a {type(output).__name__}, whose signature "
                        "takes serialized tf.Example strings: use ParsingServingInput as "
                        "serving_input, or a PredictOutput"
                    )
        if self.metrics:
            try:
                check_input_names(self.metrics, "metric")
            except ValueError as error:
                raise DefinitionError(str(error)) from error

    def check_modes(self, modes: Iterable[str]) -> None:
        """Raise DefinitionError naming what is missing to export the given modes."""
        needs = {
            TRAIN: ("supervised_input", "loss", "make_optimizer"),
            EVAL: ("supervised_input", "loss"),
        }
        for mode in modes:
            absent = [name for name in needs.get(mode, ()) if getattr(self, name) is None]
            if absent:
                raise DefinitionError(
                    f"the model definition cannot export mode {mode!r}: set {', '.join(absent)}"
                )

    @property
    def keras_weights(self) -> bool:
        """Whether `checkpoint` is KerasWeights."""
        return isinstance(self.checkpoint, KerasWeights)

    def write(
        self, checkpoint_path: str, export_dir: Path, modes: tuple[str, ...], *, as_text: bool
    ) -> WrittenModel:
        """Restore the model eagerly and save its traced signatures (keras_writer.py)."""
        from airflow_tf_export.savedmodel.keras_writer import write_keras_saved_model

        return write_keras_saved_model(self, checkpoint_path, export_dir, modes, as_text=as_text)


DefinitionReference = str | Callable[[], ExportDefinition] | ExportDefinition


def parse_reference(reference: str) -> tuple[str, str]:
    """Split "package.module:attribute" into the module and attribute names."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise DefinitionError(
            f"model definition reference {reference!r} is not of the form "
            "'package.module:attribute'"
        )
    return match.group(1), match.group(2)


def resolve_definition(reference: DefinitionReference) -> ExportDefinition:
    """The model definition an import string or a callable names, imported now (a definition
    itself is returned as it is)."""
    if is_definition(reference):
        return reference
    if isinstance(reference, str):
        target = _import_attribute(reference)
        described = repr(reference)
    elif callable(reference):
        target = reference
        described = getattr(reference, "__qualname__", repr(reference))
    else:
        raise DefinitionError(
            f"model definition reference {reference!r} must be an import string "
            "'package.module:attribute', a callable or a model definition"
        )
    if is_definition(target):
        return target
    if not callable(target):
        raise DefinitionError(
            f"{described} is a {type(target).__name__}, not {_DEFINITION_KINDS} or a callable "
            "returning one"
        )
    try:
        definition = target()
    except OSError as error:
        raise _unavailable(f"calling {described} for the model definition", error) from error
    except Exception as error:
        raise DefinitionError(
            f"calling {described} for the model definition failed: {type(error).__name__}: {error}"
        ) from error
    if not is_definition(definition):
        raise DefinitionError(
            f"{described} returned a {type(definition).__name__}, not {_DEFINITION_KINDS}"
        )
    return definition


def is_definition(value: object) -> TypeGuard[ExportDefinition]:
    """Whether `value` is a model definition: an instance implementing ExportDefinition (a
    class has the protocol's attributes too, but is a factory, called like one)."""
    return isinstance(value, ExportDefinition) and not isinstance(value, type)


def _import_attribute(reference: str) -> object:
    module_name, attribute_path = parse_reference(reference)
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise DefinitionError(
                f"cannot resolve model definition {reference!r}: no module named {error.name!r}"
            ) from error
        raise _import_failed(module_name, reference, error) from error
    except OSError as error:
        what = f"importing {module_name!r} for model definition {reference!r}"
        raise _unavailable(what, error) from error
    except Exception as error:
        raise _import_failed(module_name, reference, error) from error
    for part in attribute_path.split("."):
        if not hasattr(target, part):
            raise DefinitionError(
                f"cannot resolve model definition {reference!r}: {module_name!r} has no "
                f"attribute {attribute_path!r}"
            )
        target = getattr(target, part)
    return target


def _import_failed(module_name: str, reference: str, error: Exception) -> DefinitionError:
    return DefinitionError(
        f"importing {module_name!r} for model definition {reference!r} failed: "
        f"{type(error).__name__}: {error}"
    )


def _unavailable(what: str, error: OSError) -> DefinitionUnavailableError:
    return DefinitionUnavailableError(
        f"{what} failed on an I/O error, which may be transient (the task's retries apply): "
        f"{type(error).__name__}: {error}"
    )
