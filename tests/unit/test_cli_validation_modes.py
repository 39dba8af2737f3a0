"""`airflow-tf-export export` refuses, before writing anything, to validate an export whose
modes have no signature validation can call (bad input, exit code BAD_INPUT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_tf_export.cli.main import BAD_INPUT, main


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--modes", "train"], "modes ['train'] write neither"),
        (["--modes", "eval", "--warmup-requests"], "modes ['eval'] write none"),
    ],
)
def test_export_refuses_modes_validation_cannot_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    model_dir = tmp_path / "model"
    argv = ["export", "--model-definition", "airflow_tf_export.example.model:definition"]
    code = main([*argv, "--model-dir", str(model_dir), "--name", "latest", *extra])
    assert code == BAD_INPUT
    assert named in capsys.readouterr().err
    assert not model_dir.exists()
