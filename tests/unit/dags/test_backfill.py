"""The backfill template: checkpoint selection per interval and the DAG it builds."""

from __future__ import annotations

import itertools

import pendulum
import pytest
from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

from airflow_tf_export.dags.backfill import (
    CheckpointFile,
    backfill_dag,
    check_map_length,
    nothing_selected_reason,
    select_checkpoints_in_window,
)

CHECKPOINTS = [
    CheckpointFile("/m/ckpt-30", 30, 250.0),
    CheckpointFile("/m/ckpt-10", 10, 100.0),
    CheckpointFile("/m/ckpt-20", 20, 200.0),
    CheckpointFile("/m/ckpt-40", 40, 300.0),
]


def test_selects_by_time_half_open_and_by_step() -> None:
    assert select_checkpoints_in_window(CHECKPOINTS, start=100, end=250) == [
        "/m/ckpt-10",
        "/m/ckpt-20",
    ]
    assert select_checkpoints_in_window(CHECKPOINTS, start=0, end=50) == []
    by_step = select_checkpoints_in_window(CHECKPOINTS, start=0, end=1, min_step=20, max_step=30)
    assert by_step == ["/m/ckpt-20", "/m/ckpt-30"]
    assert select_checkpoints_in_window(CHECKPOINTS, start=0, end=1, min_step=35) == ["/m/ckpt-40"]


def test_consecutive_intervals_take_each_checkpoint_once() -> None:
    bounds = [0, 150, 250, 251, 1000]
    taken = [
        path
        for start, end in itertools.pairwise(bounds)
        for path in select_checkpoints_in_window(CHECKPOINTS, start=start, end=end)
    ]
    assert sorted(taken) == sorted(c.path for c in CHECKPOINTS)


def test_bad_selection_inputs() -> None:
    with pytest.raises(ValueError, match="min_step 5 is greater than max_step 4"):
        select_checkpoints_in_window(CHECKPOINTS, start=0, end=1, min_step=5, max_step=4)
    with pytest.raises(ValueError, match="no modification time"):
        select_checkpoints_in_window([CheckpointFile("/m/ckpt-1", 1, None)], start=0, end=1)
    check_map_length(["a"] * 3, 3)
    with pytest.raises(ValueError, match=r"4 checkpoints selected, more than .*\(3\)"):
        check_map_length(["a"] * 4, 3)


def test_an_empty_selection_says_which_checkpoints_are_there() -> None:
    """A model_dir keeps only its newest checkpoints: a run whose interval held deleted ones
    is skipped, naming what is left."""
    day = 86_400.0
    dated = [CheckpointFile(c.path, c.step, c.mtime * day) for c in CHECKPOINTS]
    assert nothing_selected_reason(dated, model_dir="/m", start=0, end=50) == (
        "no checkpoint with its time in the data interval [1970-01-01T00:00:00+00:00, "
        "1970-01-01T00:00:50+00:00): the 4 checkpoints of /m are of steps 10..40, written "
        "1970-04-11T00:00:00+00:00 .. 1970-10-28T00:00:00+00:00; older ones were deleted by the "
        "trainer, which keeps only its newest checkpoints, so nothing is left to export here"
    )
    by_step = nothing_selected_reason(CHECKPOINTS, model_dir="/m", start=0, end=1, min_step=41)
    assert by_step == (
        "no checkpoint with a step in 41..: the 4 checkpoints of /m are of steps 10..40, "
        "written 1970-01-01T00:01:40+00:00 .. 1970-01-01T00:05:00+00:00; the trainer has "
        "written none there yet"
    )
    later = nothing_selected_reason(dated, model_dir="/m", start=400 * day, end=401 * day)
    assert later.endswith("; the trainer has written none there yet"), later
    between = nothing_selected_reason(
        CHECKPOINTS, model_dir="/m", start=0, end=1, min_step=21, max_step=29
    )
    assert between.endswith(
        "; none was written there, or the trainer deleted it (it keeps only its newest checkpoints)"
    ), between
    undated = [CheckpointFile("/m/ckpt-5", 5, None)]
    assert "are of steps 5..5; older" in nothing_selected_reason(
        undated, model_dir="/m", start=0, end=1, max_step=4
    )
    assert nothing_selected_reason([], model_dir="gs://b/m", start=0, end=1, max_step=3) == (
        "no checkpoint with a step in ..3: gs://b/m holds no complete checkpoint"
    )


def _dag(**overrides: object) -> object:
    arguments: dict[str, object] = {
        "dag_id": "bf",
        "model_dir": "gs://bucket/model",
        "model_definition": "airflow_tf_export.example.model:definition",
        "evaluate": "airflow_tf_export.example.evaluate:evaluate",
        "exporters": [{"strategy": "best", "exports_to_keep": 3}],
        "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
        "retention": {"keep": {"newest": 2}},
    }
    arguments.update(overrides)
    return backfill_dag(**arguments)  # type: ignore[arg-type]


def test_dag_maps_evaluation_sensor_and_export_over_the_selection() -> None:
    dag = _dag()
    assert set(dag.task_dict) == {  # type: ignore[attr-defined]
        "select_checkpoints",
        "evaluate",
        "wait_for_eval",
        "export_best",
        "retention",
    }
    tasks = dag.task_dict  # type: ignore[attr-defined]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)  # type: ignore[attr-defined]
    assert tasks["evaluate"].upstream_task_ids == {"select_checkpoints"}
    assert tasks["wait_for_eval"].upstream_task_ids == {"select_checkpoints", "evaluate"}
    assert tasks["wait_for_eval"].partial_kwargs["deferrable"] is True
    assert tasks["export_best"].upstream_task_ids == {"wait_for_eval"}
    assert tasks["evaluate"].partial_kwargs["max_active_tis_per_dag"] == 2
    assert tasks["export_best"].partial_kwargs["retries"] == 2
    assert tasks["wait_for_eval"].partial_kwargs["retries"] == 2
    assert tasks["retention"].upstream_task_ids == {"export_best"}
    assert tasks["retention"].trigger_rule == "none_failed"
    assert tasks["retention"].exporter_dirs == ["gs://bucket/model/export/best"]


def test_dag_without_evaluate_waits_for_an_external_evaluator() -> None:
    dag = _dag(evaluate=None, schedule=pendulum.duration(hours=6), retention=None)
    assert set(dag.task_dict) == {"select_checkpoints", "wait_for_eval", "export_best"}  # type: ignore[attr-defined]
    assert isinstance(dag.timetable, DeltaDataIntervalTimetable)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"retention": {"keep": {"newest": 1}, "checkpoints_to_keep": 2}}, "checkpoints_to_keep"),
        ({"evaluate": "not an import string"}, "evaluate must be an import string"),
        ({"model_definition": "x"}, "model_definition must be an import string"),
        ({"model_dir": "relative"}, "relative local path"),
        ({"exporters": [{"strategy": "nope"}]}, "valid strategies"),
    ],
)
def test_bad_arguments_fail_while_parsing(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _dag(**overrides)
