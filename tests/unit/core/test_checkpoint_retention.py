"""Checkpoint retention never deletes the state-file checkpoint, unevaluated or protected ones."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.checkpoint_retention import (
    CheckpointInfo,
    CheckpointPlanItem,
    plan_checkpoint_retention,
)


def checkpoints(*steps: int, base: str = "/model") -> list[CheckpointInfo]:
    return [CheckpointInfo(f"{base}/ckpt-{step}", step) for step in steps]


@pytest.mark.parametrize("keep_newest", [0, -1, 2.5, True, None])
def test_keep_newest_must_be_a_positive_integer(keep_newest: object) -> None:
    with pytest.raises(ValueError) as caught:
        plan_checkpoint_retention(
            checkpoints(1),
            keep_newest=keep_newest,  # type: ignore[arg-type]
            state_latest=None,
            newest_evaluated_step=None,
        )
    assert str(caught.value) == f"keep_newest must be a positive integer, got {keep_newest!r}"


@pytest.mark.parametrize("evaluated", ["10", 1.5, True])
def test_newest_evaluated_step_must_be_an_integer(evaluated: object) -> None:
    with pytest.raises(
        ValueError, match=f"newest_evaluated_step must be an integer or None, got {evaluated!r}"
    ):
        plan_checkpoint_retention(
            checkpoints(1),
            keep_newest=1,
            state_latest=None,
            newest_evaluated_step=evaluated,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "", "step": 1}, "checkpoint prefix must be a non-empty path, got ''"),
        ({"prefix": 3, "step": 1}, "checkpoint prefix must be a non-empty path, got 3"),
        (
            {"prefix": "/m/ckpt-1", "step": -1},
            "checkpoint '/m/ckpt-1' step must be an integer >= 0, got -1",
        ),
        (
            {"prefix": "/m/ckpt-1", "step": "1"},
            "checkpoint '/m/ckpt-1' step must be an integer >= 0, got '1'",
        ),
    ],
)
def test_checkpoint_info_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        CheckpointInfo(**kwargs)
    assert str(caught.value) == message


def test_plan_keeps_newest_state_file_unevaluated_and_exported_and_explains() -> None:
    plan = plan_checkpoint_retention(
        checkpoints(500, 100, 200, 300, 400),
        keep_newest=1,
        state_latest="ckpt-300",
        newest_evaluated_step=400,
        exported_prefixes=["/model/ckpt-100/"],
        keep_exported=True,
    )
    assert plan.keep_prefixes == ("/model/ckpt-100", "/model/ckpt-300", "/model/ckpt-500")
    assert plan.delete_prefixes == ("/model/ckpt-200", "/model/ckpt-400")
    assert plan.explain().splitlines() == [
        "/model/ckpt-100 keep exported: a committed version was exported from it",
        "/model/ckpt-200 delete: evaluated, older than the 1 newest, not protected",
        "/model/ckpt-300 keep state-file: the latest checkpoint in the state file",
        "/model/ckpt-400 delete: evaluated, older than the 1 newest, not protected",
        "/model/ckpt-500 keep newest, unevaluated: among the 1 newest; "
        "newer than the newest evaluated step 400",
    ]


def test_exported_checkpoints_are_deletable_unless_keep_exported() -> None:
    plan = plan_checkpoint_retention(
        checkpoints(1, 2, 3),
        keep_newest=1,
        state_latest="/model/ckpt-3",
        newest_evaluated_step=3,
        exported_prefixes=["/model/ckpt-1"],
    )
    assert plan.delete_prefixes == ("/model/ckpt-1", "/model/ckpt-2")


def test_nothing_evaluated_keeps_everything() -> None:
    plan = plan_checkpoint_retention(
        checkpoints(1, 2, 3), keep_newest=1, state_latest=None, newest_evaluated_step=None
    )
    assert plan.delete_prefixes == ()
    assert plan.items[0] == CheckpointPlanItem(
        "/model/ckpt-1", 1, True, "unevaluated", "no checkpoint has been evaluated yet"
    )


def test_state_file_paths_match_absolute_relative_and_uri_prefixes() -> None:
    for base, latest in [
        ("gs://bucket/run", "ckpt-1"),
        ("gs://bucket/run", "gs://bucket/run/ckpt-1"),
        ("/model", "/model/ckpt-1/"),
        ("/model/sub", "sub/ckpt-1"),
    ]:
        plan = plan_checkpoint_retention(
            checkpoints(1, 2, 3, base=base),
            keep_newest=1,
            state_latest=latest,
            newest_evaluated_step=3,
        )
        assert plan.keep_prefixes == (f"{base}/ckpt-1", f"{base}/ckpt-3"), (base, latest)


def test_paths_recorded_before_the_model_dir_was_copied_match_by_name() -> None:
    """A state file copied with its model dir (local disk to GCS) and exports made before the
    copy record the old location."""
    plan = plan_checkpoint_retention(
        checkpoints(1, 2, 3, 4, base="gs://bucket/run"),
        keep_newest=1,
        state_latest="/home/me/run/ckpt-2",
        newest_evaluated_step=4,
        exported_prefixes=["/home/me/run/ckpt-1"],
        keep_exported=True,
    )
    assert plan.keep_prefixes == (
        "gs://bucket/run/ckpt-1",
        "gs://bucket/run/ckpt-2",
        "gs://bucket/run/ckpt-4",
    )
    assert plan.delete_prefixes == ("gs://bucket/run/ckpt-3",)


def test_a_different_checkpoint_name_does_not_match() -> None:
    plan = plan_checkpoint_retention(
        checkpoints(1, 2), keep_newest=1, state_latest="kpt-1", newest_evaluated_step=2
    )
    assert plan.delete_prefixes == ("/model/ckpt-1",)


@given(
    st.lists(st.integers(0, 50), unique=True, max_size=20),
    st.integers(1, 5),
    st.one_of(st.none(), st.integers(0, 50)),
    st.one_of(st.none(), st.integers(0, 50)),
    st.sets(st.integers(0, 50), max_size=5),
    st.booleans(),
)
def test_protected_checkpoints_are_never_deleted(
    steps: list[int],
    keep_newest: int,
    latest_step: int | None,
    evaluated: int | None,
    exported_steps: set[int],
    keep_exported: bool,
) -> None:
    plan = plan_checkpoint_retention(
        checkpoints(*steps),
        keep_newest=keep_newest,
        state_latest=None if latest_step is None else f"ckpt-{latest_step}",
        newest_evaluated_step=evaluated,
        exported_prefixes=[f"/model/ckpt-{s}" for s in exported_steps],
        keep_exported=keep_exported,
    )
    protected = set(sorted(steps)[-keep_newest:])
    if latest_step is not None:
        protected.add(latest_step)
    protected |= {s for s in steps if evaluated is None or s > evaluated}
    if keep_exported:
        protected |= exported_steps
    deleted = {int(prefix.rsplit("-", 1)[1]) for prefix in plan.delete_prefixes}
    kept = {int(prefix.rsplit("-", 1)[1]) for prefix in plan.keep_prefixes}
    assert deleted == set(steps) - protected
    assert kept == set(steps) & protected
    assert [item.step for item in plan.items] == sorted(steps)
