"""Graph-mode train steps with the update math and variable names of the Keras legacy optimizers.

`minimize` builds, in the current graph, what `optimizer.get_updates(loss, variables)` built
for a canned estimator in TF 2.15: the gradients, the optimizer's variables (its iteration
count when it does not use the global step, its hyperparameters, its slots) named exactly as
the checkpoint holds them, one update per variable (the sparse update for the rows an
embedding lookup touched, as Keras applied it) and the increment of the iteration count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.estimator.canned.optimizers import OptimizerSpec


def _slots(spec: OptimizerSpec) -> tuple[tuple[str, float], ...]:
    """The slot variables the legacy optimizer kept per variable, with their initial value."""
    momentum = (("momentum", 0.0),) if spec.has_momentum else ()
    if spec.kind == "Adagrad":
        return (("accumulator", float(spec.options["initial_accumulator_value"])),)
    if spec.kind == "Adam":
        return (("m", 0.0), ("v", 0.0), *((("vhat", 0.0),) if spec.options["amsgrad"] else ()))
    if spec.kind == "Ftrl":
        return (("accumulator", float(spec.options["initial_accumulator_value"])), ("linear", 0.0))
    if spec.kind == "RMSprop":
        return (("rms", 0.0), *momentum, *((("mg", 0.0),) if spec.options["centered"] else ()))
    return momentum


def minimize(spec: OptimizerSpec, loss: Any, variables: Sequence[Any], iterations: Any) -> Any:
    """The op that applies one step of `spec` to `variables` and adds 1 to the iteration count.

    `iterations` is the global step for the optimizer that owns it, or None: the optimizer
    then has its own `<name>/iter` variable, as the linear optimizer of a
    DNNLinearCombined estimator had. Call it inside the `training` name scope.
    """
    import tensorflow as tf

    with tf.name_scope(f"{spec.name}/gradients"):
        gradients = tf.compat.v1.gradients(loss, list(variables))
    missing = [v.op.name for v, g in zip(variables, gradients, strict=True) if g is None]
    if missing:
        raise ValueError(f"no gradient of the loss for the variables {missing}")
    with tf.name_scope(spec.name):
        state = _OptimizerState.create(spec, variables, iterations)
        updates = [
            state.apply(gradient, variable)
            for gradient, variable in zip(gradients, variables, strict=True)
        ]
        with tf.control_dependencies([tf.group(updates)]):
            return state.iterations.assign_add(1, read_value=False)


def _variable(initial_value: Any, dtype: Any, name: str) -> Any:
    import tensorflow as tf

    return tf.compat.v1.Variable(
        initial_value, dtype=dtype, name=name, trainable=False, use_resource=True
    )


@dataclass(frozen=True)
class _OptimizerState:
    """One optimizer's variables in the graph and the values its updates share."""

    spec: OptimizerSpec
    iterations: Any
    hyperparameters: dict[str, Any]
    slots: dict[tuple[str, str], Any]
    coefficients: dict[str, Any]

    @classmethod
    def create(
        cls, spec: OptimizerSpec, variables: Sequence[Any], iterations: Any
    ) -> _OptimizerState:
        """The optimizer's variables, named as the legacy optimizer named them."""
        import tensorflow as tf

        if iterations is None:
            iterations = _variable(0, tf.int64, "iter")
        hyperparameters = {
            name: _variable(value, tf.float32, name)
            for name, value in sorted(spec.hyperparameters.items())
        }
        slots = {
            (variable.op.name, slot): _variable(
                tf.fill(variable.shape, tf.constant(initial, variable.dtype.base_dtype)),
                variable.dtype.base_dtype,
                f"{variable.op.name}/{slot}",
            )
            for slot, initial in _slots(spec)
            for variable in variables
        }
        coefficients = _coefficients(spec, hyperparameters, iterations)
        return cls(spec, iterations, hyperparameters, slots, coefficients)

    def slot(self, variable: Any, name: str) -> Any:
        return self.slots[(variable.op.name, name)]

    def apply(self, gradient: Any, variable: Any) -> Any:
        """The update of one variable: dense, or sparse for an IndexedSlices gradient."""
        import tensorflow as tf

        with tf.name_scope(f"update_{variable.op.name}"):
            if not isinstance(gradient, tf.IndexedSlices):
                return _DENSE[self.spec.kind](self, gradient, variable)
            if self.spec.kind == "SGD" and not self.spec.has_momentum:
                # Plain SGD adds every slice as it comes, repeated rows included.
                return tf.raw_ops.ResourceScatterAdd(
                    resource=variable.handle,
                    indices=gradient.indices,
                    updates=-gradient.values * self.coefficients["lr_t"],
                )
            unique_indices, positions = tf.unique(gradient.indices)
            summed = tf.math.unsorted_segment_sum(
                gradient.values, positions, tf.shape(unique_indices)[0]
            )
            return _SPARSE[self.spec.kind](self, summed, variable, unique_indices)


