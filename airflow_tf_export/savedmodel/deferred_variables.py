"""Build a Keras model without running its initializers, for a checkpoint to fill once.

Keras 3 runs each variable's initializer when a layer creates it, and an export then
overwrites every value from the checkpoint: for benchmarks/bench_export.py's 10 MB model the
random draws and the memory they touch were a third of a single-mode export. Keras defers
initializers inside a `keras.StatelessScope(initialize_variables=False)`; the deferred
variables are then given TensorFlow variables without a value, which the restore fills.

Only a build that creates structure is deferred (functional and Sequential models, layers
built from shapes). A build that reads or assigns a variable's value (calling the model on
data, tracing a tf.function, set_weights, compiling) would see placeholders or lose what it
assigned, so the first such read or assign ends the deferral and the build runs as usual.

Keras and TensorFlow have no public API for this, so this module, and only this one, relies
on internals: Keras 3's `Variable._value` / `_initialize` / `_deferred_initialize` /
`_map_aggregation` / `_map_synchronization`, its "uninitialized_variables" list and
"object_name_uids" counts and the StatelessScope hooks, and TensorFlow's
UninitializedVariable (what tf.saved_model.load creates before restoring).
tests/integration/savedmodel/test_deferred_variables.py pins them, and the rest of the
SavedModel tests compare exports with the trained models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Keras' per-thread list of the variables created inside a StatelessScope, and its counts of
# the automatic layer names given so far.
_KERAS_PENDING = "uninitialized_variables"
_KERAS_NAME_UIDS = "object_name_uids"


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


def build_deferred(build: Callable[[], Any]) -> DeferredBuild:
    """Call `build` with Keras initializers deferred, or as usual when it uses values.

    A build that fails while deferred is called again as usual (so an error of its own is
    raised from that call); variables the first call created keep working (they get their
    initializers' values), in case the build caches layers between calls.
    """
    import keras
    from keras.src.backend.common import global_state

    class Deferring(keras.StatelessScope):
        """Defers initializers; a read or assign of a value ends the deferral.

        It raises a plain ValueError: autograph passes that type through a traced
        tf.function unchanged, and Keras raises it too for a variable created from a value.
        """

        def __init__(self) -> None:
            super().__init__(initialize_variables=False)

        def get_current_value(self, variable: Any) -> Any:
            if variable._value is None:
                raise ValueError(f"build_model reads {variable.path}")
            return None

        def add_update(self, update: Any) -> None:
            raise ValueError(f"build_model assigns {update[0].path}")

    earlier = global_state.get_global_attribute(_KERAS_PENDING, [], set_to_default=True)
    uids = global_state.get_global_attribute(_KERAS_NAME_UIDS)
    uids = None if uids is None else uids.copy()
    created = _CreatedVariables()
    global_state.set_global_attribute(_KERAS_PENDING, created)
    failed = False
    try:
        with Deferring():
            built = build()
    except ValueError:
        failed = True
    finally:
        current = global_state.get_global_attribute(_KERAS_PENDING)
        global_state.set_global_attribute(_KERAS_PENDING, earlier)
    if current is not created:
        # A keras.backend.clear_session() in the build replaced Keras' list.
        failed = True
        for variable in current or ():
            if variable._value is None:
                variable._deferred_initialize()
    result = DeferredBuild(
        None if failed else built,
        tuple(_without_value(v, created.name_scopes[id(v)]) for v in created if v._value is None),
    )
    if not failed:
        return result
    # What the failed call created keeps working (a build may cache layers), and the layers
    # of the usual build get the names they would have had.
    result.initialize_unrestored()
    global_state.set_global_attribute(_KERAS_NAME_UIDS, uids)
    return DeferredBuild(build(), ())


class _CreatedVariables(list[Any]):
    """Keras' list of deferred variables, noting the TensorFlow name scope each was created
    in: Keras names a variable's TensorFlow variable in it."""

    def __init__(self) -> None:
        super().__init__()
        self.name_scopes: dict[int, str] = {}

    def append(self, variable: Any) -> None:
        import tensorflow as tf

        self.name_scopes[id(variable)] = tf.get_current_name_scope()
        super().append(variable)


def _without_value(variable: Any, name_scope: str) -> DeferredVariable:
    from tensorflow.python.ops.resource_variable_ops import UninitializedVariable

    initializer = variable._initializer
    variable._initialize(
        UninitializedVariable(
            shape=variable.shape,
            dtype=variable.dtype,
            name=f"{name_scope}/{variable.name}" if name_scope else variable.name,
            trainable=variable.trainable,
            aggregation=variable._map_aggregation(variable.aggregation),
            synchronization=variable._map_synchronization(variable.synchronization),
        )
    )
    variable._initializer = None
    return DeferredVariable(variable, initializer)
