"""Final, latest and best strategies: decisions derived only from committed versions."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.comparison import CompareFn, MetricComparison, loss_smaller
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.retention import KeepNewest
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    Decision,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
    already_exported,
)

from .factories import BASE_VERSION, make_meta

# Plain st.floats() rarely draws an infinity: draw the non-finite values often.
any_float = st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats()


def candidate(step: int, path: str | None = None, **metrics: float) -> Candidate:
    ckpt = path if path is not None else f"/model/ckpt-{step}"
    evaluated = EvalResult(step=step, metrics=metrics) if metrics else None
    return Candidate(checkpoint_path=ckpt, global_step=step, eval_result=evaluated)


# --- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "5"])
@pytest.mark.parametrize("make", [LatestStrategy, BestStrategy])
def test_exports_to_keep_must_be_a_positive_integer(make: Any, value: object) -> None:
    with pytest.raises(ValueError) as caught:
        make(name="exp", exports_to_keep=value)
    message = str(caught.value)
    assert message.startswith(
        f"`exports_to_keep`, if provided, must be a positive number. Got {value!r}"
    )


def test_defaults_follow_the_seeds() -> None:
    best = BestStrategy()
    assert (best.name, best.kind, best.exports_to_keep) == ("best_exporter", "best", 5)
    assert best.compare_fn is loss_smaller
    assert best.event_file_pattern == "eval/*.tfevents.*"
    assert best.comparator == MetricComparison("loss")
    latest = LatestStrategy(name="latest")
    assert (latest.kind, latest.exports_to_keep) == ("latest", 5)
    final = FinalStrategy(name="final")
    assert (final.kind, final.exports_to_keep) == ("final", None)


@pytest.mark.parametrize("make", [FinalStrategy, LatestStrategy, BestStrategy])
def test_names_are_validated(make: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid exporter name '\.\./up'"):
        make(name="../up")


def test_best_needs_a_compare_fn_or_a_comparison() -> None:
    with pytest.raises(ValueError, match=r"^`compare_fn` must not be None\.$"):
        BestStrategy(compare_fn=None)
    assert BestStrategy(compare_fn=None, comparison=MetricComparison("auc")).comparator == (
        MetricComparison("auc")
    )


def test_best_rejects_both_compare_fn_and_comparison() -> None:
    def my_fn(best_eval_result: Any, current_eval_result: Any) -> bool:
        return True

    with pytest.raises(ValueError, match=r"give either compare_fn \(.*my_fn.*\) or comparison"):
        BestStrategy(compare_fn=my_fn, comparison=MetricComparison())


def test_best_rejects_a_comparison_of_the_wrong_type() -> None:
    with pytest.raises(ValueError, match="comparison must be a MetricComparison, got 'loss'"):
        BestStrategy(comparison="loss")  # type: ignore[arg-type]


def test_best_wraps_a_user_compare_fn() -> None:
    def my_fn(best_eval_result: Any, current_eval_result: Any) -> bool:
        return True

    assert isinstance(BestStrategy(compare_fn=my_fn).comparator, CompareFn)


@pytest.mark.parametrize("pattern", ["", 3])
def test_event_file_pattern_must_be_a_glob_or_none(pattern: object) -> None:
    with pytest.raises(ValueError, match=f"event_file_pattern must be .* got {pattern!r}"):
        BestStrategy(event_file_pattern=pattern)  # type: ignore[arg-type]
    assert BestStrategy(event_file_pattern=None).event_file_pattern is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"checkpoint_path": "", "global_step": 1},
            "checkpoint_path must be a non-empty path, got ''",
        ),
        (
            {"checkpoint_path": "/", "global_step": 1},
            "checkpoint_path must be a non-empty path, got '/'",
        ),
        (
            {"checkpoint_path": "/m/c", "global_step": -1},
            "global_step must be an integer >= 0, got -1",
        ),
        (
            {"checkpoint_path": "/m/c", "global_step": True},
            "global_step must be an integer >= 0, got True",
        ),
        (
            {"checkpoint_path": "/m/c", "global_step": 1.0},
            r"global_step must be an integer >= 0, got 1\.0",
        ),
    ],
)
def test_candidate_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Candidate(**kwargs)


def test_keep_rules() -> None:
    assert FinalStrategy(name="f").keep_rules() == ()
    assert LatestStrategy(name="l").keep_rules() == (KeepNewest(5),)
    assert LatestStrategy(name="l", exports_to_keep=None).keep_rules() == ()
    assert BestStrategy(exports_to_keep=2).keep_rules() == (KeepNewest(2),)
    assert BestStrategy(exports_to_keep=None).keep_rules() == ()


def test_strategies_satisfy_the_protocol() -> None:
    strategies: list[ExportStrategy] = [
        FinalStrategy(name="f"),
        LatestStrategy(name="l"),
        BestStrategy(),
    ]
    assert [s.kind for s in strategies] == ["final", "latest", "best"]


# --- the same checkpoint -----------------------------------------------------------------------


def test_already_exported_matches_paths_without_trailing_slashes() -> None:
    committed = [make_meta(BASE_VERSION, step=5, checkpoint_path="gs://b/m/ckpt-5/")]
    found = already_exported(committed, candidate(5, "gs://b/m/ckpt-5"))
    assert found is not None and found.version == BASE_VERSION
    assert already_exported(committed, candidate(5, "gs://b/m/ckpt-50")) is None


@pytest.mark.parametrize(
    "strategy", [FinalStrategy(name="f"), LatestStrategy(name="l"), BestStrategy()], ids=str
)
def test_a_retry_returns_the_existing_version(strategy: ExportStrategy) -> None:
    committed = [make_meta(BASE_VERSION + 7, step=5, metrics={"loss": 0.1})]
    decision = strategy.decide(
        committed, candidate(5, "/model/ckpt-5/", loss=0.1), is_the_final_export=True
    )
    assert decision == Decision(
        False, f"already exported as version {BASE_VERSION + 7}", BASE_VERSION + 7
    )


STRATEGIES = [FinalStrategy(name="f"), LatestStrategy(name="l"), BestStrategy()]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=str)
@pytest.mark.parametrize("copy", ["gs://bucket/m/ckpt-5", "/new/place/m/ckpt-5"])
def test_a_rerun_after_the_model_dir_was_copied_returns_the_existing_version(
    strategy: ExportStrategy, copy: str
) -> None:
    """The committed version records the path before the copy; the same checkpoint name,
    step (and eval result) is the same checkpoint."""
    committed = [
        make_meta(BASE_VERSION + 3, step=5, metrics={"loss": 0.1}, checkpoint_path="/m/ckpt-5"),
        make_meta(BASE_VERSION + 4, step=5, metrics={"loss": 0.1}, checkpoint_path="/x/ckpt-5"),
    ]
    decision = strategy.decide(committed, candidate(5, copy, loss=0.1), is_the_final_export=True)
    assert decision == Decision(
        False,
        f"already exported as version {BASE_VERSION + 3} (recorded as '/m/ckpt-5': the same "
        "checkpoint name, global step and eval result)",
        BASE_VERSION + 3,
    )


def test_the_same_path_wins_over_the_same_name() -> None:
    committed = [
        make_meta(BASE_VERSION, step=5, checkpoint_path="/old/m/ckpt-5"),
        make_meta(BASE_VERSION + 1, step=5, checkpoint_path="gs://b/m/ckpt-5/"),
    ]
    found = already_exported(committed, candidate(5, "gs://b/m/ckpt-5"))
    assert found is not None and found.version == BASE_VERSION + 1


def test_another_model_dirs_checkpoint_of_the_same_name_and_step_is_still_compared() -> None:
    """Two model dirs publishing into one exporter dir (export_dir_base) both reach
    `model.ckpt-1000`: a better one of the second is exported, a worse one skipped."""
    best = BestStrategy()
    committed = [
        make_meta(
            BASE_VERSION, step=1000, metrics={"loss": 0.5}, checkpoint_path="/a/model.ckpt-1000"
        )
    ]
    better = best.decide(committed, candidate(1000, "/b/model.ckpt-1000", loss=0.4))
    assert better.export and better.existing_version is None
    worse = best.decide(committed, candidate(1000, "/b/model.ckpt-1000", loss=0.6))
    assert not worse.export and worse.existing_version is None
    assert worse.reason.startswith("skipped: candidate loss 0.6 is not better than")


def test_a_name_match_needs_the_same_step_and_eval_result() -> None:
    committed = [
        make_meta(BASE_VERSION, step=5, metrics={"loss": 0.1}, checkpoint_path="/m/ckpt-5")
    ]
    assert already_exported(committed, candidate(5, "/n/ckpt-5", loss=0.1)) is not None
    assert already_exported(committed, candidate(5, "/n/ckpt-5", loss=0.2)) is None
    assert already_exported(committed, candidate(5, "/n/ckpt-5")) is not None
    assert already_exported(committed, candidate(5, "/n/model-5")) is None
    renamed = [make_meta(BASE_VERSION, step=6, checkpoint_path="/m/ckpt-5")]
    assert already_exported(renamed, candidate(5, "/n/ckpt-5")) is None
    other_step = Candidate("/n/ckpt-5", 5, EvalResult(step=4, metrics={"loss": 0.1}))
    assert already_exported(committed, other_step) is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["/m", "gs://b/m", "/other"]),
            st.sampled_from(["ckpt", "model.ckpt"]),
            st.integers(0, 3),
            st.sampled_from([None, 0.1, 0.2]),
        ),
        max_size=6,
    ),
    st.sampled_from(["/m", "gs://b/m", "/new"]),
    st.sampled_from(["ckpt", "model.ckpt"]),
    st.integers(0, 3),
    st.sampled_from([None, 0.1, 0.2]),
)
def test_already_exported_is_the_oldest_same_path_else_the_oldest_same_checkpoint(
    versions: list[tuple[str, str, int, float | None]],
    where: str,
    series: str,
    step: int,
    loss: float | None,
) -> None:
    committed = [
        make_meta(
            BASE_VERSION + i,
            step=s,
            checkpoint_path=f"{d}/{n}-{s}",
            metrics=None if m is None else {"loss": m},
        )
        for i, (d, n, s, m) in enumerate(versions)
    ]
    wanted = candidate(step, f"{where}/{series}-{step}", **({} if loss is None else {"loss": loss}))
    found = already_exported(committed, wanted)
    same_path = [m for m in committed if m.checkpoint_path == wanted.checkpoint_path]
    same_checkpoint = [
        m
        for m in committed
        if m.checkpoint_path.rsplit("/", 1)[1] == f"{series}-{step}"
        and m.global_step == step
        and (
            loss is None or (m.eval_result is not None and m.eval_result.metrics == {"loss": loss})
        )
    ]
    expected = same_path or same_checkpoint
    assert found == (min(expected, key=lambda m: m.version) if expected else None)


# --- Final -----------------------------------------------------------------------------------


def test_final_exports_only_the_final_export() -> None:
    final = FinalStrategy(name="final")
    assert final.decide([], candidate(10)) == Decision(False, "skipped: not the final export")
    assert final.decide([], candidate(10), is_the_final_export=True) == Decision(
        True, "final export of step 10"
    )


def test_final_with_an_existing_final_export_exports_only_a_newer_step() -> None:
    final = FinalStrategy(name="final")
    committed = [make_meta(BASE_VERSION, step=100, strategy="final")]
    older = final.decide(committed, candidate(100, "/other/final-100"), is_the_final_export=True)
    assert older == Decision(
        False,
        f"skipped: final export already exists as version {BASE_VERSION} (step 100); "
        "candidate step 100 is not newer",
    )
    newer = final.decide(committed, candidate(200), is_the_final_export=True)
    assert newer == Decision(
        True, f"final export of step 200, newer than step 100 in version {BASE_VERSION}"
    )


# --- Latest ----------------------------------------------------------------------------------


def test_latest_exports_newer_steps_only() -> None:
    latest = LatestStrategy(name="latest")
    assert latest.decide([], candidate(10)) == Decision(
        True, "first export: step 10, no committed version yet"
    )
    committed = [make_meta(BASE_VERSION, step=10), make_meta(BASE_VERSION + 1, step=20)]
    assert latest.decide(committed, candidate(30)) == Decision(
        True, f"candidate step 30 is newer than step 20 in version {BASE_VERSION + 1}"
    )
    assert latest.decide(committed, candidate(15)) == Decision(
        False, f"skipped: candidate step 15 is older than step 20 in version {BASE_VERSION + 1}"
    )
    assert latest.decide(committed, candidate(20, "/restored/model-20")) == Decision(
        False,
        f"skipped: candidate step 20 is not newer than step 20 in version {BASE_VERSION + 1}",
    )


@given(
    st.lists(st.integers(0, 10**6), max_size=15),
    st.integers(0, 10**6),
)
def test_latest_never_exports_a_step_that_is_not_newer_than_every_committed_one(
    committed_steps: list[int], step: int
) -> None:
    committed = [
        make_meta(BASE_VERSION + i, step=s, checkpoint_path=f"/a/ckpt-{s}-{i}")
        for i, s in enumerate(committed_steps)
    ]
    decision = LatestStrategy(name="latest").decide(committed, candidate(step, "/b/ckpt"))
    assert decision.export is all(step > s for s in committed_steps)


# --- Best ------------------------------------------------------------------------------------


def test_best_first_export_then_only_strictly_better() -> None:
    best = BestStrategy()
    assert best.decide([], candidate(10, loss=0.5)) == Decision(
        True, "first export: no committed version to compare by loss (lower is better)"
    )
    committed = [
        make_meta(BASE_VERSION, step=10, metrics={"loss": 0.39}),
        make_meta(BASE_VERSION + 1, step=20, metrics={"loss": 0.45}),
    ]
    assert best.decide(committed, candidate(30, loss=0.41)) == Decision(
        False,
        f"skipped: candidate loss 0.41 is not better than best loss 0.39 in version {BASE_VERSION}",
    )
    assert best.decide(committed, candidate(30, loss=0.38)) == Decision(
        True, f"candidate loss 0.38 is better than best loss 0.39 in version {BASE_VERSION}"
    )
    assert not best.decide(committed, candidate(30, loss=0.39)).export
    assert not best.decide(committed, candidate(30, loss=math.nan)).export


def test_best_state_survives_a_restart() -> None:
    """tensorflow/tensorflow#47396: a new strategy instance must not export a worse model."""
    committed = [make_meta(BASE_VERSION, step=10, metrics={"loss": 0.2})]
    assert not BestStrategy().decide(committed, candidate(20, loss=0.3)).export


