"""SavedModel writing from checkpoints: the only package that imports tensorflow (inside functions).

The public API, importable without loading TensorFlow:

    definition = resolve_definition("my_pkg.model:definition")
    checkpoint = resolve_checkpoint(model_dir, None)          # the latest one
    written = write_saved_model(definition, checkpoint, staging_dir, modes=("serve",))

The names are imported from their modules on first use (module `__getattr__`), so
importing one submodule (the operators import `savedmodel.modes` while a DAG is parsed) does
not import the rest of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tf_export.savedmodel.checkpoint_paths import resolve_checkpoint
    from airflow_tf_export.savedmodel.definition import (
        DefinitionReference,
        ExportDefinition,
        KerasWeights,
        ModelDefinition,
        TrackableCheckpoint,
        resolve_definition,
    )
    from airflow_tf_export.savedmodel.errors import (
        CheckpointError,
        CheckpointMismatchError,
        DefinitionError,
        DefinitionUnavailableError,
    )
    from airflow_tf_export.savedmodel.export_outputs import (
        ClassificationOutput,
        PredictOutput,
        RegressionOutput,
    )
    from airflow_tf_export.savedmodel.receivers import (
        Feature,
        ParsingServingInput,
        RawServingInput,
        SupervisedInput,
    )
    from airflow_tf_export.savedmodel.writer import write_saved_model
    from airflow_tf_export.storage.base import WrittenModel

_MODULE_OF = {
    "CheckpointError": "airflow_tf_export.savedmodel.errors",
    "CheckpointMismatchError": "airflow_tf_export.savedmodel.errors",
    "ClassificationOutput": "airflow_tf_export.savedmodel.export_outputs",
    "DefinitionError": "airflow_tf_export.savedmodel.errors",
    "DefinitionUnavailableError": "airflow_tf_export.savedmodel.errors",
    "DefinitionReference": "airflow_tf_export.savedmodel.definition",
    "ExportDefinition": "airflow_tf_export.savedmodel.definition",
    "Feature": "airflow_tf_export.savedmodel.receivers",
    "KerasWeights": "airflow_tf_export.savedmodel.definition",
    "ModelDefinition": "airflow_tf_export.savedmodel.definition",
    "ParsingServingInput": "airflow_tf_export.savedmodel.receivers",
    "PredictOutput": "airflow_tf_export.savedmodel.export_outputs",
    "RawServingInput": "airflow_tf_export.savedmodel.receivers",
    "RegressionOutput": "airflow_tf_export.savedmodel.export_outputs",
    "SupervisedInput": "airflow_tf_export.savedmodel.receivers",
    "TrackableCheckpoint": "airflow_tf_export.savedmodel.definition",
    "WrittenModel": "airflow_tf_export.storage.base",
    "resolve_checkpoint": "airflow_tf_export.savedmodel.checkpoint_paths",
    "resolve_definition": "airflow_tf_export.savedmodel.definition",
    "write_saved_model": "airflow_tf_export.savedmodel.writer",
}

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ClassificationOutput",
    "DefinitionError",
    "DefinitionReference",
    "DefinitionUnavailableError",
    "ExportDefinition",
    "Feature",
    "KerasWeights",
    "ModelDefinition",
    "ParsingServingInput",
    "PredictOutput",
    "RawServingInput",
    "RegressionOutput",
    "SupervisedInput",
    "TrackableCheckpoint",
    "WrittenModel",
    "resolve_checkpoint",
    "resolve_definition",
    "write_saved_model",
]


def __getattr__(name: str) -> Any:
    """The public name `name`, imported from its submodule on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
