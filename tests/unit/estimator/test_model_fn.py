"""A model_fn is called as tf.estimator called it: only with the arguments it names."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from airflow_tf_export.estimator.model_fn import call_model_fn, model_fn_arguments
from airflow_tf_export.savedmodel.errors import DefinitionError


def full(features: Any, labels: Any, mode: str, params: dict[str, Any], config: Any) -> Any:
    return {
        "features": features,
        "labels": labels,
        "mode": mode,
        "params": params,
        "config": config,
    }


def features_and_mode(features: Any, mode: str) -> Any:
    return {"features": features, "mode": mode}


def call(model_fn: Any, labels: Any = None, params: Any = None) -> Any:
    arguments = model_fn_arguments(model_fn, params)
    return call_model_fn(
        model_fn, arguments, features="F", labels=labels, mode="infer", params=params or {}
    )


def test_every_argument_is_passed_by_name_and_config_is_none() -> None:
    assert call(full, labels="L", params={"a": 1}) == {
        "features": "F",
        "labels": "L",
        "mode": "infer",
        "params": {"a": 1},
        "config": None,
    }


def test_arguments_the_model_fn_does_not_name_are_not_passed() -> None:
    assert call(features_and_mode) == {"features": "F", "mode": "infer"}


def test_labels_given_to_a_model_fn_without_labels_are_refused() -> None:
    with pytest.raises(DefinitionError, match="takes no `labels` argument, but the receiver"):
        call(features_and_mode, labels="L")


def test_methods_partials_and_callable_objects_are_model_fns() -> None:
    class Model:
        def model_fn(self, features: Any, mode: str) -> Any:
            return (features, mode)

        def __call__(self, features: Any) -> Any:
            return features

    assert call(Model().model_fn) == ("F", "infer")
    assert call(Model()) == "F"
    assert call(functools.partial(full, labels=None, config=None, params={})) == {
        "features": "F",
        "labels": None,
        "mode": "infer",
        "params": {},
        "config": None,
    }


@pytest.mark.parametrize(
    ("model_fn", "params", "expected"),
    [
        (lambda mode: mode, None, "must take a `features` argument"),
        (features_and_mode, {"a": 1}, "takes no `params` argument, but params are given"),
        (lambda features, hparams: features, None, r"takes arguments \['hparams'\]"),
        ("model_fn", None, "model_fn must be callable, got 'model_fn'"),
    ],
)
def test_model_fns_tf_estimator_would_not_call_are_refused(
    model_fn: Any, params: Any, expected: str
) -> None:
    with pytest.raises(DefinitionError, match=expected):
        model_fn_arguments(model_fn, params)


def test_keyword_only_arguments_count_and_varargs_do_not() -> None:
    def model_fn(features: Any, *args: Any, mode: str, **kwargs: Any) -> Any:
        return mode

    assert model_fn_arguments(model_fn, None) == frozenset({"features", "mode"})
