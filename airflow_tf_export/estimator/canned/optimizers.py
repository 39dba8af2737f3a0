"""Which optimizer a canned estimator trained with: a name, or a Keras 3 optimizer instance.

TF 2.15's canned estimators trained with the Keras legacy optimizers
(`tf.keras.optimizers.legacy.*`), which no longer exist on TF 2.21. The train op is rebuilt
from an `OptimizerSpec`: the legacy class, the name its variables live under
(`training/<name>/...` in the checkpoint), the initial values of the hyperparameters it keeps
as variables (a restore replaces them with the checkpoint's values) and its other options,
which are not in the checkpoint and so must be given again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.savedmodel.errors import DefinitionError


@dataclass(frozen=True)
class _Kind:
    """One legacy optimizer class: its hyperparameter variables and its other options, with
    the defaults the legacy constructor had."""

    hyperparameters: Mapping[str, float]
    options: Mapping[str, float | bool]
    keras3_default_name: str


_KINDS: dict[str, _Kind] = {
    "Adagrad": _Kind(
        {"learning_rate": 0.001, "decay": 0.0},
        {"initial_accumulator_value": 0.1, "epsilon": 1e-7},
        "adagrad",
    ),
    "Adam": _Kind(
        {"learning_rate": 0.001, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999},
        {"epsilon": 1e-7, "amsgrad": False},
        "adam",
    ),
    "Ftrl": _Kind(
        {
            "learning_rate": 0.001,
            "decay": 0.0,
            "learning_rate_power": -0.5,
            "l1_regularization_strength": 0.0,
            "l2_regularization_strength": 0.0,
            "beta": 0.0,
        },
        {"initial_accumulator_value": 0.1, "l2_shrinkage_regularization_strength": 0.0},
        "ftrl",
    ),
    "RMSprop": _Kind(
        {"learning_rate": 0.001, "decay": 0.0, "rho": 0.9, "momentum": 0.0},
        {"epsilon": 1e-7, "centered": False},
        "rm_sprop",
    ),
    "SGD": _Kind(
        {"learning_rate": 0.01, "decay": 0.0, "momentum": 0.0},
        {"nesterov": False},
        "sgd",
    ),
}

# The names tf.estimator accepted, and the legacy class each made.
OPTIMIZER_NAMES: dict[str, str] = {
    "Adagrad": "Adagrad",
    "Adam": "Adam",
    "Ftrl": "Ftrl",
    "RMSProp": "RMSprop",
    "SGD": "SGD",
}

# Keras 3 options the legacy optimizers did not have (or that changed the update math), with
# the value that means "not used".
_UNSUPPORTED_KERAS3_OPTIONS: dict[str, Any] = {
    "weight_decay": None,
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
    "use_ema": False,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}
_KERAS3_BOOKKEEPING = ("name", "ema_momentum", "ema_overwrite_frequency")


@dataclass(frozen=True)
class OptimizerSpec:
    """A Keras legacy optimizer, as the Estimator trained with it.

    `kind` is the legacy class ("Adagrad", "Adam", "Ftrl", "RMSprop", "SGD"), `name` the
    scope its variables were saved under (`training/<name>/learning_rate`, slots
    `training/<name>/<variable>/<slot>`), `hyperparameters` the initial values of its
    hyperparameter variables and `options` the settings that are not variables.
    """

    kind: str
    name: str
    hyperparameters: Mapping[str, float]
    options: Mapping[str, float | bool]

    @property
    def has_momentum(self) -> bool:
        """SGD and RMSprop keep a `momentum` slot only when built with a momentum above 0."""
        return float(self.hyperparameters.get("momentum", 0.0)) > 0.0


def resolve_optimizer(
    optimizer: Any, *, argument: str, default_learning_rate: float | None
) -> OptimizerSpec:
    """The spec of a canned estimator's `optimizer` argument.

    A name ('Adagrad', 'Adam', 'Ftrl', 'RMSProp', 'SGD') gets `default_learning_rate` (None:
    the optimizer's own default), as tf.estimator gave it; a Keras 3 optimizer of one of those
    classes (or a callable returning one) gets its own settings. Anything else, or an option
    the legacy optimizers did not have, is a DefinitionError naming `argument`.
    """
    if isinstance(optimizer, str):
        return _from_name(optimizer, argument, default_learning_rate)
    if callable(optimizer) and not _is_keras_optimizer(optimizer):
        optimizer = optimizer()
    return _from_keras3(optimizer, argument)


def _from_name(name: str, argument: str, default_learning_rate: float | None) -> OptimizerSpec:
    kind = OPTIMIZER_NAMES.get(name)
    if kind is None:
        raise DefinitionError(
            f"{argument}={name!r} is not an optimizer name; use one of "
            f"{', '.join(repr(n) for n in OPTIMIZER_NAMES)} or a Keras optimizer instance"
        )
    hyperparameters = dict(_KINDS[kind].hyperparameters)
    if default_learning_rate is not None:
        hyperparameters["learning_rate"] = default_learning_rate
    return OptimizerSpec(kind, kind, hyperparameters, dict(_KINDS[kind].options))


def _is_keras_optimizer(value: Any) -> bool:
    import keras

    return isinstance(value, keras.optimizers.Optimizer)


def _keras3_kind(optimizer: Any) -> str | None:
    import keras

    classes: dict[type, str] = {
        keras.optimizers.Adagrad: "Adagrad",
        keras.optimizers.Adam: "Adam",
        keras.optimizers.Ftrl: "Ftrl",
        keras.optimizers.RMSprop: "RMSprop",
        keras.optimizers.SGD: "SGD",
    }
    return classes.get(type(optimizer))


def _from_keras3(optimizer: Any, argument: str) -> OptimizerSpec:
    kind = _keras3_kind(optimizer)
    if kind is None:
        raise DefinitionError(
            f"{argument}={optimizer!r} is not supported; use one of "
            f"{', '.join(repr(n) for n in OPTIMIZER_NAMES)} or an instance of "
            "tf.keras.optimizers.Adagrad, Adam, Ftrl, RMSprop or SGD (Keras 3: the "
            "tf.keras.optimizers.legacy classes tf.estimator used are gone; the Keras 3 class "
            "of the same name with the same settings restores their checkpoints)"
        )
    config = optimizer.get_config()
    for option, unused in _UNSUPPORTED_KERAS3_OPTIONS.items():
        if config.get(option, unused) != unused:
            raise DefinitionError(
                f"{argument}: {type(optimizer).__name__}({option}={config[option]!r}) is not "
                f"supported: the canned estimators trained without {option}; leave it unset"
            )
    learning_rate = config["learning_rate"]
    if not isinstance(learning_rate, int | float):
        raise DefinitionError(
            f"{argument}: {type(optimizer).__name__}(learning_rate={learning_rate!r}) is not "
            "supported: give a number (the exported train op reads the learning rate the "
            "checkpoint holds)"
        )
    described = _KINDS[kind]
    known = {*described.hyperparameters, *described.options, "learning_rate"}
    unknown = set(config) - known - set(_UNSUPPORTED_KERAS3_OPTIONS) - set(_KERAS3_BOOKKEEPING)
    if unknown:
        raise DefinitionError(
            f"{argument}: {type(optimizer).__name__} options {sorted(unknown)} are not supported"
        )
    hyperparameters = {
        key: float(config.get(key, value)) for key, value in described.hyperparameters.items()
    }
    options = {key: config.get(key, value) for key, value in described.options.items()}
    return OptimizerSpec(kind, _scope_name(kind, config["name"]), hyperparameters, options)


def _scope_name(kind: str, keras3_name: str) -> str:
    """The legacy name for Keras 3's automatic names ("adam", "adam_1", ...), else the name the
    user chose (a legacy optimizer built with that name saved its variables under it)."""
    automatic = re.fullmatch(rf"{_KINDS[kind].keras3_default_name}(_\d+)?", keras3_name)
    return kind if automatic else keras3_name