def _coefficients(spec: OptimizerSpec, hyper: dict[str, Any], iterations: Any) -> dict[str, Any]:
    """What the legacy `_prepare_local` computed once per step for float32 variables."""
    import tensorflow as tf

    step = tf.cast(iterations, tf.float32)
    # The legacy optimizer divided by (1 + decay * iterations) only when decay was above 0;
    # dividing by 1.0 leaves the learning rate unchanged, so this holds for both.
    lr_t = tf.identity(
        tf.identity(hyper["learning_rate"]) / (1.0 + tf.identity(hyper["decay"]) * step)
    )
    coefficients: dict[str, Any] = {"lr_t": lr_t}
    if "epsilon" in spec.options:
        coefficients["epsilon"] = tf.convert_to_tensor(float(spec.options["epsilon"]), tf.float32)
    if spec.kind == "Adam":
        local_step = tf.cast(iterations + 1, tf.float32)
        beta_1_t = tf.identity(hyper["beta_1"])
        beta_2_t = tf.identity(hyper["beta_2"])
        beta_1_power = tf.pow(beta_1_t, local_step)
        beta_2_power = tf.pow(beta_2_t, local_step)
        coefficients.update(
            lr=lr_t * (tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)),
            beta_1_t=beta_1_t,
            beta_1_power=beta_1_power,
            one_minus_beta_1_t=1 - beta_1_t,
            beta_2_t=beta_2_t,
            beta_2_power=beta_2_power,
            one_minus_beta_2_t=1 - beta_2_t,
        )
    elif spec.kind == "Ftrl":
        beta = tf.identity(hyper["beta"])
        coefficients.update(
            learning_rate_power=tf.identity(hyper["learning_rate_power"]),
            l1=tf.identity(hyper["l1_regularization_strength"]),
            # Beta folded into L2, as the legacy Ftrl did, so the kernels need not know it.
            l2=tf.identity(hyper["l2_regularization_strength"]) + beta / (2.0 * lr_t),
            l2_shrinkage=tf.cast(spec.options["l2_shrinkage_regularization_strength"], tf.float32),
        )
    elif spec.kind == "RMSprop":
        rho = tf.identity(hyper["rho"])
        coefficients.update(
            neg_lr_t=-lr_t,
            rho=rho,
            momentum=tf.identity(hyper["momentum"]),
            one_minus_rho=1.0 - rho,
        )
    elif spec.kind == "SGD":
        coefficients["momentum"] = tf.identity(hyper["momentum"])
    return coefficients


def _scatter_add(variable: Any, indices: Any, updates: Any) -> Any:
    """Adds `updates` to rows `indices`; the variable's value after the addition."""
    import tensorflow as tf

    added = tf.raw_ops.ResourceScatterAdd(
        resource=variable.handle, indices=indices, updates=updates
    )
    with tf.control_dependencies([added]):
        return variable.value()


def _adagrad_dense(state: _OptimizerState, grad: Any, var: Any) -> Any:
    import tensorflow as tf

    c = state.coefficients
    return tf.raw_ops.ResourceApplyAdagradV2(
        var=var.handle,
        accum=state.slot(var, "accumulator").handle,
        lr=c["lr_t"],
        epsilon=c["epsilon"],
        grad=grad,
    )


def _adagrad_sparse(state: _OptimizerState, grad: Any, var: Any, indices: Any) -> Any:
    import tensorflow as tf

    c = state.coefficients
    return tf.raw_ops.ResourceSparseApplyAdagradV2(
        var=var.handle,
        accum=state.slot(var, "accumulator").handle,
        lr=c["lr_t"],
        epsilon=c["epsilon"],
        grad=grad,
        indices=indices,
    )


