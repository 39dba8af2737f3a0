"""The SavedModel of a ModelDefinition: its model restored eagerly, its signatures traced.

`ModelDefinition.write` calls this; `write_saved_model` (writer.py) has already checked the
arguments and discards `export_dir` if this fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_tf_export.savedmodel.definition import ModelDefinition
from airflow_tf_export.savedmodel.gradient_registry import (
    custom_gradient_names,
    unregister_gradients,
)
from airflow_tf_export.savedmodel.metagraphs import Placement, split_by_mode
from airflow_tf_export.savedmodel.modes import TRAIN
from airflow_tf_export.savedmodel.restore import restore_model
from airflow_tf_export.savedmodel.signatures import Signature, build_signatures
from airflow_tf_export.storage.base import WrittenModel

_log = logging.getLogger(__name__)


def write_keras_saved_model(
    definition: ModelDefinition,
    checkpoint_path: str,
    export_dir: Path,
    modes: tuple[str, ...],
    *,
    as_text: bool,
) -> WrittenModel:
    """Restore the definition's model from `checkpoint_path` and write one SavedModel with a
    MetaGraphDef per mode (canonical names, in MODE_ORDER) into the empty `export_dir`."""
    restored = restore_model(definition, checkpoint_path, with_optimizer=TRAIN in modes)
    traced: list[Any] = []
    # The custom gradients still registered once the train step's are released; None until
    # known, when a failure leaves every traced function's to release.
    kept: set[str] | None = None
    try:
        signatures = build_signatures(definition, restored, modes, traced)
        # Nobody differentiates a train step: the gradients of its custom-gradient ops (the
        # Keras optimizer's all-reduce is one) are released before the save, so it does not
        # keep them. Those of the other modes are saved, as a plain tf.saved_model.save does.
        train = [signature.function for signature in signatures.get(TRAIN, {}).values()]
        unregister_gradients(custom_gradient_names(train))
        kept = custom_gradient_names(function for function in traced if function not in train)
        _save(export_dir, restored.model, signatures, custom_gradients=bool(kept))
        split_by_mode(
            export_dir,
            {
                mode: {
                    key: Placement(_saved_key(mode, key), sig.method_name)
                    for key, sig in keyed.items()
                }
                for mode, keyed in signatures.items()
            },
            as_text=as_text,
        )
    finally:
        unregister_gradients(custom_gradient_names(traced) if kept is None else kept)
    return WrittenModel(
        tags=modes,
        signature_keys={mode: tuple(sorted(keyed)) for mode, keyed in signatures.items()},
        checkpoint_path=checkpoint_path,
        global_step=restored.global_step,
    )


def _saved_key(mode: str, key: str) -> str:
    """Signature keys of different modes may coincide, so the combined save prefixes them."""
    return f"{mode}_{key}"


def _save(
    export_dir: Path,
    model: Any,
    signatures: Mapping[str, Mapping[str, Signature]],
    *,
    custom_gradients: bool,
) -> None:
    """One tf.saved_model.save of all signatures, with the custom gradients their ops use
    when there are some (looking for them walks every op). A custom gradient TensorFlow
    cannot save (one capturing a tensor made outside the trace) does not fail the export:
    it is saved without custom gradients, as before they were kept, with a warning."""
    import tensorflow as tf

    functions = {
        _saved_key(mode, key): signature.function
        for mode, keyed in signatures.items()
        for key, signature in keyed.items()
    }
    root = _export_root(functions.values(), model)

    def save(with_gradients: bool) -> None:
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=with_gradients)
        tf.saved_model.save(root, str(export_dir), signatures=functions, options=options)

    try:
        save(custom_gradients)
    except ValueError as error:
        # TensorFlow's refusals name the gradients; anything else is not this export's to hide.
        if not custom_gradients or "gradient" not in str(error):
            raise
        _log.warning("%s is saved without its custom gradients: %s", export_dir, error)
        save(False)


def _export_root(functions: Iterable[Any], model: Any) -> Any:
    """A module tracking exactly what the functions use: their variables and lookup tables.

    It tracks the plain tf.Variables the functions capture rather than the Keras model: Keras
    3 variables wrap a tf.Variable, and saving the wrappers gives the saver a second copy of
    each variable that the signatures do not read, which v1 loaders leave uninitialized.
    """
    import tensorflow as tf

    root = tf.Module()
    variables: dict[int, Any] = {}
    for function in functions:
        for variable in function.variables:
            variables.setdefault(id(variable), variable)
    root.exported_variables = list(variables.values())
    root.lookup_tables = [
        trackable
        for trackable in tf.train.TrackableView(model).descendants()
        if isinstance(trackable, tf.saved_model.experimental.TrackableResource)
    ]
    return root