def test_best_ignores_and_names_versions_without_the_metric() -> None:
    committed = [
        make_meta(BASE_VERSION, step=10),
        make_meta(BASE_VERSION + 1, step=20, metrics={"accuracy": 0.9}),
        make_meta(BASE_VERSION + 2, step=30, metrics={"loss": 0.5}),
    ]
    decision = BestStrategy().decide(committed, candidate(40, loss=0.4))
    assert decision == Decision(
        True,
        f"candidate loss 0.4 is better than best loss 0.5 in version {BASE_VERSION + 2} "
        "(ignored versions without an eval result usable by loss (lower is better): "
        f"{BASE_VERSION}, {BASE_VERSION + 1})",
    )
    first = BestStrategy().decide(committed[:2], candidate(40, loss=0.4))
    assert first.export and first.reason.startswith("first export: no committed version")


def test_ignored_note_lists_a_few_versions_and_counts_the_rest() -> None:
    committed = [make_meta(BASE_VERSION + i, step=i) for i in range(8)]
    reason = BestStrategy().decide(committed, candidate(40, loss=0.4)).reason
    assert reason.endswith(f"{BASE_VERSION + 4} and 3 more)")


def test_best_without_eval_result_names_the_candidate() -> None:
    with pytest.raises(ValueError) as caught:
        BestStrategy(name="best").decide([], candidate(12))
    assert str(caught.value) == (
        "best exporter 'best' needs an eval result for checkpoint '/model/ckpt-12' (step 12); "
        "got None"
    )


