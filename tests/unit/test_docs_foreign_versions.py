"""docs/foreign-versions.md stays true: its sample reasons are what the strategies say for the
Estimator's exports of tests/data/estimator/linear_classifier (steps and losses from
reference/decisions.json)."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.foreign import ForeignVersion
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    FinalStrategy,
    LatestStrategy,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "foreign-versions.md"


def test_the_sample_reasons_are_the_strategies_reasons() -> None:
    (block,) = re.findall(r"```\n(.*?)```", DOC.read_text(), re.S)
    best = [
        ForeignVersion(1_796_476_015, 100, EvalResult(100, {"loss": 0.5789000988006592})),
        ForeignVersion(1_796_476_018, 125, EvalResult(125, {"loss": 0.5816274881362915})),
    ]
    latest = [ForeignVersion(1_796_476_018, 125), ForeignVersion(1_796_476_021, 150)]
    final = [ForeignVersion(1_796_476_021, 150)]
    checkpoint_150 = Candidate(
        "/model_dir/model.ckpt-150", 150, EvalResult(150, {"loss": 0.6361076831817627})
    )
    decisions = [
        BestStrategy(name="best").decide([], checkpoint_150, foreign=best),
        LatestStrategy(name="latest").decide([], checkpoint_150, foreign=latest),
        FinalStrategy(name="final").decide(
            [], checkpoint_150, is_the_final_export=True, foreign=final
        ),
    ]
    assert block.splitlines() == [d.reason for d in decisions]
    assert not any(d.export for d in decisions)
