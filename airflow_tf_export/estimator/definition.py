"""`Estimator`: a model_fn and its receivers as a model definition for export.

What `tf.estimator.Estimator(model_fn, params=...)` was for `export_saved_model` and
`experimental_export_all_saved_models`, on TensorFlow 2.21: it implements the savedmodel
ExportDefinition protocol, so `write_saved_model`, the export operators and the DAG
templates take it as they take a Keras ModelDefinition. Its checkpoints are the TF1
name-based ones an Estimator wrote (`model.ckpt-<step>`), restored by variable name.

Constructing one checks the arguments without TensorFlow; the graphs are built when a
SavedModel is written (graph_writer.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_tf_export.estimator.model_fn import model_fn_arguments
from airflow_tf_export.savedmodel.errors import DefinitionError
from airflow_tf_export.savedmodel.modes import EVAL, SERVE, TRAIN, normalize_modes

if TYPE_CHECKING:
    from airflow_tf_export.storage.base import WrittenModel


class Estimator:
    """An Estimator-style model_fn, exported in TF1 graph mode (tf.estimator.Estimator).

    model_fn        `model_fn(features, labels, mode, params, config)` -> EstimatorSpec, each
                    argument after `features` optional, called once per exported mode in a
                    fresh graph with `mode` a ModeKeys value. `config` is always None:
                    exporting has no RunConfig.
    params          dict of hyperparameters passed to model_fn (a deep copy per call); None
                    passes {}.
    serving_input_receiver_fn
                    () -> ServingInputReceiver: the input of the `serve` MetaGraphDef (the
                    argument of export_saved_model).
    supervised_input_receiver_fn
                    () -> SupervisedInputReceiver: the features and labels of the `train` and
                    `eval` MetaGraphDefs (input_receiver_fn_map[TRAIN] and [EVAL]).

    Subclasses (the canned estimators) pass their own model_fn and receivers to __init__.
    """

    def __init__(
        self,
        model_fn: Callable[..., Any],
        params: Mapping[str, Any] | None = None,
        *,
        serving_input_receiver_fn: Callable[[], Any] | None = None,
        supervised_input_receiver_fn: Callable[[], Any] | None = None,
    ) -> None:
        if params is not None and not isinstance(params, Mapping):
            raise DefinitionError(f"params must be a dict of hyperparameters, got {params!r}")
        for name, receiver_fn in (
            ("serving_input_receiver_fn", serving_input_receiver_fn),
            ("supervised_input_receiver_fn", supervised_input_receiver_fn),
        ):
            if receiver_fn is not None and not callable(receiver_fn):
                raise DefinitionError(
                    f"{name} must be a function taking no arguments, got {receiver_fn!r}"
                )
        self._model_fn_arguments = model_fn_arguments(model_fn, params)
        self._model_fn = model_fn
        self._params = copy.deepcopy(dict(params or {}))
        self._serving_input_receiver_fn = serving_input_receiver_fn
        self._supervised_input_receiver_fn = supervised_input_receiver_fn

    @property
    def model_fn(self) -> Callable[..., Any]:
        return self._model_fn

    @property
    def model_fn_arguments(self) -> frozenset[str]:
        """The argument names model_fn takes (of features, labels, mode, params, config)."""
        return self._model_fn_arguments

    @property
    def params(self) -> dict[str, Any]:
        """A deep copy of the params, so that a model_fn changing them changes no other mode."""
        return copy.deepcopy(self._params)

    @property
    def serving_input_receiver_fn(self) -> Callable[[], Any] | None:
        return self._serving_input_receiver_fn

    @property
    def supervised_input_receiver_fn(self) -> Callable[[], Any] | None:
        return self._supervised_input_receiver_fn

    @property
    def keras_weights(self) -> bool:
        """False: an Estimator's checkpoints are TF checkpoint prefixes (`model.ckpt-<step>`)."""
        return False

    def check_modes(self, modes: Iterable[str]) -> None:
        """Raise DefinitionError naming the receiver function a mode needs and lacks."""
        for mode in normalize_modes(tuple(modes)):
            if mode in (TRAIN, EVAL) and self._supervised_input_receiver_fn is None:
                raise DefinitionError(
                    f"the Estimator cannot export mode {mode!r}: give it a "
                    "supervised_input_receiver_fn (the features and labels of the train and "
                    "eval graphs)"
                )
            if mode == SERVE and self._serving_input_receiver_fn is None:
                raise DefinitionError(
                    f"the Estimator cannot export mode {mode!r}: give it a "
                    "serving_input_receiver_fn"
                )

    def write(
        self, checkpoint_path: str, export_dir: Path, modes: tuple[str, ...], *, as_text: bool
    ) -> WrittenModel:
        """Build one graph per mode, restore `checkpoint_path` by variable name and write
        them with tf.compat.v1.saved_model.Builder (graph_writer.py)."""
        from airflow_tf_export.estimator.graph_writer import write_graph_saved_model

        return write_graph_saved_model(self, checkpoint_path, export_dir, modes, as_text=as_text)

    def __repr__(self) -> str:
        name = getattr(self._model_fn, "__qualname__", repr(self._model_fn))
        return f"{type(self).__name__}(model_fn={name})"