def test_best_candidate_missing_the_metric_names_it_and_the_available_ones() -> None:
    with pytest.raises(ValueError) as caught:
        BestStrategy(comparison=MetricComparison("auc")).decide(
            [], candidate(1200, loss=0.3, accuracy=0.9)
        )
    assert (
        str(caught.value) == "eval result for step 1200 has no metric 'auc'; it has: accuracy, loss"
    )


def test_best_rejects_an_eval_result_of_another_step() -> None:
    mismatched = Candidate("/model/ckpt-5", 5, EvalResult(step=6, metrics={"loss": 0.1}))
    with pytest.raises(
        ValueError, match="eval result is for step 6 but checkpoint '/model/ckpt-5' is step 5"
    ):
        BestStrategy().decide([], mismatched)


def test_best_thresholds_apply_to_the_first_export() -> None:
    best = BestStrategy(
        comparison=MetricComparison("accuracy", higher_is_better=True, lower_bound=0.8)
    )
    assert best.decide([], candidate(10, accuracy=0.7)) == Decision(
        False, "skipped: candidate accuracy 0.7 is below lower_bound 0.8"
    )
    assert best.decide([], candidate(10, accuracy=0.85)).export
    assert not best.decide([], candidate(10, accuracy=math.nan)).export


def test_best_with_a_user_compare_fn_explains_with_its_name() -> None:
    committed = [make_meta(BASE_VERSION, step=1000, metrics={"auc": 0.8})]
    decision = BestStrategy(compare_fn=higher_auc).decide(committed, candidate(2000, auc=0.9))
    assert decision == Decision(
        True,
        f"compare_fn {higher_auc.__qualname__} says candidate step 2000 is better than best "
        f"step 1000 in version {BASE_VERSION}",
    )


