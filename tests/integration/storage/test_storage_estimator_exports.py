"""Exporter dirs that already hold tf.estimator's own exports, on local disk and on the GCS
emulator: the real exports of tests/data/estimator/linear_classifier (TensorFlow 2.15.1) are
copied in, their global steps are read from their variables, and the strategies count them.

Real: the Estimator's exports and eval event files, both storage backends, the export flow.
The SavedModels this product publishes here are SavedModel-shaped plain files
(`write_model_files`): what matters is the decision, the version number and what is kept.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from storage_test_models import Backend, write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
)
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.storage.base import WrittenModel
from airflow_tf_export.storage.export_flow import ExportOutcome, export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

MODEL_DIR = (
    Path(__file__).resolve().parents[2] / "data" / "estimator" / "linear_classifier" / "model_dir"
)
# What the Estimator exported (reference/decisions.json): version -> global step.
ESTIMATOR = {
    "best": {1_796_476_015: 100, 1_796_476_018: 125},
    "latest": {1_796_476_018: 125, 1_796_476_021: 150},
    "final": {1_796_476_021: 150},
}
BEFORE_THE_ESTIMATOR = 1_700_000_000  # a clock older than its exports: numbering must still rise
NOT_OURS = "not written by airflow-tf-export"


def estimator_exporter(backend: Backend, name: str) -> ExporterDir:
    """A copy of the Estimator's `export/<name>` in the backend."""
    uri = backend.uri("model", "export", name)
    if backend.name == "local":
        shutil.copytree(MODEL_DIR / "export" / name, uri)
    else:
        backend.storage.upload_dir(MODEL_DIR / "export" / name, uri)
    return ExporterDir(backend.storage, uri)


class EvalLookup:
    """Looks eval results up in the Estimator's real event files; records each call."""

    def __init__(self) -> None:
        self.reader = EvalDirReader(LocalStorage(), str(MODEL_DIR))
        self.calls: list[list[int]] = []

    def __call__(self, steps: Sequence[int]) -> dict[int, EvalResult]:
        self.calls.append(list(steps))
        self.reader.refresh()
        return {s: r for s in steps for r in self.reader.results() if r.step == s}


def export(
    exporter: ExporterDir,
    strategy: ExportStrategy,
    step: int,
    *,
    loss: float | None = None,
    final: bool = False,
    lookup: EvalLookup | None = None,
    now: int = BEFORE_THE_ESTIMATOR,
) -> ExportOutcome:
    evaluated = None if loss is None else EvalResult(step, {"loss": loss})
    return export_with_strategy(
        exporter,
        strategy,
        Candidate(f"/model/model.ckpt-{step}", step, evaluated),
        lambda directory: write_model_files(directory, step),
        is_the_final_export=final,
        now_seconds=now,
        foreign_eval_results=lookup,
    )


@pytest.mark.parametrize("name", list(ESTIMATOR))
def test_a_scan_reads_the_global_step_of_every_estimator_export(
    backend: Backend, name: str
) -> None:
    state = estimator_exporter(backend, name).scan()
    assert state.committed == []
    assert [(f.version, f.global_step) for f in state.foreign_versions] == sorted(
        ESTIMATOR[name].items()
    )
    assert all(f.unreadable is None and f.eval_result is None for f in state.foreign_versions)
    assert state.foreign == sorted(ESTIMATOR[name])


def test_an_unreadable_foreign_dir_is_kept_and_named_beside_readable_ones(backend: Backend) -> None:
    exporter = estimator_exporter(backend, "latest")
    broken = exporter.version_uri(1_796_476_010)
    backend.storage.write_bytes(backend.storage.join(broken, "saved_model.pb"), b"not a model")
    state = exporter.scan()
    assert [(f.version, f.global_step) for f in state.foreign_versions] == [
        (1_796_476_010, None),
        (1_796_476_018, 125),
        (1_796_476_021, 150),
    ]
    unreadable = state.foreign_versions[0].unreadable
    assert unreadable == f"{broken} holds no variables/variables.index"

    outcome = export(exporter, LatestStrategy(name="latest", exports_to_keep=1), 175)
    assert outcome.exported
    assert outcome.decision.reason == (
        f"candidate step 175 is newer than step 150 in foreign version 1796476021 ({NOT_OURS}) "
        f"(ignored foreign versions: 1796476010 (global step unreadable: {unreadable}))"
    )
    assert outcome.retention.foreign_versions == (1_796_476_010, 1_796_476_018, 1_796_476_021)
    assert backend.storage.exists(backend.storage.join(broken, "saved_model.pb"))


