"""Benchmark: the cost of validating an export before publishing it, against the export alone.

The 10 MB model of bench_export.py (an MLP of 2.6 M float32 parameters, raw float input)
is checkpointed once. Then, round after round (one warm-up round not counted), interleaved:

  (a) export     write_saved_model(modes=("serve",)) into a fresh dir
  (b) validated  the same write, then the staged-version check the export flow runs
                 (staged_validator: examples generated from the feature spec, every
                 serving signature called in the validating process, outputs judged),
                 with the validating process already running (TensorFlow imported there)
  (c) cold       as (b), but the validating process is started for this export: the cost a
                 task pays for its first export (Python start and TensorFlow import in the
                 fresh process)

Target: median(b)/median(a) <= 1.5; median(c)/median(a) is printed beside it (the fresh
process's TensorFlow import included). Both sides write the same SavedModel. The last line
printed is one JSON object with the figures.

Run: .venv/bin/python benchmarks/bench_validation.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_export import SIZES, definition_of, write_model_dir

from airflow_tf_export.savedmodel import write_saved_model
from airflow_tf_export.savedmodel.validation import (
    _PROCESSES,
    ValidationOptions,
    ValidationProcess,
    staged_validator,
)
from airflow_tf_export.storage.local import LocalStorage

TARGET = 1.5
SIZE = SIZES["10mb"]
DEFINITION = definition_of(SIZE)


def export(checkpoint: str, work: Path) -> Path:
    target = work / "export"
    shutil.rmtree(target, ignore_errors=True)
    write_saved_model(DEFINITION, checkpoint, target)
    return target


def main() -> None:
    arguments = argparse.ArgumentParser()
    arguments.add_argument("--runs", type=int, default=7)
    runs = arguments.parse_args().runs
    validate = staged_validator(DEFINITION, lambda uri: LocalStorage(), ValidationOptions())
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        work = Path(tmp)
        write_model_dir(SIZE, work / "model")
        checkpoint = str(work / "model" / "ckpt-1")
        times: dict[str, list[float]] = {"export": [], "validated": [], "cold": []}
        for round_number in range(runs + 1):
            for name in times:
                if name == "cold":
                    _PROCESSES[os.getpid()] = ValidationProcess()
                start = time.perf_counter()
                staged = export(checkpoint, work)
                if name != "export":
                    validate(staged, None)  # type: ignore[arg-type]
                elapsed = time.perf_counter() - start
                if round_number:
                    times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    warm = medians["validated"] / medians["export"]
    cold = medians["cold"] / medians["export"]
    for name, value in medians.items():
        print(f"{name:10s} median {value:.3f} s over {runs} rounds")
    print(
        f"validated/export = {warm:.2f} (target <= {TARGET}); with the fresh process's "
        f"TensorFlow import: cold/export = {cold:.2f}"
    )
    print(
        json.dumps(
            {
                "runs": runs,
                "medians_s": medians,
                "warm_ratio": warm,
                "cold_ratio": cold,
                "target": TARGET,
                "meets_target": warm <= TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
