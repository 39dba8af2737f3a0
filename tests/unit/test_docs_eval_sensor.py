"""The sensor doc's DAG example builds a real DAG without TensorFlow (it stays true); the
example that writes evaluations with TensorFlow runs in tests/integration/sensors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "eval-metrics-sensor.md"


def test_the_example_builds_a_reschedule_mode_sensor_without_tensorflow() -> None:
    example = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    check = (
        "import sys\n"
        f"{example}\n"
        "(sensor,) = dag.tasks\n"
        "print(type(sensor).__name__, sensor.mode, sensor.min_step, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "EvalMetricsSensor reschedule 10000 False"
