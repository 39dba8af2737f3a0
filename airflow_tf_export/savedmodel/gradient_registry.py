"""The gradient functions that tracing an export registered process-wide, and their release.

Tracing a tf.custom_gradient function into a graph registers its gradient function in
TensorFlow's global gradient registry under a new name (`CustomGradient-<n>`), and
TensorFlow never removes it. That function holds the traced graph, and the graph holds the
variables it captured. A Keras optimizer step traces one (the all-reduce of the gradients),
so without a release every train-mode export kept all the model's variables in memory until
the process ended.

Only the names used by ops of the graphs the export traced itself are released: those ops
and names exist nowhere else. Ops inside a function they call (a user's tf.function, whose
trace its own cache keeps and reuses) are left alone; the branches of tf.cond, tf.while_loop
and tf.switch_case in those graphs belong to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_GRADIENT_OP_TYPE = "_gradient_op_type"
# Ops whose function attributes are bodies built while tracing the graph that holds them.
_CONTROL_FLOW_OPS = frozenset(
    {"If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase"}
)


def custom_gradient_names(functions: Iterable[Any]) -> set[str]:
    """The registry names of the custom gradients of ops in these concrete functions' own
    graphs, control-flow branches included."""
    names: set[str] = set()
    for function in functions:
        graph_def = function.graph.as_graph_def()
        library = {body.signature.name: body for body in graph_def.library.function}
        pending = [list(graph_def.node)]
        visited: set[str] = set()
        while pending:
            for node in pending.pop():
                if _GRADIENT_OP_TYPE in node.attr:
                    names.add(node.attr[_GRADIENT_OP_TYPE].s.decode())
                if node.op not in _CONTROL_FLOW_OPS:
                    continue
                for value in node.attr.values():
                    bodies = [value.func.name, *(f.name for f in value.list.func)]
                    for name in bodies:
                        if name in library and name not in visited:
                            visited.add(name)
                            pending.append(list(library[name].node_def))
    return names


def unregister_gradients(names: Iterable[str]) -> None:
    """Remove these names from TensorFlow's gradient registry."""
    from tensorflow.python.framework import ops

    for name in names:
        # TensorFlow has no public way to unregister a gradient function.
        ops.gradient_registry._registry.pop(name, None)
