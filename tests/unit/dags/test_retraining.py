"""The retraining template's shape: pluggable steps, gated best exports, retention."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator

from airflow_tf_export.dags.retraining import TRAINED_CHECKPOINT, retraining_dag
from airflow_tf_export.operators.compare import CompareBranchOperator


def _dag(**overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "dag_id": "retrain",
        "model_dir": "/data/model",
        "model_definition": "airflow_tf_export.example.model:definition",
        "train": "airflow_tf_export.example.train:train",
        "evaluate": "airflow_tf_export.example.evaluate:evaluate",
        "exporters": [
            {"strategy": "best", "comparison": {"metric": "auc", "higher_is_better": True}},
            {"strategy": "latest", "exports_to_keep": 2, "retries": 0},
            {"strategy": "final", "max_steps": 100},
        ],
        "retention": {"keep": {"newest": 2}, "checkpoints_to_keep": 3},
    }
    arguments.update(overrides)
    return retraining_dag(**arguments)


def test_best_exports_are_gated_by_a_comparison_and_retention_runs_either_way() -> None:
    tasks = _dag().task_dict
    assert tasks["evaluate"].upstream_task_ids == {"train"}
    assert tasks["wait_for_eval"].upstream_task_ids == {"evaluate"}
    assert tasks["wait_for_eval"].checkpoint_path == TRAINED_CHECKPOINT
    compare = tasks["compare_best"]
    assert isinstance(compare, CompareBranchOperator)
    assert compare.follow_task_ids_if_better == "export_best"
    assert compare.comparison == {"metric": "auc", "higher_is_better": True}
    assert tasks["export_best"].upstream_task_ids == {"compare_best", "wait_for_eval"}
    assert tasks["export_latest"].upstream_task_ids == {"wait_for_eval"}
    assert tasks["export_final"].upstream_task_ids == {"wait_for_eval"}
    assert tasks["export_best"].retries == tasks["wait_for_eval"].retries == 2
    assert tasks["export_latest"].retries == 0
    retention = tasks["retention"]
    assert retention.upstream_task_ids == {"export_best", "export_latest", "export_final"}
    assert retention.trigger_rule == "none_failed"
    assert retention.model_dir == "/data/model"
    assert retention.exporter_dirs == [
        "/data/model/export/best",
        "/data/model/export/latest",
        "/data/model/export/final",
    ]


def test_operator_factories_and_external_evaluation() -> None:
    seen: dict[str, Any] = {}

    def train_on_cluster(**kwargs: Any) -> EmptyOperator:
        seen.update(kwargs)
        return EmptyOperator(task_id=kwargs["task_id"])

    tasks = _dag(train=train_on_cluster, evaluate=None, retention=None).task_dict
    assert seen == {"task_id": "train", "model_dir": "/data/model"}
    assert isinstance(tasks["train"], EmptyOperator)
    assert "evaluate" not in tasks and "retention" not in tasks
    assert tasks["wait_for_eval"].upstream_task_ids == {"train"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": 42}, "train must be an import string"),
        ({"train": "no-colon"}, "train must be an import string"),
        ({"evaluate": lambda **kw: EmptyOperator(task_id="other")}, "task_id='evaluate'"),
        ({"evaluate": lambda **kw: "not an operator"}, "must return an operator"),
        ({"exporters": []}, "non-empty list"),
        ({"model_dir": "gs://"}, "names no bucket"),
    ],
)
def test_bad_arguments_fail_while_parsing(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _dag(**overrides)
