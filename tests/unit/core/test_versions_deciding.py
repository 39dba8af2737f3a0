"""`versions_deciding`: every strategy decides the same on any set of committed versions that
holds the deciding ones, so a decision needs to check only their records."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_tf_export.core.comparison import MetricComparison
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.exporter_index import IndexedVersion, decode_index, encode_index
from airflow_tf_export.core.foreign import ForeignVersion
from airflow_tf_export.core.metadata import ExportMetadata, VersionFacts, same_facts
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
    versions_deciding,
)

from .factories import BASE_VERSION, make_meta


def _accuracy_higher(
    best_eval_result: dict[str, float], current_eval_result: dict[str, float]
) -> bool:
    """A user's compare_fn (a consistent order): higher accuracy, missing counts as lowest."""
    return current_eval_result.get("accuracy", -1.0) > best_eval_result.get("accuracy", -1.0)


STRATEGIES: list[ExportStrategy] = [
    FinalStrategy(name="final"),
    LatestStrategy(name="latest"),
    BestStrategy(name="best"),
    BestStrategy(name="acc", comparison=MetricComparison("accuracy", higher_is_better=True)),
    BestStrategy(name="fn", compare_fn=_accuracy_higher),
]
metric = st.sampled_from([0.1, 0.2, 0.5, math.nan]) | st.floats(0, 1)
metrics = st.none() | st.dictionaries(st.sampled_from(["loss", "accuracy"]), metric, max_size=2)


@st.composite
def versions(draw: st.DrawFn) -> list[ExportMetadata]:
    """Committed versions with colliding steps, paths and metrics, some without a result."""
    numbers = draw(st.lists(st.integers(1, 60), unique=True, max_size=25))
    return [
        make_meta(
            BASE_VERSION + n,
            step=draw(st.integers(0, 8)) * 100,
            metrics=draw(metrics),
            checkpoint_path=draw(st.sampled_from([None, "/old/ckpt-100", "/model/ckpt-300"])),
        )
        for n in numbers
    ]


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    step = draw(st.integers(0, 8)) * 100
    path = draw(st.sampled_from([f"/model/ckpt-{step}", "/old/ckpt-100", "/model/ckpt-300"]))
    found = {"loss": draw(st.floats(0, 1)), "accuracy": draw(st.floats(0, 1))}
    return Candidate(path, step, EvalResult(step, found))


foreigns = st.lists(
    st.builds(ForeignVersion, st.integers(1, 50), st.integers(0, 8).map(lambda s: s * 100)),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(versions(), candidates(), foreigns, st.booleans(), st.data())
def test_any_set_holding_the_deciding_versions_decides_as_all_do(
    committed: list[ExportMetadata],
    candidate: Candidate,
    foreign: list[ForeignVersion],
    final: bool,
    data: st.DataObject,
) -> None:
    for strategy in STRATEGIES:
        comparator = getattr(strategy, "comparator", None)
        deciding = versions_deciding(committed, candidate, comparator)
        assert {m.version for m in deciding} <= {m.version for m in committed}
        kept = {m.version for m in deciding}
        others = sorted(m.version for m in committed if m.version not in kept)
        dropped = (
            set(data.draw(st.lists(st.sampled_from(others), unique=True))) if others else set()
        )
        subset = [m for m in committed if m.version not in dropped]
        for some in (subset, deciding):
            assert strategy.decide(
                some, candidate, is_the_final_export=final, foreign=foreign
            ) == strategy.decide(committed, candidate, is_the_final_export=final, foreign=foreign)


def test_a_large_dir_decides_on_a_few_versions() -> None:
    committed = [
        make_meta(BASE_VERSION + i, step=i * 10, metrics={"loss": 1 / (1 + i % 97)})
        for i in range(5000)
    ]
    candidate = Candidate("/model/ckpt-50000", 50_000, EvalResult(50_000, {"loss": 0.5}))
    latest = versions_deciding(committed, candidate)
    assert [m.version for m in latest] == [BASE_VERSION + 4999]
    best = versions_deciding(committed, candidate, BestStrategy(name="b").comparator)
    assert [m.version for m in best] == [BASE_VERSION + 96, BASE_VERSION + 4999]


@settings(max_examples=200, deadline=None)
@given(versions(), candidates(), st.data())
def test_index_rows_decide_as_the_records_they_were_made_of(
    committed: list[ExportMetadata], candidate: Candidate, data: st.DataObject
) -> None:
    """Index rows (decoded from an index file, as a scan reads them) among the records give
    the same deciding versions as the records alone: what a decision reads of a row is
    what its record holds, NaN metrics included."""
    as_rows = set(
        data.draw(st.lists(st.sampled_from([m.version for m in committed]))) if committed else []
    )
    decoded = decode_index(
        encode_index(IndexedVersion.of(f"stamp-{m.version}", m) for m in committed)
    )
    assert decoded is not None
    mixed: list[VersionFacts] = [
        decoded[str(m.version)] if m.version in as_rows else m for m in committed
    ]
    for strategy in STRATEGIES:
        comparator = getattr(strategy, "comparator", None)
        expected = [m.version for m in versions_deciding(committed, candidate, comparator)]
        assert [m.version for m in versions_deciding(mixed, candidate, comparator)] == expected
        for row in mixed:
            record = next(m for m in committed if m.version == row.version)
            assert same_facts(row, record)
