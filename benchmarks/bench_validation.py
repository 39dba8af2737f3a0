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
process's TensorFlow import included). Both sides write the same SavedModel.

Memory (no target; the validating process is a second TensorFlow process beside the task's,
so a worker needs room for both): for the 10 MB and the 100 MB model of bench_export.py,
the peak RSS of a fresh validating process after it validated one export, against a fresh
process doing the same by hand: import TensorFlow, `tf.saved_model.load` the staged
version, call its serving signature once on a batch of the same size.

The last line printed is one JSON object with the figures.

Run: .venv/bin/python benchmarks/bench_validation.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
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
BY_HAND_CHECK = """
import sys
import tensorflow as tf
staged, batch, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = tf.saved_model.load(staged, tags=["serve"])
model.signatures["serving_default"](x=tf.ones([batch, width], tf.float32))
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def export(checkpoint: str, work: Path) -> Path:
    target = work / "export"
    shutil.rmtree(target, ignore_errors=True)
    write_saved_model(DEFINITION, checkpoint, target)
    return target


def main() -> None:
    arguments = argparse.ArgumentParser()
    arguments.add_argument("--runs", type=int, default=7)
    runs = arguments.parse_args().runs
    memory = {name: validation_memory(name) for name in SIZES}
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
    for name, found in memory.items():
        print(
            f"{name}: peak RSS of the validating process {found['ours_mb']:.0f} MB, of a "
            f"process loading and calling the version by hand {found['by_hand_mb']:.0f} MB "
            f"({found['ours_over_by_hand']:.2f}x)"
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
                "validating_process_peak_rss": memory,
            }
        )
    )


def validation_memory(size_name: str) -> dict[str, float]:
    """Peak RSS (MB) of a fresh validating process after one validation of the size's
    export, and of a fresh process loading and calling the same version by hand."""
    size = SIZES[size_name]
    definition = definition_of(size)
    validate = staged_validator(definition, lambda uri: LocalStorage(), ValidationOptions())
    with tempfile.TemporaryDirectory(prefix="bench-validation-rss-") as tmp:
        work = Path(tmp)
        write_model_dir(size, work / "model")
        staged = work / "export"
        write_saved_model(definition, str(work / "model" / "ckpt-1"), staged)
        _PROCESSES[os.getpid()] = ValidationProcess()
        record = validate(staged, None)  # type: ignore[arg-type]
        worker = _worker_pid()
        ours = _peak_rss_mb(worker)
        _end(worker)  # the next size's validation starts a fresh process
        del _PROCESSES[os.getpid()]
        check = [sys.executable, "-c", BY_HAND_CHECK, str(staged), str(record.examples)]
        found = subprocess.run(
            [*check, str(size.input_width)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    by_hand = int(found.stdout.split()[-1]) / 1024
    return {"ours_mb": ours, "by_hand_mb": by_hand, "ours_over_by_hand": ours / by_hand}


def _worker_pid() -> int:
    """The pid of this process's one validating process, found by its command line."""
    wanted = ["-m", "airflow_tf_export.savedmodel.validation_worker", str(os.getpid())]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if arguments[1:4] == wanted:
                found.append(int(entry.name))
    if len(found) != 1:
        raise RuntimeError(f"expected one validating process, found {found}")
    return found[0]


def _end(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes():
        time.sleep(0.05)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


if __name__ == "__main__":
    main()