def higher_auc(best_eval_result: Any, current_eval_result: Any) -> bool:
    return bool(current_eval_result["auc"] > best_eval_result["auc"])


@given(st.lists(any_float, max_size=10), st.floats(allow_nan=False))
def test_with_a_user_compare_fn_nan_is_never_exported_and_never_locks_out(
    committed_values: list[float], value: float
) -> None:
    """The seeds' lock-out: a NaN first export made every later comparison False."""
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics={"auc": v})
        for i, v in enumerate(committed_values)
    ]
    best = BestStrategy(compare_fn=higher_auc)
    assert not best.decide(committed, candidate(100, auc=math.nan)).export
    numbers = [v for v in committed_values if not math.isnan(v)]
    decision = best.decide(committed, candidate(100, auc=value))
    assert decision.export is all(value > v for v in numbers)


comparisons = st.builds(
    MetricComparison,
    metric=st.just("m"),
    higher_is_better=st.booleans(),
    min_delta=st.sampled_from([0.0, 0.1, 1.0]),
)


@given(
    comparisons,
    st.lists(st.one_of(st.none(), any_float), max_size=10),
    any_float,
)
def test_best_never_exports_a_candidate_not_strictly_better_than_every_committed_version(
    comparison: MetricComparison, committed_values: list[float | None], value: float
) -> None:
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics=None if v is None else {"m": v})
        for i, v in enumerate(committed_values)
    ]
    decision = BestStrategy(comparison=comparison).decide(committed, candidate(100, m=value))
    if not decision.export:
        return
    assert math.isfinite(value)
    for old in committed_values:
        if old is None or not math.isfinite(old):
            continue
        improvement = value - old if comparison.higher_is_better else old - value
        assert improvement > 0
        assert improvement >= comparison.min_delta


