"""Write an Estimator's SavedModel: one TF1 graph per mode, one name-based restore.

What `export_saved_model` and `experimental_export_all_saved_models` wrote, in two phases:

1. Build, for each mode in the order train, eval, serve, a fresh tf.Graph: the global step,
   the receiver, the model_fn's EstimatorSpec, the mode's signatures, a sharded Saver, the
   main op (local variables, tables and local resources initializer) and the train op in
   the `saved_model_train_op` collection. Compare the variables of every graph with the
   checkpoint's by name, shape and dtype. Everything that can be wrong with the definition
   or the checkpoint is found here, before anything is written.
2. Restore the checkpoint into the first graph, then `tf.compat.v1.saved_model.Builder`:
   `add_meta_graph_and_variables` for the first mode (its variables are the SavedModel's
   one `variables/`), `add_meta_graph` for the others, with the asset files of each graph
   (vocabulary files of feature columns) copied into `assets/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_tf_export.core.variable_match import (
    StoredVariable,
    compare_variables,
    unsaved_variables,
)
from airflow_tf_export.estimator.mode_keys import MODE_KEY_OF_EXPORT_MODE
from airflow_tf_export.estimator.model_fn import call_model_fn
from airflow_tf_export.estimator.receivers import ServingInputReceiver, SupervisedInputReceiver
from airflow_tf_export.estimator.signature_defs import (
    build_signature_defs,
    export_outputs_for_mode,
)
from airflow_tf_export.estimator.spec import EstimatorSpec
from airflow_tf_export.savedmodel.errors import (
    CheckpointError,
    CheckpointMismatchError,
    DefinitionError,
)
from airflow_tf_export.savedmodel.modes import SERVE
from airflow_tf_export.storage.base import WrittenModel

if TYPE_CHECKING:
    from airflow_tf_export.estimator.definition import Estimator

# The collection a SavedModel's train op is stored in (tf.saved_model's TRAIN_OP_KEY).
TRAIN_OP_COLLECTION = "saved_model_train_op"
GLOBAL_STEP_NAME = "global_step"


@dataclass(frozen=True)
class ModeGraph:
    """One mode's graph, ready to be added to the SavedModel."""

    mode: str
    graph: Any
    signature_defs: dict[str, Any]
    saver: Any
    main_op: Any
    assets: list[Any]
    variables: dict[str, StoredVariable]


def write_graph_saved_model(
    estimator: Estimator,
    checkpoint_path: str,
    export_dir: Path,
    modes: tuple[str, ...],
    *,
    as_text: bool,
) -> WrittenModel:
    """Write the SavedModel of `checkpoint_path` with one MetaGraphDef per mode (canonical
    names, in MODE_ORDER) into the empty `export_dir`."""
    stored = checkpoint_variables(checkpoint_path)
    graphs = [build_mode_graph(estimator, mode) for mode in modes]
    check_checkpoint(checkpoint_path, stored, graphs)
    global_step = _global_step(checkpoint_path)
    _save(graphs, checkpoint_path, export_dir, as_text=as_text)
    return WrittenModel(
        tags=modes,
        signature_keys={g.mode: tuple(sorted(g.signature_defs)) for g in graphs},
        checkpoint_path=checkpoint_path,
        global_step=global_step,
    )


