"""The legacy optimizer updates for the options the committed model_dirs do not use.

The model_dirs cover each optimizer with its defaults (test_canned_graphs.py). Here every
other option (momentum, Nesterov, centered RMSprop, AMSGrad, FTRL's L1, L2, beta, shrinkage and
learning rate power, accumulator start values, epsilons) takes two steps on a dense variable
and on an embedding (a sparse gradient with a repeated row), checked against the update rules
written out in NumPy: the TensorFlow kernels' rules for the kernels the legacy optimizers
called, and the legacy optimizers' own rules where they computed the update themselves (Adam
and RMSprop without momentum on sparse gradients, RMSprop without momentum on dense ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from airflow_tf_export.estimator.canned.optimizer_updates import minimize
from airflow_tf_export.estimator.canned.optimizers import OptimizerSpec, resolve_optimizer

DENSE_GRADIENT = np.array([[0.5, -1.0], [0.25, 2.0], [-0.75, 0.1]])
ROWS = np.array([0, 2, 2])  # row 2 looked up twice: its gradient is the sum of both slices
ROW_GRADIENTS = np.array([[0.3, -0.6], [1.2, 0.4], [-0.5, 0.9]])
DENSE_START = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]])
SPARSE_START = np.array([[0.2, 0.1], [-0.3, 0.5], [0.7, -0.4], [0.05, 0.0]])


def _keras(kind: str, **options: Any) -> Any:
    import keras

    return getattr(keras.optimizers, kind)(**options)


CASES = {
    "adagrad": lambda: _keras(
        "Adagrad", learning_rate=0.1, initial_accumulator_value=0.2, epsilon=1e-3
    ),
    "adam": lambda: _keras("Adam", learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-3),
    "adam_amsgrad": lambda: _keras(
        "Adam", learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-3, amsgrad=True
    ),
    "ftrl": lambda: _keras(
        "Ftrl",
        learning_rate=0.1,
        initial_accumulator_value=0.3,
        l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        beta=0.3,
    ),
    "ftrl_shrinkage_power": lambda: _keras(
        "Ftrl",
        learning_rate=0.1,
        learning_rate_power=-0.3,
        l1_regularization_strength=0.2,
        l2_shrinkage_regularization_strength=0.05,
    ),
    "rmsprop": lambda: _keras("RMSprop", learning_rate=0.01, rho=0.8, epsilon=1e-3),
    "rmsprop_centered": lambda: _keras(
        "RMSprop", learning_rate=0.01, rho=0.8, epsilon=1e-3, centered=True
    ),
    "rmsprop_momentum": lambda: _keras(
        "RMSprop", learning_rate=0.01, rho=0.8, momentum=0.5, epsilon=1e-3
    ),
    "rmsprop_momentum_centered": lambda: _keras(
        "RMSprop", learning_rate=0.01, rho=0.8, momentum=0.5, epsilon=1e-3, centered=True
    ),
    "sgd": lambda: _keras("SGD", learning_rate=0.1),
    "sgd_momentum": lambda: _keras("SGD", learning_rate=0.1, momentum=0.7),
    "sgd_nesterov": lambda: _keras("SGD", learning_rate=0.1, momentum=0.7, nesterov=True),
}


class _NumpyOptimizer:
    """The update rules, one variable at a time; `rows` None means a dense gradient."""

    def __init__(self, spec: OptimizerSpec) -> None:
        self.spec = spec
        self.h = dict(spec.hyperparameters)
        self.o = dict(spec.options)
        self.slots: dict[tuple[int, str], np.ndarray] = {}
        self.iterations = 0

    def slot(self, key: int, name: str, like: np.ndarray, initial: float = 0.0) -> np.ndarray:
        return self.slots.setdefault((key, name), np.full_like(like, initial))

    def step(self, key: int, var: np.ndarray, grad: np.ndarray, rows: np.ndarray | None) -> None:
        getattr(self, self.spec.kind.lower())(key, var, grad, rows)

    def adagrad(self, key: int, var: np.ndarray, grad: np.ndarray, rows: Any) -> None:
        acc = self.slot(key, "accumulator", var, self.o["initial_accumulator_value"])
        at = slice(None) if rows is None else rows
        acc[at] += grad**2
        var[at] -= self.h["learning_rate"] * grad / (np.sqrt(acc[at]) + self.o["epsilon"])

    def adam(self, key: int, var: np.ndarray, grad: np.ndarray, rows: Any) -> None:
        b1, b2, eps = self.h["beta_1"], self.h["beta_2"], self.o["epsilon"]
        t = self.iterations + 1
        alpha = self.h["learning_rate"] * np.sqrt(1 - b2**t) / (1 - b1**t)
        m, v = self.slot(key, "m", var), self.slot(key, "v", var)
        full = np.zeros_like(var)
        if rows is None:
            full = grad
        else:
            full[rows] = grad  # every row decays; the others get no gradient
        m[:] = b1 * m + (1 - b1) * full
        v[:] = b2 * v + (1 - b2) * full**2
        denominator = v
        if self.o["amsgrad"]:
            vhat = self.slot(key, "vhat", var)
            vhat[:] = np.maximum(vhat, v)
            denominator = vhat
        var -= alpha * m / (np.sqrt(denominator) + eps)

    def ftrl(self, key: int, var: np.ndarray, grad: np.ndarray, rows: Any) -> None:
        lr, power = self.h["learning_rate"], self.h["learning_rate_power"]
        l1 = self.h["l1_regularization_strength"]
        l2 = self.h["l2_regularization_strength"] + self.h["beta"] / (2 * lr)
        shrinkage = self.o["l2_shrinkage_regularization_strength"]
        acc = self.slot(key, "accumulator", var, self.o["initial_accumulator_value"])
        linear = self.slot(key, "linear", var)
        at = slice(None) if rows is None else rows
        new_acc = acc[at] + grad**2
        shrunk = grad + 2 * shrinkage * var[at]
        linear[at] += shrunk - (new_acc**-power - acc[at] ** -power) / lr * var[at]
        quadratic = new_acc**-power / lr + 2 * l2
        value = (np.sign(linear[at]) * l1 - linear[at]) / quadratic
        var[at] = np.where(np.abs(linear[at]) > l1, value, 0.0)
        acc[at] = new_acc

    def rmsprop(self, key: int, var: np.ndarray, grad: np.ndarray, rows: Any) -> None:
        lr, rho, eps = self.h["learning_rate"], self.h["rho"], self.o["epsilon"]
        ms = self.slot(key, "rms", var)
        at = slice(None) if rows is None else rows
        if self.h["momentum"] > 0:  # the kernels: epsilon under the square root, rows only
            ms[at] = rho * ms[at] + (1 - rho) * grad**2
            denominator = ms[at]
            if self.o["centered"]:
                mg = self.slot(key, "mg", var)
                mg[at] = rho * mg[at] + (1 - rho) * grad
                denominator = ms[at] - mg[at] ** 2
            mom = self.slot(key, "momentum", var)
            mom[at] = self.h["momentum"] * mom[at] + lr * grad / np.sqrt(denominator + eps)
            var[at] -= mom[at]
            return
        # The legacy optimizer's own rule: epsilon outside the root, every row of ms decays.
        full = np.zeros_like(var)
        full[at] = grad
        ms[:] = rho * ms + (1 - rho) * full**2
        denominator = ms[at]
        if self.o["centered"]:
            mg = self.slot(key, "mg", var)
            mg[:] = rho * mg + (1 - rho) * full
            denominator = ms[at] - mg[at] ** 2
        var[at] -= lr * grad / (np.sqrt(denominator) + eps)

    def sgd(self, key: int, var: np.ndarray, grad: np.ndarray, rows: Any) -> None:
        lr, momentum = self.h["learning_rate"], self.h["momentum"]
        at = slice(None) if rows is None else rows
        if momentum == 0:
            var[at] -= lr * grad
            return
        accumulator = self.slot(key, "momentum", var)
        accumulator[at] = momentum * accumulator[at] - lr * grad
        var[at] += momentum * accumulator[at] - lr * grad if self.o["nesterov"] else accumulator[at]


def _expected(spec: OptimizerSpec, steps: int) -> tuple[np.ndarray, np.ndarray]:
    numpy_optimizer = _NumpyOptimizer(spec)
    dense, sparse = DENSE_START.copy(), SPARSE_START.copy()
    unique = np.unique(ROWS)
    summed = np.stack([ROW_GRADIENTS[np.equal(ROWS, row)].sum(axis=0) for row in unique])
    for _ in range(steps):
        numpy_optimizer.step(0, dense, DENSE_GRADIENT, None)
        numpy_optimizer.step(1, sparse, summed, unique)
        numpy_optimizer.iterations += 1
    return dense, sparse


def _two_steps(spec: OptimizerSpec) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        step = tf.compat.v1.train.get_or_create_global_step()
        dense = tf.compat.v1.Variable(
            DENSE_START.astype(np.float32), name="dense", use_resource=True
        )
        table = tf.compat.v1.Variable(
            SPARSE_START.astype(np.float32), name="table", use_resource=True
        )
        loss = tf.reduce_sum(dense * DENSE_GRADIENT.astype(np.float32)) + tf.reduce_sum(
            tf.gather(table, ROWS) * ROW_GRADIENTS.astype(np.float32)
        )
        with tf.name_scope("training"):
            train_op = minimize(spec, loss, [dense, table], step)
        session.run(tf.compat.v1.global_variables_initializer())
        for _ in range(2):
            session.run(train_op)
        names = sorted(v.op.name for v in tf.compat.v1.global_variables())
        return session.run(dense), session.run(table), names, int(session.run(step))


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_steps_follow_the_update_rules(case: str) -> None:
    spec = resolve_optimizer(CASES[case](), argument="optimizer", default_learning_rate=None)
    dense, table, _, step = _two_steps(spec)
    expected_dense, expected_table = _expected(spec, 2)
    np.testing.assert_allclose(dense, expected_dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table, expected_table, rtol=1e-5, atol=1e-6)
    assert step == 2


@pytest.mark.parametrize(
    ("case", "slots"),
    [
        ("adam_amsgrad", {"m", "v", "vhat"}),
        ("rmsprop_momentum_centered", {"rms", "momentum", "mg"}),
        ("sgd", set()),
        ("sgd_nesterov", {"momentum"}),
    ],
)
def test_slot_variables_are_the_legacy_optimizer_s(case: str, slots: set[str]) -> None:
    spec = resolve_optimizer(CASES[case](), argument="optimizer", default_learning_rate=None)
    _, _, names, _ = _two_steps(spec)
    hyperparameters = {f"training/{spec.kind}/{h}" for h in spec.hyperparameters}
    slot_names = {f"training/{spec.kind}/{v}/{s}" for v in ("dense", "table") for s in slots}
    assert set(names) == {"global_step", "dense", "table"} | hyperparameters | slot_names
