"""SavedModel writing from checkpoints: the only package that imports tensorflow (inside functions).

The public API, importable without loading TensorFlow:

    definition = resolve_definition("my_pkg.model:definition")
    checkpoint = resolve_checkpoint(model_dir, None)          # the latest one
    written = write_saved_model(definition, checkpoint, staging_dir, modes=("serve",))
"""

from airflow_tf_export.savedmodel.checkpoint_paths import resolve_checkpoint
from airflow_tf_export.savedmodel.definition import (
    DefinitionReference,
    KerasWeights,
    ModelDefinition,
    TrackableCheckpoint,
    resolve_definition,
)
from airflow_tf_export.savedmodel.errors import (
    CheckpointError,
    CheckpointMismatchError,
    DefinitionError,
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
from airflow_tf_export.savedmodel.writer import WrittenModel, write_saved_model

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ClassificationOutput",
    "DefinitionError",
    "DefinitionReference",
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
