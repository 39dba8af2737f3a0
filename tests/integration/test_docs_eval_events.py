"""docs/eval-events.md's training and evaluation script, run as written (into a temporary
model dir), writes what the page promises: a `ckpt-20` checkpoint named by the state file,
and an eval result at step 20 with both metrics and the evaluated checkpoint's path, which
the sensor's reader finds and the sensor's target matches."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from airflow_tf_export.core.eval_wait import EvalWait, select_result
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.checkpoints import resolve_checkpoint

PAGE = Path(__file__).resolve().parents[2] / "docs" / "eval-events.md"


def test_the_pages_script_writes_a_checkpoint_and_an_eval_result_the_sensor_finds(
    tmp_path: Path,
) -> None:
    (script,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert 'MODEL_DIR = "/data/models/ctr"' in script
    model_dir = str(tmp_path / "ctr")
    code = script.replace('MODEL_DIR = "/data/models/ctr"', f"MODEL_DIR = {model_dir!r}")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    storage = storage_for(model_dir)
    latest = resolve_checkpoint(storage, model_dir)
    assert (latest.path, latest.step) == (f"{model_dir}/ckpt-20", 20)
    reader = EvalDirReader(storage, model_dir)  # the default pattern, eval/*.tfevents.*
    reader.refresh()
    (result,) = reader.results()
    assert result.step == 20
    assert set(result.metrics) == {"loss", "auc"}
    assert result.checkpoint_path == f"{model_dir}/ckpt-20"
    wait = EvalWait(checkpoint_path=latest.path, required_metrics=("loss", "auc"))
    assert select_result([result], wait) == result
