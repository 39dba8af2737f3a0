"""Benchmark: reading eval event files, against TensorFlow's and TensorBoard's readers.

The input is an Estimator-layout eval event file written by TensorFlow
(`tf.compat.v1.summary.FileWriter`): 100,000 evaluations, one event of 5 `simple_value`
scalars each (cached under /tmp between runs). Measured in this run, medians:

1. Full read: the sensor's job, reading the whole file to the newest eval result, with
   (a) our EvalDirReader, (b) `tf.compat.v1.train.summary_iterator` collecting every step's
   scalars, (c) tensorboard's `EventAccumulator` (all scalars kept) then its newest step.
   Target: (a) at least as fast as (b). Also shown: (a') ours materialising all 100,000
   EvalResults, which the sensor never needs.
2. Incremental: after one more event is appended, our second read of the file vs a full
   re-read by a fresh reader. Target: >= 100x cheaper.
3. A separate process that only imports the sensor and runs one `poke()` on the file:
   peak RSS (target < 200 MB) and whether TensorFlow got loaded (it must not).

The last line printed is one JSON object with every figure.

    .venv/bin/python benchmarks/bench_events.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.tfrecord import masked_crc32c
from airflow_tf_export.storage.local import LocalStorage

EVALUATIONS = 100_000
TAGS = ("loss", "auc", "accuracy", "precision", "recall")
CACHE = Path(tempfile.gettempdir()) / "atfe-bench-events-100k"
SENSOR_POKE = """
import json, sys
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor
sensor = EvalMetricsSensor(task_id="wait", model_dir=sys.argv[1], min_step=int(sys.argv[2]))
poked = sensor.poke({})
print(json.dumps({
    "done": bool(poked),
    "step": poked.xcom_value["step"],
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
    "peak_rss_mb": next(
        int(line.split()[1]) / 1024
        for line in open("/proc/self/status")
        if line.startswith("VmHWM:")
    ),
    "tensorflow": any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules),
}))
"""


def eval_file() -> Path:
    """The cached 100k-evaluation file (written by TensorFlow on the first run)."""
    eval_dir = CACHE / "eval"
    done = CACHE / "complete"
    if not done.exists():
        import tensorflow as tf

        shutil.rmtree(CACHE, ignore_errors=True)
        with tf.Graph().as_default():
            writer = tf.compat.v1.summary.FileWriter(str(eval_dir))
            for index in range(1, EVALUATIONS + 1):
                values = [
                    tf.compat.v1.Summary.Value(tag=tag, simple_value=index * 1e-5 + i)
                    for i, tag in enumerate(TAGS)
                ]
                writer.add_summary(tf.compat.v1.Summary(value=values), index * 100)
            writer.close()
        done.write_text("ok")
    (path,) = eval_dir.glob("*.tfevents.*")
    return path


def median_seconds(action: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def ours_newest(model_dir: Path) -> EvalResult:
    reader = EvalDirReader(LocalStorage(), str(model_dir))
    reader.refresh()
    return next(reader.newest_first())


def ours_all(model_dir: Path) -> int:
    reader = EvalDirReader(LocalStorage(), str(model_dir))
    reader.refresh()
    return len(reader.results())


def summary_iterator_newest(path: Path) -> tuple[int, dict[str, float]]:
    import tensorflow as tf

    steps: dict[int, dict[str, float]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(path)):
        scalars = {v.tag: v.simple_value for v in event.summary.value if v.HasField("simple_value")}
        if scalars:
            steps[event.step] = scalars
    newest = max(steps)
    return newest, steps[newest]


def event_accumulator_newest(path: Path) -> tuple[int, dict[str, float]]:
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    accumulator = EventAccumulator(str(path), size_guidance={SCALARS: 0})
    accumulator.Reload()
    latest = {tag: accumulator.Scalars(tag)[-1] for tag in accumulator.Tags()["scalars"]}
    step = max(event.step for event in latest.values())
    return step, {tag: event.value for tag, event in latest.items() if event.step == step}


def appended_event(step: int) -> bytes:
    """One more evaluation, as a TFRecord of a serialized Event (TensorFlow's Event class)."""
    import tensorflow as tf

    values = [tf.compat.v1.Summary.Value(tag=tag, simple_value=0.5) for tag in TAGS]
    event = tf.compat.v1.Event(
        step=step, wall_time=time.time(), summary=tf.compat.v1.Summary(value=values)
    ).SerializeToString()
    length = struct.pack("<Q", len(event))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + event
        + struct.pack("<I", masked_crc32c(event))
    )


