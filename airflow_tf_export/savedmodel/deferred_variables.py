"""Build a Keras model without running its initializers, for a checkpoint to fill once.

Keras 3 runs each variable's initializer when a layer creates it, and an export then
overwrites every value from the checkpoint: for benchmarks/bench_export.py's 10 MB model the
random draws and the memory they touch were a third of a single-mode export. Keras defers
initializers inside `keras.StatelessScope(initialize_variables=False)` but has no public way
to hand a deferred variable its value, so this module, and only this one, relies on
internals: Keras 3's `Variable._initialize`, `_map_aggregation` / `_map_synchronization` and
its "uninitialized_variables" list, and TensorFlow's UninitializedVariable (what
tf.saved_model.load creates before restoring). tests/integration/savedmodel/
test_deferred_variables.py pins them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

Built = TypeVar("Built")

# Keras' per-thread list of the variables created inside a StatelessScope.
_KERAS_PENDING = "uninitialized_variables"


@dataclass(frozen=True)
class DeferredVariable:
    """A Keras variable holding a TensorFlow variable without a value, and its initializer."""

    keras_variable: Any
    initializer: Any


@dataclass(frozen=True)
class DeferredBuild:
    """What a build made, and the variables it left for the checkpoint to fill."""

    built: Any
    deferred: tuple[DeferredVariable, ...]

    def initialize_unrestored(self) -> None:
        """Give each variable the checkpoint did not fill its initializer's value."""
        for entry in self.deferred:
            variable = entry.keras_variable
            if not variable.value.is_initialized():
                variable.assign(entry.initializer(variable.shape, dtype=variable.dtype))


def build_deferred(build: Callable[[], Built]) -> DeferredBuild:
    """Call `build` with Keras initializers deferred.

    A build that cannot run deferred (it creates a Keras variable from a concrete value, as
    compiling a model does for the optimizer's iteration count) is called again as usual,
    and then nothing is deferred.
    """
    import keras
    from keras.src.backend.common import global_state

    earlier = global_state.get_global_attribute(_KERAS_PENDING, [], set_to_default=True)
    global_state.set_global_attribute(_KERAS_PENDING, [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            built = build()
        created = tuple(global_state.get_global_attribute(_KERAS_PENDING))
    except ValueError:
        return DeferredBuild(build(), ())
    finally:
        global_state.set_global_attribute(_KERAS_PENDING, earlier)
    return DeferredBuild(built, tuple(_without_value(variable) for variable in created))


def _without_value(variable: Any) -> DeferredVariable:
    from tensorflow.python.ops.resource_variable_ops import UninitializedVariable

    initializer = variable._initializer
    variable._initialize(
        UninitializedVariable(
            shape=variable.shape,
            dtype=variable.dtype,
            # Keras would have named it in the TensorFlow name scope open when the layer
            # created it; its Keras path is that name for functional and Sequential models.
            name=variable.path,
            trainable=variable.trainable,
            aggregation=variable._map_aggregation(variable.aggregation),
            synchronization=variable._map_synchronization(variable.synchronization),
        )
    )
    variable._initializer = None
    return DeferredVariable(variable, initializer)
