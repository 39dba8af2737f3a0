"""Concurrency on local disk: separate processes publishing into one exporter directory."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from storage_test_models import NOW

from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

WORKER = Path(__file__).with_name("storage_publish_worker.py")


def _run_together(commands: list[list[str]], go_file: Path) -> list[str]:
    """Start every worker, wait until all are ready, release them at once, collect output."""
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), *c], stdout=subprocess.PIPE, text=True)
        for c in commands
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    go_file.touch()
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        outputs.append(out.strip())
    return outputs


def test_eight_processes_publishing_at_once_get_eight_distinct_versions(tmp_path: Path) -> None:
    """All eight pick the same clock second, so their renames collide and they retry."""
    uri = str(tmp_path / "model" / "export" / "race")
    go = tmp_path / "go"
    outputs = _run_together(
        [["publish", uri, str(step), str(go), str(NOW)] for step in range(1, 9)], go
    )
    versions = sorted(int(out.split()[-1]) for out in outputs)
    assert versions == list(range(NOW, NOW + 8))
    exporter = ExporterDir(LocalStorage(), uri)
    state = exporter.scan()
    assert [m.version for m in state.committed] == versions
    assert sorted(m.global_step for m in state.committed) == list(range(1, 9))
    assert state.staging == [] and state.invalid == []
    for meta in state.committed:
        assert exporter.verify(meta.version).metadata == meta


def test_concurrent_best_exporters_never_publish_a_worse_model(tmp_path: Path) -> None:
    """Under the exporter lock each exporter re-decides on what is committed, so in version
    order every committed loss is strictly lower than the one before, and the best
    candidate is always among them."""
    uri = str(tmp_path / "model" / "export" / "best")
    go = tmp_path / "go"
    losses = {1: 0.5, 2: 0.3, 3: 0.4, 4: 0.2, 5: 0.35}
    _run_together(
        [["best", uri, str(step), str(loss), str(go)] for step, loss in losses.items()], go
    )
    committed = ExporterDir(LocalStorage(), uri).committed()
    committed_losses = [m.eval_result.metrics["loss"] for m in committed if m.eval_result]
    assert len(committed_losses) == len(committed) >= 1
    assert all(a > b for a, b in itertools.pairwise(committed_losses))
    assert committed_losses[-1] == 0.2
