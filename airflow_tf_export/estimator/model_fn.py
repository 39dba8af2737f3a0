"""Calling a model_fn as tf.estimator called it: only with the arguments it names.

A model_fn is `model_fn(features, labels, mode, params, config)` with any of the last four
left out. `features` is required; `params` only when the Estimator is given params; `labels`
whenever the receiver gives labels (the train and eval modes). `config` gets None: there is
no RunConfig when exporting. No TensorFlow here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from airflow_tf_export.savedmodel.errors import DefinitionError

MODEL_FN_ARGUMENTS = ("features", "labels", "mode", "params", "config")
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def model_fn_arguments(model_fn: Callable[..., Any], params: object) -> frozenset[str]:
    """The argument names `model_fn` takes; DefinitionError unless tf.estimator would have
    called it (features taken, params taken when given, no other arguments)."""
    if not callable(model_fn):
        raise DefinitionError(f"model_fn must be callable, got {model_fn!r}")
    try:
        signature = inspect.signature(model_fn)
    except (TypeError, ValueError) as error:
        raise DefinitionError(f"cannot read the arguments of model_fn {model_fn!r}") from error
    names = frozenset(
        name for name, parameter in signature.parameters.items() if parameter.kind in _NAMED
    )
    if "features" not in names:
        raise DefinitionError(f"model_fn {_name(model_fn)} must take a `features` argument")
    if params is not None and "params" not in names:
        raise DefinitionError(
            f"model_fn {_name(model_fn)} takes no `params` argument, but params are given"
        )
    unknown = sorted(names - set(MODEL_FN_ARGUMENTS))
    if unknown:
        raise DefinitionError(
            f"model_fn {_name(model_fn)} takes arguments {unknown} that tf.estimator never "
            f"passed; a model_fn takes {', '.join(MODEL_FN_ARGUMENTS)}"
        )
    return names


def call_model_fn(
    model_fn: Callable[..., Any],
    arguments: frozenset[str],
    *,
    features: Any,
    labels: Any,
    mode: str,
    params: dict[str, Any],
) -> Any:
    """`model_fn(features=..., ...)` with those of labels, mode, params and config (None)
    that `arguments` names."""
    passed: dict[str, Any] = {}
    if "labels" in arguments:
        passed["labels"] = labels
    elif labels is not None:
        raise DefinitionError(
            f"model_fn {_name(model_fn)} takes no `labels` argument, but the receiver of mode "
            f"{mode!r} gives labels"
        )
    if "mode" in arguments:
        passed["mode"] = mode
    if "params" in arguments:
        passed["params"] = params
    if "config" in arguments:
        passed["config"] = None
    return model_fn(features=features, **passed)


def _name(model_fn: Callable[..., Any]) -> str:
    return getattr(model_fn, "__qualname__", None) or repr(model_fn)
