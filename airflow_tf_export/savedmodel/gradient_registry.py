"""The gradient functions that tracing an export registered process-wide, and their release.

Tracing a tf.custom_gradient function into a graph registers its gradient function in
TensorFlow's global gradient registry under a new name (`CustomGradient-<n>`), and
TensorFlow never removes it. That function holds the traced graph, and the graph holds the
variables it captured. A Keras optimizer step traces one (the all-reduce of the gradients),
so without a release every train-mode export kept all the model's variables in memory until
the process ended. The names an export's functions use are unique to those functions, so
removing them touches nothing else in the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_GRADIENT_OP_TYPE = "_gradient_op_type"


def custom_gradient_names(functions: Iterable[Any]) -> set[str]:
    """The registry names of the custom gradients that ops in these concrete functions (and
    in the functions they call) use."""
    names: set[str] = set()
    for function in functions:
        graph_def = function.graph.as_graph_def()
        nodes = list(graph_def.node)
        for library_function in graph_def.library.function:
            nodes.extend(library_function.node_def)
        names.update(
            node.attr[_GRADIENT_OP_TYPE].s.decode()
            for node in nodes
            if _GRADIENT_OP_TYPE in node.attr
        )
    return names


def unregister_gradients(names: Iterable[str]) -> None:
    from tensorflow.python.framework import ops

    for name in names:
        # TensorFlow has no public way to unregister a gradient function.
        ops.gradient_registry._registry.pop(name, None)