def _adam_dense(state: _OptimizerState, grad: Any, var: Any) -> Any:
    import tensorflow as tf

    c = state.coefficients
    arguments = {
        "var": var.handle,
        "m": state.slot(var, "m").handle,
        "v": state.slot(var, "v").handle,
        "beta1_power": c["beta_1_power"],
        "beta2_power": c["beta_2_power"],
        "lr": c["lr_t"],
        "beta1": c["beta_1_t"],
        "beta2": c["beta_2_t"],
        "epsilon": c["epsilon"],
        "grad": grad,
    }
    if state.spec.options["amsgrad"]:
        return tf.raw_ops.ResourceApplyAdamWithAmsgrad(
            vhat=state.slot(var, "vhat").handle, **arguments
        )
    return tf.raw_ops.ResourceApplyAdam(**arguments)


def _adam_sparse(state: _OptimizerState, grad: Any, var: Any, indices: Any) -> Any:
    """Decays every row of m and v, adds the gradient rows, updates every row of the variable."""
    import tensorflow as tf

    c = state.coefficients
    m = state.slot(var, "m")
    m_decayed = m.assign(m * c["beta_1_t"])
    with tf.control_dependencies([m_decayed]):
        m_t = _scatter_add(m, indices, grad * c["one_minus_beta_1_t"])
    v = state.slot(var, "v")
    v_decayed = v.assign(v * c["beta_2_t"])
    with tf.control_dependencies([v_decayed]):
        v_t = _scatter_add(v, indices, (grad * grad) * c["one_minus_beta_2_t"])
    if not state.spec.options["amsgrad"]:
        var_update = var.assign_sub(c["lr"] * m_t / (tf.sqrt(v_t) + c["epsilon"]))
        return tf.group(var_update, m_t, v_t)
    vhat = state.slot(var, "vhat")
    vhat_max = tf.maximum(vhat, v_t)
    with tf.control_dependencies([vhat_max]):
        vhat_t = vhat.assign(vhat_max)
    var_update = var.assign_sub(c["lr"] * m_t / (tf.sqrt(vhat_t) + c["epsilon"]))
    return tf.group(var_update, m_t, v_t, vhat_t)


def _ftrl_arguments(state: _OptimizerState, grad: Any, var: Any) -> dict[str, Any]:
    c = state.coefficients
    arguments = {
        "var": var.handle,
        "accum": state.slot(var, "accumulator").handle,
        "linear": state.slot(var, "linear").handle,
        "grad": grad,
        "lr": c["lr_t"],
        "l1": c["l1"],
        "l2": c["l2"],
        "lr_power": c["learning_rate_power"],
    }
    if _has_l2_shrinkage(state.spec):
        arguments["l2_shrinkage"] = c["l2_shrinkage"]
    return arguments


def _has_l2_shrinkage(spec: OptimizerSpec) -> bool:
    return float(spec.options["l2_shrinkage_regularization_strength"]) > 0.0


def _ftrl_dense(state: _OptimizerState, grad: Any, var: Any) -> Any:
    import tensorflow as tf

    arguments = _ftrl_arguments(state, grad, var)
    if _has_l2_shrinkage(state.spec):
        return tf.raw_ops.ResourceApplyFtrlV2(**arguments)
    return tf.raw_ops.ResourceApplyFtrl(**arguments)


def _ftrl_sparse(state: _OptimizerState, grad: Any, var: Any, indices: Any) -> Any:
    import tensorflow as tf

    arguments = _ftrl_arguments(state, grad, var)
    if _has_l2_shrinkage(state.spec):
        return tf.raw_ops.ResourceSparseApplyFtrlV2(indices=indices, **arguments)
    return tf.raw_ops.ResourceSparseApplyFtrl(indices=indices, **arguments)


def _rmsprop_kernel_arguments(state: _OptimizerState, grad: Any, var: Any) -> dict[str, Any]:
    c = state.coefficients
    arguments = {
        "var": var.handle,
        "ms": state.slot(var, "rms").handle,
        "mom": state.slot(var, "momentum").handle,
        "lr": c["lr_t"],
        "rho": c["rho"],
        "momentum": c["momentum"],
        "epsilon": c["epsilon"],
        "grad": grad,
    }
    if state.spec.options["centered"]:
        arguments["mg"] = state.slot(var, "mg").handle
    return arguments


