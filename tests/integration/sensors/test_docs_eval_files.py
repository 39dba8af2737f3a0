"""docs/eval-metrics-sensor.md, "Where eval event files live": its example run with
TensorFlow, and the log lines and messages the doc shows, produced by a real sensor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import structlog
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor

DOC = Path(__file__).resolve().parents[3] / "docs" / "eval-metrics-sensor.md"
DOC_MODEL_DIR = "/data/models/regressor"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def _run_example(model_dir: Path) -> dict[str, Any]:
    """The example, with its model_dir put under a test directory."""
    example = _blocks("python")[1]
    code = example.replace(repr(DOC_MODEL_DIR).replace("'", '"'), repr(str(model_dir)))
    assert code != example
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def _pattern(shown: str) -> str:
    """A doc text line as a regex: `...` stands for anything, and `600.2 seconds` for any
    number of seconds."""
    parts = [re.split(r"\d+(?:\.\d+)?(?= seconds)", part) for part in shown.strip().split("...")]
    return ".*".join(r"[\d.]+".join(re.escape(piece) for piece in part) for part in parts)


def test_the_example_writes_an_evaluation_the_sensor_finds(tmp_path: Path) -> None:
    model_dir = tmp_path / "regressor"
    example = _run_example(model_dir)
    found = example["wait"].poke({})
    assert found.is_done
    assert (found.xcom_value["step"], found.xcom_value["metrics"]) == (
        1200,
        {"loss": 0.25, "mae": 0.375},
    )
    assert found.xcom_value["source"].startswith(f"{model_dir}/eval/events.out.tfevents.")

    validation = example["wait_validation"]
    assert not validation.poke({})
    example["record_evaluation"](f"{model_dir}/validation", 1200, {"loss": 0.5, "mae": 0.5})
    assert validation.poke({}).xcom_value["metrics"] == {"loss": 0.5, "mae": 0.5}


def test_the_log_lines_and_the_timeout_are_the_ones_the_doc_shows(tmp_path: Path) -> None:
    nothing_found, lacking, timed_out = _blocks("text")
    example = _run_example(tmp_path / "regressor")

    # An evaluation written to validation/ while the sensor reads the default eval/.
    elsewhere = tmp_path / "elsewhere"
    example["record_evaluation"](f"{elsewhere}/validation", 1200, {"loss": 0.25, "mae": 0.375})
    sensor = EvalMetricsSensor(task_id="wait", model_dir=str(elsewhere), min_step=1200)
    with structlog.testing.capture_logs() as logs:
        assert not sensor.poke({})  # type: ignore[arg-type]
    expected = nothing_found.strip().replace(DOC_MODEL_DIR, str(elsewhere))
    assert [log["event"] for log in logs if log["log_level"] == "info"] == [expected]
    with pytest.raises(AirflowSensorTimeout) as timeout:
        EvalMetricsSensor(
            task_id="wait", model_dir=str(elsewhere), min_step=1200, timeout=0
        ).execute(
            {}  # type: ignore[arg-type]
        )
    assert str(timeout.value).endswith(f"Last look: {expected}")

    # A metric name with a typo: a warning on every poke, then the timeout.
    def typo(timeout: float) -> EvalMetricsSensor:
        return EvalMetricsSensor(
            task_id="wait",
            model_dir=str(tmp_path / "regressor"),
            min_step=1200,
            required_metrics=["val_mae"],
            timeout=timeout,
        )

    with structlog.testing.capture_logs() as logs:
        assert not typo(600).poke({})  # type: ignore[arg-type]
    warnings = [log["event"] for log in logs if log["log_level"] == "warning"]
    assert len(warnings) == 1 and re.fullmatch(_pattern(lacking), warnings[0]), warnings
    with pytest.raises(AirflowSensorTimeout) as timeout:
        typo(0).execute({})  # type: ignore[arg-type]
    assert re.fullmatch(_pattern(timed_out), str(timeout.value)), str(timeout.value)
    assert str(timeout.value).endswith(f"Last look: {warnings[0]}")
