"""Build the model of a definition and restore its variables from one checkpoint.

Before restoring a tf.train.Checkpoint, the checkpoint's object graph is walked alongside the
Python objects, so a mismatch is reported by name (variables the model has that the
checkpoint lacks, variables the checkpoint holds under the model that the model lacks, and
shape differences) instead of TensorFlow's partial-restore warnings.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_tf_export.core.checkpoints import step_in_name
from airflow_tf_export.savedmodel.checkpoint_paths import require_checkpoint
from airflow_tf_export.savedmodel.definition import (
    KerasWeights,
    ModelDefinition,
    TrackableCheckpoint,
)
from airflow_tf_export.savedmodel.errors import (
    CheckpointError,
    CheckpointMismatchError,
    DefinitionError,
)

if TYPE_CHECKING:
    from tensorflow.core.protobuf.trackable_object_graph_pb2 import TrackableObjectGraph

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# TF1 name-based checkpoints call it `global_step`; object-based ones use the training code's key.
_TF1_STEP_NAME = "global_step"
# A compiled Keras model tracks its optimizer as this attribute, so checkpoints and weights
# files of a compiled model hold optimizer state under it. That state is not model state:
# it is no mismatch, and a model build_model compiled has its optimizer set aside to restore.
_KERAS_OPTIMIZER = "optimizer"
# Where a Keras 3 optimizer keeps its step count among its checkpoint dependencies, and all
# it holds before its first step.
_KERAS_ITERATIONS = "_iterations"
_BEFORE_FIRST_STEP = {(_KERAS_ITERATIONS,), ("_learning_rate",)}
_ABSENT = object()


@dataclass(frozen=True)
class RestoredModel:
    """A built model with the checkpoint's values; for training also the optimizer and step.

    `step_variable` is the global step as an int64 variable named `global_step`, which the
    train signature increments.
    """

    model: Any
    optimizer: Any | None
    step_variable: Any | None
    global_step: int
    checkpoint_path: str


def restore_model(
    definition: ModelDefinition, checkpoint_path: str, *, with_optimizer: bool
) -> RestoredModel:
    """Build the model (and optimizer) and restore them from `checkpoint_path`."""
    import tensorflow as tf

    require_checkpoint(checkpoint_path)
    model = definition.build_model()
    _require_built(model)
    optimizer = None
    if with_optimizer:
        if definition.make_optimizer is None:
            raise DefinitionError("the model definition has no make_optimizer")
        optimizer = definition.make_optimizer()
        optimizer.build(model.trainable_variables)
    with _optimizer_attribute_kept(model):
        if isinstance(definition.checkpoint, KerasWeights):
            step = _restore_keras_weights(model, checkpoint_path)
        else:
            step = _restore_trackable(model, optimizer, definition.checkpoint, checkpoint_path)
            _finalize_normalization(model)
    step_variable = None
    if with_optimizer:
        step_variable = tf.Variable(step, dtype=tf.int64, trainable=False, name="global_step")
    return RestoredModel(model, optimizer, step_variable, step, checkpoint_path)


def is_keras_model(model: object) -> bool:
    """Keras layers take a `training` argument; a plain tf.Module does not."""
    import keras

    return isinstance(model, keras.Layer)


def _require_built(model: object) -> None:
    import tensorflow as tf

    if is_keras_model(model):
        if not model.built:  # type: ignore[attr-defined]
            raise DefinitionError(
                "build_model returned a Keras model that is not built; create its variables "
                "in build_model (a functional model, or call model.build(...))"
            )
    elif not isinstance(model, tf.Module):
        raise DefinitionError(
            f"build_model returned a {type(model).__name__}; expected a Keras 3 model or a "
            "tf.Module"
        )


@contextmanager
def _optimizer_attribute_kept(model: Any) -> Iterator[None]:
    """Restore with the model's `optimizer` attribute handled, and put it back afterwards
    (build_model may return a model the user keeps). A compiled model's own optimizer is set
    aside: the export does not use it (the train signature steps make_optimizer()'s), so
    checkpoints need not hold its state. The one the restore may attach to read a compiled
    model's checkpoint (`_holds_compiled_optimizer`) does not stay."""
    if not is_keras_model(model):
        yield
        return
    before = vars(model).get(_KERAS_OPTIMIZER, _ABSENT)
    if before is not None and before is not _ABSENT:
        _drop_optimizer(model)
        model.optimizer = None
    try:
        yield
    finally:
        if vars(model).get(_KERAS_OPTIMIZER, _ABSENT) is not before:
            _drop_optimizer(model)
            if before is not _ABSENT:
                model.optimizer = before


def _drop_optimizer(model: Any) -> None:
    """Delete the attribute: assigning None would leave TensorFlow's checkpoint dependency on
    the optimizer in place."""
    if _KERAS_OPTIMIZER in vars(model):
        del model.optimizer


def _finalize_normalization(model: Any) -> None:
    """Recompute what adapted Normalization layers derive from their restored variables.

    They keep the mean and variance they normalize with as constants taken from the
    variables at build time; Keras' own weights loading refreshes them, a tf.train.Checkpoint
    restore does not, and the export would normalize with the build-time values.
    """
    import keras
    import tensorflow as tf

    for trackable in tf.train.TrackableView(model).descendants():
        if isinstance(trackable, keras.layers.Normalization):
            trackable.finalize_state()


def _restore_keras_weights(model: Any, path: str) -> int:
    if not is_keras_model(model):
        raise DefinitionError("KerasWeights checkpoints need build_model to return a Keras model")
    saved = _h5_arrays(path)
    with tempfile.TemporaryDirectory(prefix="model-weights-") as scratch:
        own_file = os.path.join(scratch, "model.weights.h5")
        model.save_weights(own_file)
        expected = _h5_arrays(own_file)
    missing = tuple(name for name in expected if name not in saved)
    unexpected = tuple(
        f"{name} {list(saved[name])}"
        for name in saved
        if name not in expected and not name.startswith(f"{_KERAS_OPTIMIZER}/")
    )
    mismatched = tuple(
        f"{name}: checkpoint {list(saved[name])}, model {list(shape)}"
        for name, shape in expected.items()
        if name in saved and saved[name] != shape
    )
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            path, missing=missing, unexpected=unexpected, mismatched=mismatched
        )
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"cannot restore {path} into the model: {error}", path) from error
    step = step_in_name(path)
    if step is None:
        raise CheckpointError(
            f"cannot tell the global step of {path}: name Keras weights files "
            "'<name>-<step>.weights.h5'",
            path,
        )
    return step


