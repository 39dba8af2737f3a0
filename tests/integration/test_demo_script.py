"""`scripts/demo.sh` (what `make demo` runs), with one DAG run in a temporary root: it prints
only its own output (no Airflow CLI chatter such as "No data found" or the graphviz warning),
and its last table comes from the `airflow-tf-export` command, which says "keep" or "would
delete" (a dry run) and never "deleted"."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_prints_its_own_output_only(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEMO_ROOT": str(tmp_path),
        "DEMO_RUNS": "1",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for chatter in ("No data found", "graphviz", "warning", "Traceback"):
        assert chatter not in out, f"{chatter!r} in the demo output:\n{out}"
    assert "== This provider, as Airflow sees it" in out
    assert "example_retraining" in out
    assert "run 2024-01-01 finished" in out
    assert "(a dry run: nothing is deleted)" in out
    model_dir = tmp_path / ".demo" / "model"
    best = next(line for line in out.splitlines() if line.startswith(f"{model_dir}/export/best"))
    assert best.endswith("(1 committed versions)")
    header = next(line for line in out.splitlines() if line.strip().startswith("version"))
    assert header.split()[:2] == ["version", "step"] and "retention" in header
    # One run: every version is kept; "deleted" is never said of a dry run.
    rows = [line for line in out.splitlines() if re.match(r"^  \d+\s", line)]
    assert rows and all(" keep " in row for row in rows), rows
    # Every version was validated before it was published (docs/validation.md).
    assert "validated" in header and all(" sig/" in row for row in rows), rows
    assert not re.search(r"\bdeleted\b", "\n".join(rows))