@given(st.lists(any_float, min_size=1, max_size=10), any_float)
def test_default_best_exports_exactly_when_the_loss_is_below_every_committed_loss(
    losses: list[float], loss: float
) -> None:
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics={"loss": v}) for i, v in enumerate(losses)
    ]
    decision = BestStrategy().decide(committed, candidate(100, loss=loss))
    numbers = [v for v in losses if math.isfinite(v)]
    assert decision.export is (math.isfinite(loss) and all(loss < v for v in numbers))


# --- every strategy: a sequence of decisions -------------------------------------------------

_POOL = 6


@given(
    st.sampled_from(["final", "latest", "best"]),
    st.lists(any_float, min_size=_POOL, max_size=_POOL),
    st.lists(st.tuples(st.integers(0, _POOL - 1), st.booleans(), st.booleans()), max_size=25),
)
def test_the_same_checkpoint_is_never_exported_twice(
    kind: str, losses: list[float], events: list[tuple[int, bool, bool]]
) -> None:
    strategies: dict[str, ExportStrategy] = {
        "final": FinalStrategy(name="final"),
        "latest": LatestStrategy(name="latest"),
        "best": BestStrategy(),
    }
    strategy = strategies[kind]
    committed: list[ExportMetadata] = []
    version_of: dict[str, int] = {}
    for index, trailing_slash, is_final in events:
        path = f"gs://bucket/model/ckpt-{index}"
        offered = candidate(index * 100, path + ("/" if trailing_slash else ""), loss=losses[index])
        decision = strategy.decide(committed, offered, is_the_final_export=is_final)
        if path in version_of:
            assert not decision.export
            assert decision.existing_version == version_of[path]
        elif decision.export:
            version = BASE_VERSION + len(committed)
            version_of[path] = version
            committed.append(
                make_meta(
                    version,
                    step=index * 100,
                    checkpoint_path=offered.checkpoint_path,
                    metrics={"loss": losses[index]},
                )
            )
        else:
            assert decision.existing_version is None
