"""`write_saved_model`: a model definition plus a checkpoint -> a SavedModel in a local dir.

The single entry point for exporting. Every argument is checked before anything is written;
if writing fails, `export_dir` is left as it was found (absent or empty). Publishing the
directory (local rename or GCS upload) is the storage layer's job, so what was written is
reported as the storage layer's WrittenModel.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_tf_export.savedmodel.assets_extra import copy_assets_extra, plan_assets_extra
from airflow_tf_export.savedmodel.checkpoint_paths import require_checkpoint
from airflow_tf_export.savedmodel.definition import ModelDefinition
from airflow_tf_export.savedmodel.gradient_registry import (
    custom_gradient_names,
    unregister_gradients,
)
from airflow_tf_export.savedmodel.metagraphs import Placement, split_by_mode
from airflow_tf_export.savedmodel.modes import TRAIN, normalize_modes
from airflow_tf_export.savedmodel.restore import restore_model
from airflow_tf_export.savedmodel.signatures import Signature, build_signatures
from airflow_tf_export.storage.base import WrittenModel

_log = logging.getLogger(__name__)


def write_saved_model(
    definition: ModelDefinition,
    checkpoint_path: str,
    export_dir: Path,
    *,
    modes: Sequence[str] = ("serve",),
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
) -> WrittenModel:
    """Write one SavedModel with a MetaGraphDef per mode into `export_dir`.

    `modes` are "train", "eval", "serve" (or the Estimator name "infer"); the MetaGraphDefs
    are written in that order and share one `variables/`. `export_dir` must not exist or be
    an empty directory. `as_text` writes saved_model.pbtxt instead of saved_model.pb.
    """
    if not isinstance(definition, ModelDefinition):
        raise TypeError(
            f"definition is a {type(definition).__name__}; resolve it first with "
            "resolve_definition()"
        )
    chosen = normalize_modes(modes)
    definition.check_modes(chosen)
    assets = plan_assets_extra(assets_extra)
    export_dir = Path(export_dir)
    existed = _require_empty(export_dir)
    require_checkpoint(checkpoint_path)

    restored = restore_model(definition, checkpoint_path, with_optimizer=TRAIN in chosen)
    traced: list[Any] = []
    # The custom gradients still registered once the train step's are released; None until
    # known, when a failure leaves every traced function's to release.
    kept: set[str] | None = None
    try:
        signatures = build_signatures(definition, restored, chosen, traced)
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
        copy_assets_extra(assets, export_dir)
    except BaseException:
        _discard(export_dir, existed)
        raise
    finally:
        unregister_gradients(custom_gradient_names(traced) if kept is None else kept)
    return WrittenModel(
        tags=chosen,
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


def _require_empty(export_dir: Path) -> bool:
    """Whether `export_dir` already existed; raise unless it is absent or an empty directory."""
    if not export_dir.exists():
        return False
    if not export_dir.is_dir() or any(export_dir.iterdir()):
        raise ValueError(f"export_dir {export_dir} must not exist or be an empty directory")
    return True


def _discard(export_dir: Path, existed: bool) -> None:
    if not export_dir.exists():
        return
    if existed:
        for entry in export_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    else:
        shutil.rmtree(export_dir)
