"""ForeignVersion records and the helpers strategies use to count them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.foreign import (
    ForeignVersion,
    holding_step,
    ignored_note,
    known_steps,
    newest_by_step,
    newest_exported_step,
    unreadable_steps,
    with_eval_results,
)

V = 1_796_476_015


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 0, "global_step": 1}, "foreign version must be a positive integer, got 0"),
        (
            {"version": True, "global_step": 1},
            "foreign version must be a positive integer, got True",
        ),
        (
            {"version": V},
            f"foreign version {V} needs either a global_step or the reason it is unreadable, "
            "got global_step=None, unreadable=None",
        ),
        (
            {"version": V, "global_step": 3, "unreadable": "corrupt"},
            f"foreign version {V} needs either a global_step or the reason it is unreadable, "
            "got global_step=3, unreadable='corrupt'",
        ),
        (
            {"version": V, "global_step": -1},
            f"foreign version {V} global_step must be an integer >= 0, got -1",
        ),
        (
            {"version": V, "global_step": 2.0},
            f"foreign version {V} global_step must be an integer >= 0, got 2.0",
        ),
        (
            {"version": V, "global_step": 100, "eval_result": EvalResult(125, {"loss": 1.0})},
            f"foreign version {V} holds step 100, but its eval result is for step 125",
        ),
    ],
)
def test_bad_foreign_versions_are_rejected_with_the_bad_value(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        ForeignVersion(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_a_foreign_version_names_itself_and_serialises_to_json() -> None:
    foreign = ForeignVersion(V, 100, EvalResult(100, {"loss": 0.5789}))
    assert foreign.label == f"foreign version {V} (step 100, not written by airflow-tf-export)"
    assert foreign.clause == f"step 100 in foreign version {V} (not written by airflow-tf-export)"
    as_dict = foreign.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["version"] == V and as_dict["global_step"] == 100
    assert as_dict["eval_result"]["metrics"] == {"loss": 0.5789}
    assert ForeignVersion(V, unreadable="no variables").to_dict() == {
        "version": V,
        "global_step": None,
        "eval_result": None,
        "unreadable": "no variables",
    }


def test_eval_results_attach_by_step_and_unknown_steps_stay_without() -> None:
    foreign = [
        ForeignVersion(V, 100),
        ForeignVersion(V + 3, 125),
        ForeignVersion(V + 6, None, unreadable="x"),
    ]
    results = {100: EvalResult(100, {"loss": 0.5}), 150: EvalResult(150, {"loss": 0.4})}
    adopted = with_eval_results(foreign, results)
    assert [f.eval_result for f in adopted] == [results[100], None, None]
    assert known_steps(foreign) == [100, 125]


def test_lookups_by_step() -> None:
    foreign = [
        ForeignVersion(V + 5, 150),
        ForeignVersion(V, 150),
        ForeignVersion(V + 9, 125),
        ForeignVersion(V + 20, unreadable="corrupt"),
    ]
    assert holding_step(foreign, 150) == ForeignVersion(V, 150)
    assert holding_step(foreign, 100) is None
    assert newest_by_step(foreign) == ForeignVersion(V + 5, 150)
    assert newest_by_step([ForeignVersion(V, unreadable="corrupt")]) is None
    assert unreadable_steps(foreign) == [
        (ForeignVersion(V + 20, unreadable="corrupt"), "global step unreadable: corrupt")
    ]


def test_the_ignored_note_lists_five_by_version_and_counts_the_rest() -> None:
    assert ignored_note([]) == ""
    ignored = [(ForeignVersion(V + i, unreadable="corrupt"), f"why {i}") for i in range(7, 0, -1)]
    assert ignored_note(ignored) == (
        f" (ignored foreign versions: {V + 1} (why 1), {V + 2} (why 2), {V + 3} (why 3), "
        f"{V + 4} (why 4), {V + 5} (why 5) and 2 more)"
    )


foreign_versions = st.lists(
    st.one_of(
        st.builds(
            ForeignVersion,
            version=st.integers(1, 2**40),
            global_step=st.integers(0, 10**9),
        ),
        st.builds(
            ForeignVersion,
            version=st.integers(1, 2**40),
            unreadable=st.just("global step unreadable"),
        ),
    ),
    max_size=6,
)


@given(committed=st.lists(st.integers(0, 10**9), max_size=6), foreign=foreign_versions)
def test_the_newest_exported_step_is_the_highest_committed_or_readable_foreign_step(
    committed: list[int], foreign: list[ForeignVersion]
) -> None:
    newest = newest_exported_step(committed, foreign)
    held = [*committed, *(f.global_step for f in foreign if f.global_step is not None)]
    if not held:
        assert newest is None
        return
    assert newest in held
    assert all(step <= newest for step in held)
    # Unreadable foreign versions and the order of either list never change it.
    readable = [f for f in foreign if f.global_step is not None]
    assert newest_exported_step(reversed(committed), readable[::-1]) == newest


def test_an_estimator_export_newer_than_every_committed_version_is_the_newest() -> None:
    estimator = [ForeignVersion(V, 150), ForeignVersion(V + 1, unreadable="no variables")]
    assert newest_exported_step([100, 125], estimator) == 150
    assert newest_exported_step([], estimator) == 150
    assert newest_exported_step([], [ForeignVersion(V, unreadable="corrupt")]) is None
