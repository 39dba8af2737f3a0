"""`same_facts`: two reads of a version agree exactly when everything a decision reads of it
agrees (NaN metrics included)."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata, same_facts

from .factories import BASE_VERSION, make_meta

metric = st.floats(allow_nan=True, allow_infinity=True)
metas = st.builds(
    lambda v, step, found, path: make_meta(
        BASE_VERSION + v, step=step, metrics=found, checkpoint_path=path
    ),
    st.integers(0, 3),
    st.integers(0, 3),
    st.none() | st.dictionaries(st.sampled_from(["loss", "auc"]), metric, max_size=2),
    st.sampled_from(["/m/ckpt-1", "/m/ckpt-2"]),
)


def _facts(meta: ExportMetadata) -> tuple[object, ...]:
    found = meta.eval_result
    return (
        meta.version,
        meta.checkpoint_path,
        meta.global_step,
        None if found is None else (found.step, found.to_dict()["metrics"]),
    )


@given(metas, metas)
def test_same_facts_compares_what_decisions_read(
    left: ExportMetadata, right: ExportMetadata
) -> None:
    assert same_facts(left, right) == (_facts(left) == _facts(right))
    assert same_facts(left, left)


@given(metas)
def test_what_decisions_do_not_read_does_not_count(meta: ExportMetadata) -> None:
    other = replace(meta, reason="other", created_at="2020-01-01T00:00:00Z")
    if meta.eval_result is not None:
        other = replace(other, eval_result=replace(meta.eval_result, source="elsewhere"))
    assert same_facts(meta, other)


def test_a_nan_metric_is_the_same_fact_and_a_changed_one_is_not() -> None:
    nan = make_meta(BASE_VERSION, step=5, metrics={"loss": math.nan})
    assert same_facts(
        nan, replace(nan, eval_result=EvalResult(5, {"loss": math.nan}, "/model/ckpt-5"))
    )
    assert not same_facts(
        nan, replace(nan, eval_result=EvalResult(5, {"loss": 0.5}, "/model/ckpt-5"))
    )
    assert not same_facts(nan, replace(nan, eval_result=None))
    assert not same_facts(nan, replace(nan, global_step=6))
