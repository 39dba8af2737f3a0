"""What a wait lets reading skip: steps below `lowest_useful_step`, and steps below a result
that `settling_rule` says ends the search. Skipping them never changes the result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import (
    EvalWait,
    lowest_useful_step,
    parse_eval_wait,
    select_result,
    settling_rule,
)

_results = st.lists(
    st.tuples(
        st.integers(0, 60),
        st.sets(st.sampled_from(["loss", "auc"])),
        st.sampled_from([None, "/m/model.ckpt-10", "/m/model.ckpt-20"]),
    ),
    max_size=12,
    unique_by=lambda result: result[0],
)
_waits = st.one_of(
    st.builds(
        lambda step, wanted: parse_eval_wait(min_step=step, required_metrics=sorted(wanted)),
        st.integers(0, 60),
        st.sets(st.sampled_from(["loss", "auc"])),
    ),
    st.builds(
        lambda wanted: parse_eval_wait(newer_than_exporter="best", required_metrics=sorted(wanted)),
        st.sets(st.sampled_from(["loss", "auc"])),
    ),
    st.builds(
        lambda path: parse_eval_wait(checkpoint_path=path),
        st.sampled_from(["/m/model.ckpt-10", "/m/model.ckpt-20"]),
    ),
)


def _newest_first(results: list[tuple[int, set[str], str | None]]) -> list[EvalResult]:
    made = [EvalResult(step, dict.fromkeys(metrics, 1.0), path) for step, metrics, path in results]
    return sorted(made, key=lambda result: -result.step)


@given(results=_results, wait=_waits, exported=st.none() | st.integers(0, 60))
def test_steps_below_the_lowest_useful_step_never_end_a_wait(
    results: list[tuple[int, set[str], str | None]], wait: EvalWait, exported: int | None
) -> None:
    newest_first = _newest_first(results)
    floor = lowest_useful_step(wait, exported)
    kept = [r for r in newest_first if floor is None or r.step >= floor]
    assert select_result(kept, wait, exported) == select_result(newest_first, wait, exported)


@given(results=_results, wait=_waits, exported=st.none() | st.integers(0, 60))
def test_a_settling_result_makes_every_older_one_irrelevant(
    results: list[tuple[int, set[str], str | None]], wait: EvalWait, exported: int | None
) -> None:
    newest_first = _newest_first(results)
    settles = settling_rule(wait, exported)
    if settles is None:
        assert wait.checkpoint_path is not None
        return
    for settled in (r for r in newest_first if settles(r)):
        kept = [r for r in newest_first if r.step >= settled.step]
        assert select_result(kept, wait, exported) == select_result(newest_first, wait, exported)


def test_the_lowest_useful_step_of_each_target() -> None:
    assert lowest_useful_step(parse_eval_wait(min_step=7)) == 7
    newer = parse_eval_wait(newer_than_exporter="best")
    assert lowest_useful_step(newer, 300) == 301
    assert lowest_useful_step(newer, None) is None  # nothing exported: any step will do
    assert lowest_useful_step(parse_eval_wait(checkpoint_path="/m/model.ckpt-1")) is None