def _h5_arrays(path: str) -> dict[str, tuple[int, ...]]:
    """Every array in a Keras weights file by its HDF5 path (Keras names them by position)."""
    import h5py

    arrays: dict[str, tuple[int, ...]] = {}

    def collect(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            arrays[name] = tuple(item.shape)

    try:
        with h5py.File(path, "r") as weights:
            weights.visititems(collect)
    except OSError as error:
        raise CheckpointError(f"cannot read Keras weights file {path}: {error}", path) from error
    return arrays


def _restore_trackable(
    model: Any, optimizer: Any | None, layout: TrackableCheckpoint, path: str
) -> int:
    import tensorflow as tf
    from tensorflow.core.protobuf.trackable_object_graph_pb2 import TrackableObjectGraph

    # The checkpoint reader raises IndexError on a truncated data file.
    read_errors = (tf.errors.OpError, ValueError, IndexError)
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        serialized_graph = (
            reader.get_tensor(_OBJECT_GRAPH_KEY) if reader.has_tensor(_OBJECT_GRAPH_KEY) else None
        )
    except read_errors as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}", path) from error
    if serialized_graph is None:
        raise CheckpointError(
            f"checkpoint {path} has no object graph: it was not written by tf.train.Checkpoint",
            path,
        )
    graph = TrackableObjectGraph()
    graph.ParseFromString(serialized_graph)
    saved_roots = {child.local_name for child in graph.nodes[0].children}
    roots = {layout.model: model}
    if optimizer is not None and layout.optimizer in saved_roots:
        if not _never_stepped(graph, reader, str(layout.optimizer)):
            roots[str(layout.optimizer)] = optimizer
    elif (
        optimizer is not None
        and is_keras_model(model)
        and _holds_compiled_optimizer(graph, shapes, layout, optimizer)
    ):
        # Restored from where model.compile put it, as the model's `optimizer` attribute.
        model.optimizer = optimizer
    missing, unexpected, mismatched = find_mismatches(graph, shapes, roots)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            path, missing=missing, unexpected=unexpected, mismatched=mismatched
        )
    try:
        status = tf.train.Checkpoint(**roots).read(path)
        status.expect_partial().assert_existing_objects_matched()
        return _global_step(reader, layout, path)
    except AssertionError as error:
        raise CheckpointError(f"restoring {path} left variables unset: {error}", path) from error
    except read_errors as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}", path) from error


def _holds_compiled_optimizer(
    graph: TrackableObjectGraph,
    shapes: Mapping[str, list[int]],
    layout: TrackableCheckpoint,
    optimizer: Any,
) -> bool:
    """Whether the state a compiled model saved under it is exactly that of `optimizer`'s
    variables. Otherwise (another optimizer class, a LossScaleOptimizer, a checkpoint from
    before the first step) the train signature starts from a new optimizer."""
    under_model = f"{layout.model}/{_KERAS_OPTIMIZER}"
    if _follow_saved(graph, 0, tuple(under_model.split("/"))) is None:
        return False
    return find_mismatches(graph, shapes, {under_model: optimizer}) == ((), (), ())