def checkpoint_variables(checkpoint_path: str) -> dict[str, StoredVariable]:
    """The checkpoint's variables by name; CheckpointError names an unreadable one."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(checkpoint_path)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError, IndexError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {checkpoint_path}: {error}", checkpoint_path
        ) from error
    return {name: StoredVariable(tuple(shape), dtypes[name].name) for name, shape in shapes.items()}


def build_mode_graph(estimator: Estimator, mode: str) -> ModeGraph:
    """The graph of export mode `mode`, with everything its MetaGraphDef needs."""
    import tensorflow as tf

    mode_key = MODE_KEY_OF_EXPORT_MODE[mode]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step()
        receiver = _receive(estimator, mode)
        spec = call_model_fn(
            estimator.model_fn,
            estimator.model_fn_arguments,
            features=receiver.features,
            labels=getattr(receiver, "labels", None),
            mode=mode_key,
            params=estimator.params,
        )
        if not isinstance(spec, EstimatorSpec):
            raise DefinitionError(
                f"model_fn returned a {type(spec).__name__} in mode {mode_key!r}; it must "
                "return an EstimatorSpec"
            )
        if spec.mode != mode_key:
            raise DefinitionError(
                f"model_fn was called in mode {mode_key!r} but returned an EstimatorSpec for "
                f"mode {spec.mode!r}"
            )
        signature_defs = build_signature_defs(
            mode,
            export_outputs_for_mode(mode, spec),
            receiver.receiver_tensors,
            getattr(receiver, "receiver_tensors_alternatives", None),
        )
        if spec.train_op is not None:
            tf.compat.v1.add_to_collection(TRAIN_OP_COLLECTION, spec.train_op)
        return ModeGraph(
            mode=mode,
            graph=graph,
            signature_defs=signature_defs,
            saver=tf.compat.v1.train.Saver(sharded=True),
            main_op=tf.compat.v1.train.Scaffold.default_local_init_op(),
            assets=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
            variables=graph_variables(),
        )


def graph_variables() -> dict[str, StoredVariable]:
    """The default graph's global variables under the names a Saver stores them by (a
    partitioned variable once, under its full name and shape)."""
    import tensorflow as tf

    found = {}
    for variable in tf.compat.v1.global_variables():
        # Partitioned variables carry the whole variable's name and shape in _save_slice_info.
        whole = getattr(variable, "_save_slice_info", None)
        name = whole.full_name if whole else variable.op.name
        shape = tuple(whole.full_shape) if whole else tuple(variable.shape.as_list())
        found[name] = StoredVariable(shape, variable.dtype.base_dtype.name)
    return found


def check_checkpoint(
    checkpoint_path: str, stored: dict[str, StoredVariable], graphs: list[ModeGraph]
) -> None:
    """CheckpointMismatchError unless every graph's variables are in the checkpoint as the
    graph has them; DefinitionError when a later graph has variables the first lacks (the
    SavedModel's one variable set is the first graph's)."""
    mismatch = compare_variables(stored, [g.variables for g in graphs])
    if mismatch.fails:
        raise CheckpointMismatchError(
            checkpoint_path,
            missing=mismatch.missing,
            unexpected=mismatch.unexpected,
            mismatched=mismatch.mismatched,
        )
    lacking = unsaved_variables((g.mode, g.variables) for g in graphs)
    if lacking:
        first = graphs[0].mode
        described = "; ".join(f"{mode}: {', '.join(names)}" for mode, names in lacking.items())
        raise DefinitionError(
            f"the SavedModel's variables are saved from the {first!r} graph, which lacks "
            f"variables other modes create ({described}); create every variable in every mode "
            "of the model_fn, or export those modes separately"
        )


def _receive(estimator: Estimator, mode: str) -> ServingInputReceiver | SupervisedInputReceiver:
    """The receiver of `mode`, checked to be of the kind the mode takes."""
    kind: type[ServingInputReceiver | SupervisedInputReceiver]
    if mode == SERVE:
        receiver_fn, argument = estimator.serving_input_receiver_fn, "serving_input_receiver_fn"
        kind = ServingInputReceiver
    else:
        receiver_fn = estimator.supervised_input_receiver_fn
        argument = "supervised_input_receiver_fn"
        kind = SupervisedInputReceiver
    if receiver_fn is None:
        raise DefinitionError(f"the Estimator cannot export mode {mode!r}: it has no {argument}")
    receiver = receiver_fn()
    if not isinstance(receiver, kind):
        raise DefinitionError(
            f"{argument} returned a {type(receiver).__name__}; it must return a {kind.__name__}"
        )
    return receiver


def _save(
    graphs: list[ModeGraph], checkpoint_path: str, export_dir: Path, *, as_text: bool
) -> None:
    """Restore into the first graph and write every graph's MetaGraphDef."""
    import tensorflow as tf

    first, *later = graphs
    with first.graph.as_default(), tf.compat.v1.Session(graph=first.graph) as session:
        try:
            first.saver.restore(session, checkpoint_path)
        except (tf.errors.OpError, ValueError) as error:
            raise CheckpointError(
                f"cannot restore checkpoint {checkpoint_path} into the {first.mode!r} graph: "
                f"{error}",
                checkpoint_path,
            ) from error
        builder = tf.compat.v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(session, [first.mode], **_meta_graph_arguments(first))
    for mode_graph in later:
        with mode_graph.graph.as_default():
            builder.add_meta_graph([mode_graph.mode], **_meta_graph_arguments(mode_graph))
    builder.save(as_text)


def _meta_graph_arguments(mode_graph: ModeGraph) -> dict[str, Any]:
    return {
        "signature_def_map": mode_graph.signature_defs,
        "assets_collection": mode_graph.assets,
        "main_op": mode_graph.main_op,
        "saver": mode_graph.saver,
        "strip_default_attrs": True,
    }


def _global_step(checkpoint_path: str) -> int:
    """The checkpoint's `global_step` (every graph has one, so the check found it there)."""
    import tensorflow as tf

    return int(tf.train.load_checkpoint(checkpoint_path).get_tensor(GLOBAL_STEP_NAME))