def incremental(path: Path, runs: int) -> dict[str, float]:
    """Second read after one appended event vs a fresh full read, on a copy of the file."""
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch)
        (model_dir / "eval").mkdir()
        copy = model_dir / "eval" / path.name
        shutil.copyfile(path, copy)
        reader = EvalDirReader(LocalStorage(), str(model_dir))
        reader.refresh()
        second_reads, full_reads = [], []
        for index in range(runs):
            step = (EVALUATIONS + 1 + index) * 100
            with copy.open("ab") as handle:
                handle.write(appended_event(step))
            start = time.perf_counter()
            reader.refresh()
            assert next(reader.newest_first()).step == step
            second_reads.append(time.perf_counter() - start)
            seconds, newest = median_seconds(lambda: ours_newest(model_dir), 1)
            assert newest.step == step
            full_reads.append(seconds)
    second, full = statistics.median(second_reads), statistics.median(full_reads)
    return {"second_read_s": second, "full_reread_s": full, "speedup": full / second}


def sensor_poke(path: Path) -> dict[str, Any]:
    model_dir = path.parent.parent
    out = subprocess.run(
        [sys.executable, "-c", SENSOR_POKE, str(model_dir), str(EVALUATIONS * 100)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    path = eval_file()
    model_dir = path.parent.parent
    size_mb = path.stat().st_size / 1e6
    print(f"eval file: {path} ({size_mb:.1f} MB, {EVALUATIONS} evaluations x {len(TAGS)} scalars)")

    ours_s, ours = median_seconds(lambda: ours_newest(model_dir), runs)
    ours_all_s, count = median_seconds(lambda: ours_all(model_dir), runs)
    iterator_s, (it_step, it_metrics) = median_seconds(lambda: summary_iterator_newest(path), runs)
    accumulator_s, (acc_step, acc_metrics) = median_seconds(
        lambda: event_accumulator_newest(path), max(1, runs // 2)
    )
    assert count == EVALUATIONS
    assert ours.step == it_step == acc_step
    assert dict(ours.metrics) == it_metrics == acc_metrics
    print(
        f"full read to the newest result: ours {ours_s:.3f}s, summary_iterator {iterator_s:.3f}s,"
        f" EventAccumulator {accumulator_s:.3f}s; ours, every result built: {ours_all_s:.3f}s"
    )

    increment = incremental(path, runs)
    print(
        f"after one appended event: second read {increment['second_read_s'] * 1e3:.2f} ms, "
        f"full re-read {increment['full_reread_s'] * 1e3:.1f} ms"
    )
    poke = sensor_poke(path)
    assert poke["done"] and poke["step"] == EVALUATIONS * 100
    print(
        f"sensor poke process: peak RSS {poke['peak_rss_mb']:.1f} MB, "
        f"TensorFlow loaded: {poke['tensorflow']}"
    )

    figures = {
        "evaluations": EVALUATIONS,
        "file_mb": round(size_mb, 2),
        "runs": runs,
        "ours_full_read_s": round(ours_s, 4),
        "summary_iterator_s": round(iterator_s, 4),
        "event_accumulator_s": round(accumulator_s, 4),
        "speedup_vs_summary_iterator": round(iterator_s / ours_s, 2),
        "speedup_vs_event_accumulator": round(accumulator_s / ours_s, 2),
        "ours_all_results_s": round(ours_all_s, 4),
        "all_results_speedup_vs_summary_iterator": round(iterator_s / ours_all_s, 2),
        "incremental_second_read_ms": round(increment["second_read_s"] * 1e3, 3),
        "incremental_full_reread_ms": round(increment["full_reread_s"] * 1e3, 2),
        "incremental_speedup": round(increment["speedup"], 1),
        "sensor_peak_rss_mb": round(poke["peak_rss_mb"], 1),
        "sensor_loaded_tensorflow": poke["tensorflow"],
    }
    figures["targets_met"] = (
        figures["speedup_vs_summary_iterator"] >= 1.0
        and figures["incremental_speedup"] >= 100
        and figures["sensor_peak_rss_mb"] < 200
        and not figures["sensor_loaded_tensorflow"]
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