def _never_stepped(graph: TrackableObjectGraph, reader: Any, root: str) -> bool:
    """Whether the optimizer state saved at `root` is a Keras optimizer's before its first
    step: its iteration count (0) and learning rate, as Keras creates the other variables on
    the first step. Nothing was learned, so the train mode starts from make_optimizer()'s
    optimizer as it builds it, as when the checkpoint holds no optimizer."""
    node = _follow_saved(graph, 0, tuple(root.split("/")))
    if node is None:
        return False
    saved = dict(_saved_variables(graph, node))
    if (_KERAS_ITERATIONS,) not in saved or not set(saved) <= _BEFORE_FIRST_STEP:
        return False
    iterations = graph.nodes[saved[(_KERAS_ITERATIONS,)]].attributes[0].checkpoint_key
    return int(reader.get_tensor(iterations)) == 0


def _global_step(reader: Any, layout: TrackableCheckpoint, path: str) -> int:
    for name in (layout.step, _TF1_STEP_NAME):
        if name is None:
            continue
        for key in (name + _VARIABLE_SUFFIX, name):
            if reader.has_tensor(key):
                return int(reader.get_tensor(key))
    step = step_in_name(path)
    if step is None:
        raise CheckpointError(
            f"cannot tell the global step of {path}: it has no {layout.step or _TF1_STEP_NAME!r} "
            "variable and its name does not end in -<step>",
            path,
        )
    return step


def find_mismatches(
    graph: TrackableObjectGraph,
    shapes: Mapping[str, list[int]],
    roots: Mapping[str, Any],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(missing, unexpected, mismatched) variables under each named root (a top-level name, or
    a path such as "model/optimizer"), by object path.

    Paths follow the local names TensorFlow uses for dependencies (`model/_operations/4/
    _kernel`); a Keras variable is also named by its own path (`age_weights/kernel`).
    """
    missing: list[str] = []
    unexpected: list[str] = []
    mismatched: list[str] = []
    for root_name, root in roots.items():
        root_node = _follow_saved(graph, 0, tuple(root_name.split("/")))
        for path, variable in _python_variables(root):
            label = _variable_label(root_name, path, variable)
            node = None if root_node is None else _follow_saved(graph, root_node, path)
            if node is None or not graph.nodes[node].attributes:
                missing.append(label)
                continue
            saved_shape = list(shapes.get(graph.nodes[node].attributes[0].checkpoint_key, []))
            model_shape = list(variable.shape)
            if saved_shape != model_shape:
                mismatched.append(f"{label}: checkpoint {saved_shape}, model {model_shape}")
        if root_node is None:
            continue
        for path, node in _saved_variables(graph, root_node):
            if path[:1] == (_KERAS_OPTIMIZER,) and is_keras_model(root):
                continue
            if _follow_python(root, path) is None:
                key = graph.nodes[node].attributes[0].checkpoint_key
                unexpected.append(f"{'/'.join((root_name, *path))} {list(shapes.get(key, []))}")
    return tuple(missing), tuple(unexpected), tuple(mismatched)


def _variable_label(root_name: str, path: tuple[str, ...], variable: Any) -> str:
    location = "/".join((root_name, *path))
    own_name = getattr(variable, "path", None) or getattr(variable, "name", None)
    return f"{own_name} ({location})" if own_name else location


def _children(obj: Any) -> dict[str, Any]:
    import tensorflow as tf

    return dict(tf.train.TrackableView.children(obj))


def _is_variable(obj: object) -> bool:
    import keras
    import tensorflow as tf

    return isinstance(obj, tf.Variable | keras.Variable)


def _python_variables(root: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each variable reachable from `root`, once, with its shortest dependency path."""
    seen = {id(root)}
    queue: deque[tuple[tuple[str, ...], Any]] = deque([((), root)])
    while queue:
        path, obj = queue.popleft()
        if _is_variable(obj):
            yield path, obj
            continue
        for name, child in _children(obj).items():
            if id(child) not in seen:
                seen.add(id(child))
                queue.append(((*path, name), child))


def _saved_variables(
    graph: TrackableObjectGraph, root_node: int
) -> Iterator[tuple[tuple[str, ...], int]]:
    """Each checkpointed value node reachable from `root_node`, once, with its shortest path."""
    seen = {root_node}
    queue: deque[tuple[tuple[str, ...], int]] = deque([((), root_node)])
    while queue:
        path, node = queue.popleft()
        if graph.nodes[node].attributes:
            yield path, node
        for child in graph.nodes[node].children:
            if child.node_id not in seen:
                seen.add(child.node_id)
                queue.append(((*path, child.local_name), child.node_id))


def _follow_saved(graph: TrackableObjectGraph, node: int, path: tuple[str, ...]) -> int | None:
    for name in path:
        children = {child.local_name: child.node_id for child in graph.nodes[node].children}
        if name not in children:
            return None
        node = children[name]
    return node


def _follow_python(obj: Any, path: tuple[str, ...]) -> Any | None:
    for name in path:
        if _is_variable(obj):
            return None
        obj = _children(obj).get(name)
        if obj is None:
            return None
    return obj
