"""The DNN train step with dropout, checked against the Estimator's own train graph.

Dropout draws random masks, so one train step of the rebuilt graph cannot reproduce the step
recorded in the reference. The oracle here is the Estimator's own train graph instead (the
multi-mode export it wrote, `reference/all_modes`, loaded on TF 2.21): both graphs get the
same variables and the same uniform noise fed into their dropout ops, and must then take the
same step. dnn_classifier's second hidden layer is dead at step 150 (every ReLU output is 0,
so dropout changes nothing there); both graphs start from the checkpoint plus the same random
offsets, which bring it back to life, and the test checks that dropout then matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from canned_support import (
    DATA,
    TOLERANCE,
    Built,
    build,
    copy_checkpoint,
    max_difference,
    reference,
    restored,
    supervised_values,
)

NAME = "dnn_classifier"


def _dropout_noise(graph: Any) -> list[Any]:
    """The uniform noise tensors of the dropout ops, first hidden layer first."""
    ops = [
        op for op in graph.get_operations() if op.type == "RandomUniform" and "dropout" in op.name
    ]
    return [op.outputs[0] for op in sorted(ops, key=lambda op: op.name)]


def _noise(seed: int, widths: tuple[int, ...], batch: int) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    return [rng.uniform(size=(batch, width)).astype(np.float32) for width in widths]


def _offsets(session: Any, graph: Any) -> dict[str, np.ndarray]:
    """The same random offset for every model weight of either graph."""
    import tensorflow as tf

    rng = np.random.RandomState(5)
    with graph.as_default():
        weights = sorted(tf.compat.v1.trainable_variables(), key=lambda v: v.op.name)
        return {
            v.op.name: session.run(v) + rng.normal(scale=0.5, size=v.shape).astype(np.float32)
            for v in weights
        }


def _step(
    session: Any,
    graph: Any,
    feed: dict[Any, Any],
    train_op: Any,
    loss: Any,
    noises: list[list[np.ndarray]],
    start: dict[str, np.ndarray],
) -> tuple[float, dict[str, np.ndarray]]:
    """From `start`, the loss (first noise) and every variable after one step (second noise)."""
    import tensorflow as tf

    with graph.as_default():
        variables = tf.compat.v1.global_variables()
        for variable in variables:
            if variable.op.name in start:
                variable.load(start[variable.op.name], session)
        tensors = _dropout_noise(graph)
        value = session.run(loss, {**feed, **dict(zip(tensors, noises[0], strict=True))})
        session.run(train_op, {**feed, **dict(zip(tensors, noises[1], strict=True))})
        return float(value), {v.op.name: session.run(v) for v in variables}


def _oracle(
    values: dict[str, Any], noises: list[list[np.ndarray]], start: dict[str, np.ndarray]
) -> tuple[float, dict[str, np.ndarray]]:
    """The step the Estimator's own train graph takes."""
    import tensorflow as tf

    export = DATA / NAME / reference(NAME)["all_modes_export"]
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["train"], str(export))
        signature = meta.signature_def["train"]
        feed = {
            graph.get_tensor_by_name(info.name): values[key]
            for key, info in signature.inputs.items()
        }
        loss = graph.get_tensor_by_name(signature.outputs["loss"].name)
        (train_op,) = graph.get_collection("saved_model_train_op")
        return _step(session, graph, feed, train_op, loss, noises, start)


def test_train_step_with_dropout_matches_the_estimator_graph_under_the_same_noise(
    tmp_path: Path,
) -> None:
    values = supervised_values(NAME)
    batch = len(values["label"])
    noises = [_noise(1, (8, 4), batch), _noise(2, (8, 4), batch)]
    built: Built = build(NAME, "train")
    assert len(_dropout_noise(built.graph)) == 2
    feed = built.feed(values)
    with restored(built, copy_checkpoint(NAME, tmp_path)) as session:
        start = _offsets(session, built.graph)
        loss, after = _step(
            session, built.graph, feed, built.spec.train_op, built.spec.loss, noises, start
        )
        kept = [[np.ones_like(n) for n in noises[0]]] * 2
        loss_without_dropout, _ = _step(
            session, built.graph, feed, built.spec.train_op, built.spec.loss, kept, start
        )
    assert abs(loss - loss_without_dropout) > 1e-3, (
        "dropout must change the loss for the check to mean anything"
    )
    expected_loss, expected = _oracle(values, noises, start)
    assert abs(loss - expected_loss) <= TOLERANCE
    assert sorted(after) == sorted(expected)
    for key, value in after.items():
        assert max_difference(value, expected[key]) <= TOLERANCE, key
    assert int(after["global_step"]) == 151