def test_latest_skips_steps_the_estimator_exported_and_numbers_new_versions_above_them(
    backend: Backend,
) -> None:
    exporter = estimator_exporter(backend, "latest")
    strategy = LatestStrategy(name="latest", exports_to_keep=1)
    for step, holder in ((150, 1_796_476_021), (125, 1_796_476_018)):
        skipped = export(exporter, strategy, step)
        assert not skipped.exported and skipped.metadata is None
        assert skipped.decision.reason == (
            f"skipped: step {step} is already exported as foreign version {holder} "
            f"(step {step}, {NOT_OURS})"
        )
        assert [f["global_step"] for f in skipped.to_dict()["foreign_versions"]] == [125, 150]
    older = export(exporter, strategy, 100)
    assert older.decision.reason == (
        f"skipped: candidate step 100 is older than step 150 in foreign version 1796476021 "
        f"({NOT_OURS})"
    )

    first, second = export(exporter, strategy, 175), export(exporter, strategy, 200)
    assert first.metadata is not None and second.metadata is not None
    assert first.metadata.version == 1_796_476_022, "newest foreign version + 1"
    assert second.metadata.version == 1_796_476_023
    state = exporter.scan()
    assert [m.global_step for m in state.committed] == [200]
    assert [f.version for f in state.foreign_versions] == sorted(ESTIMATOR["latest"])


def test_final_treats_the_estimator_final_export_as_its_own(backend: Backend) -> None:
    exporter = estimator_exporter(backend, "final")
    strategy = FinalStrategy(name="final")
    again = export(exporter, strategy, 150, final=True)
    assert not again.exported
    assert again.decision.reason == (
        f"skipped: final export already exists as foreign version 1796476021 (step 150, "
        f"{NOT_OURS}); candidate step 150 is not newer"
    )
    resumed = export(exporter, strategy, 300, final=True)
    assert resumed.metadata is not None and resumed.metadata.version == 1_796_476_022


def test_best_compares_with_the_eval_results_of_the_estimator_exports(backend: Backend) -> None:
    exporter = estimator_exporter(backend, "best")
    strategy = BestStrategy(name="best", exports_to_keep=1)
    lookup = EvalLookup()
    worse = export(exporter, strategy, 150, loss=0.6361076831817627, lookup=lookup)
    assert not worse.exported
    assert worse.decision.reason == (
        "skipped: candidate loss 0.636108 is not better than best loss 0.5789 in foreign "
        f"version 1796476015 (step 100, {NOT_OURS})"
    )
    assert lookup.calls == [[100, 125]]
    considered = worse.to_dict()["foreign_versions"]
    assert [(f["version"], f["eval_result"]["metrics"]["loss"]) for f in considered] == [
        (1_796_476_015, pytest.approx(0.5789000988006592)),
        (1_796_476_018, pytest.approx(0.5816274881362915)),
    ]

    better = export(exporter, strategy, 175, loss=0.55, lookup=lookup)
    assert better.exported and better.metadata is not None
    assert better.decision.reason == (
        "candidate loss 0.55 is better than best loss 0.5789 in foreign version 1796476015 "
        f"(step 100, {NOT_OURS})"
    )
    assert better.metadata.version == 1_796_476_019
    assert lookup.calls == [[100, 125], [100, 125]], "once per export: both decisions share it"
    no_longer_best = export(exporter, strategy, 200, loss=0.56, lookup=lookup)
    assert no_longer_best.decision.reason == (
        f"skipped: candidate loss 0.56 is not better than best loss 0.55 in version "
        f"{better.metadata.version}"
    )
    assert [f.version for f in exporter.scan().foreign_versions] == sorted(ESTIMATOR["best"])


def test_eval_results_are_not_looked_up_without_foreign_versions(backend: Backend) -> None:
    lookup = EvalLookup()
    empty = ExporterDir(backend.storage, backend.uri("model", "export", "new"))
    assert export(empty, BestStrategy(name="new"), 175, loss=0.5, lookup=lookup).exported
    assert export(empty, BestStrategy(name="new"), 200, loss=0.4, lookup=lookup).exported
    assert lookup.calls == []


def test_a_foreign_export_appearing_during_the_write_is_seen_by_the_second_decision(
    backend: Backend,
) -> None:
    """The Estimator (still running) exports a better model while ours is being written:
    the re-decision under the lock, on a fresh scan, skips."""
    uri = backend.uri("model", "export", "best")
    exporter = ExporterDir(backend.storage, uri)
    lookup = EvalLookup()

    def estimator_exports_meanwhile(directory: Path) -> WrittenModel:
        source = MODEL_DIR / "export" / "best" / "1796476015"
        backend.storage.upload_dir(source, backend.storage.join(uri, "1796476015"))
        return write_model_files(directory, 160)

    outcome = export_with_strategy(
        exporter,
        BestStrategy(name="best"),
        Candidate("/model/model.ckpt-160", 160, EvalResult(160, {"loss": 0.6})),
        estimator_exports_meanwhile,
        foreign_eval_results=lookup,
    )
    assert not outcome.exported
    assert outcome.decision.reason == (
        "skipped: candidate loss 0.6 is not better than best loss 0.5789 in foreign version "
        f"1796476015 (step 100, {NOT_OURS})"
    )
    assert lookup.calls == [[100]]
    state = exporter.scan()
    assert state.committed == [] and state.foreign == [1_796_476_015]