def _rmsprop_dense(state: _OptimizerState, grad: Any, var: Any) -> Any:
    import tensorflow as tf

    c = state.coefficients
    centered = state.spec.options["centered"]
    if state.spec.has_momentum:
        arguments = _rmsprop_kernel_arguments(state, grad, var)
        if centered:
            return tf.raw_ops.ResourceApplyCenteredRMSProp(**arguments)
        return tf.raw_ops.ResourceApplyRMSProp(**arguments)
    rms = state.slot(var, "rms")
    rms_t = rms.assign(c["rho"] * rms + c["one_minus_rho"] * tf.square(grad))
    denominator = rms_t
    if centered:
        mg = state.slot(var, "mg")
        mg_t = mg.assign(c["rho"] * mg + c["one_minus_rho"] * grad)
        denominator = rms_t - tf.square(mg_t)
    return var.assign(var - c["lr_t"] * grad / (tf.sqrt(denominator) + c["epsilon"])).op


def _rmsprop_sparse(state: _OptimizerState, grad: Any, var: Any, indices: Any) -> Any:
    import tensorflow as tf

    c = state.coefficients
    centered = state.spec.options["centered"]
    if state.spec.has_momentum:
        arguments = _rmsprop_kernel_arguments(state, grad, var)
        if centered:
            return tf.raw_ops.ResourceSparseApplyCenteredRMSProp(indices=indices, **arguments)
        return tf.raw_ops.ResourceSparseApplyRMSProp(indices=indices, **arguments)
    rms = state.slot(var, "rms")
    rms_decayed = rms.assign(rms * c["rho"])
    with tf.control_dependencies([rms_decayed]):
        rms_t = _scatter_add(rms, indices, (grad * grad) * c["one_minus_rho"])
        denominator = tf.gather(rms_t, indices)
    updated = [rms_t]
    if centered:
        mg = state.slot(var, "mg")
        mg_decayed = mg.assign(mg * c["rho"])
        with tf.control_dependencies([mg_decayed]):
            mg_t = _scatter_add(mg, indices, grad * c["one_minus_rho"])
            denominator = denominator - tf.square(tf.gather(mg_t, indices))
        updated.append(mg_t)
    var_update = _scatter_add(
        var, indices, c["neg_lr_t"] * grad / (tf.sqrt(denominator) + c["epsilon"])
    )
    return tf.group(var_update, *updated)


def _sgd_dense(state: _OptimizerState, grad: Any, var: Any) -> Any:
    import tensorflow as tf

    c = state.coefficients
    if state.spec.has_momentum:
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle,
            accum=state.slot(var, "momentum").handle,
            lr=c["lr_t"],
            grad=grad,
            momentum=c["momentum"],
            use_nesterov=bool(state.spec.options["nesterov"]),
        )
    return tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=c["lr_t"], delta=grad)


def _sgd_sparse(state: _OptimizerState, grad: Any, var: Any, indices: Any) -> Any:
    """Momentum SGD only: plain SGD scatters the raw slices (see `_OptimizerState.apply`)."""
    import tensorflow as tf

    c = state.coefficients
    return tf.raw_ops.ResourceSparseApplyKerasMomentum(
        var=var.handle,
        accum=state.slot(var, "momentum").handle,
        lr=c["lr_t"],
        grad=grad,
        indices=indices,
        momentum=c["momentum"],
        use_nesterov=bool(state.spec.options["nesterov"]),
    )


_DENSE: dict[str, Callable[[_OptimizerState, Any, Any], Any]] = {
    "Adagrad": _adagrad_dense,
    "Adam": _adam_dense,
    "Ftrl": _ftrl_dense,
    "RMSprop": _rmsprop_dense,
    "SGD": _sgd_dense,
}
_SPARSE: dict[str, Callable[[_OptimizerState, Any, Any, Any], Any]] = {
    "Adagrad": _adagrad_sparse,
    "Adam": _adam_sparse,
    "Ftrl": _ftrl_sparse,
    "RMSprop": _rmsprop_sparse,
    "SGD": _sgd_sparse,
}
