"""Benchmark: reading eval event files and waiting on them, against TensorFlow's reader.

Every comparison is between two sides doing the same work, measured in interleaved rounds
(A, B, A, B, ...) and reported as medians; each figure is named for what both sides did.

Inputs (written once, cached under /tmp): eval event files of N evaluations, each the 5
scalars an evaluator writes: TF1 files (one event of 5 `simple_value`s per evaluation, what
`tf.compat.v1.summary.FileWriter` and so Estimator wrote) and TF2 files (one event per
scalar, a rank-0 float tensor with the "scalars" plugin, what `tf.summary.scalar` writes).
Large files are made by writing the records directly (writing a million evaluations through
`tf.summary` takes ~10 min); the writer is checked once per run: its events serialize
byte for byte like tensorboard's protos, and TensorFlow's `summary_iterator` reads its files
to exactly the values written.

Figures:
1. same work, every (step, tag) -> value of a file: `EvalDirReader.metrics_by_step()` vs
   `tf.compat.v1.train.summary_iterator` + value extraction into a dict of dicts, on a TF1
   and a TF2 file; `same_work_speedup_vs_summary_iterator` is the slower of the two.
   Also shown: ours through `results()` (full EvalResult objects, more work than TF's side).
2. the wait: a first `poke()` of a fresh sensor waiting for the newest evaluation
   (`min_step` = the last step) vs reading the file's bytes plus one CRC32C over them,
   at 20k, 200k and 1M evaluations; `wait_over_read_crc_floor` is the worst of the three
   (target <= 10).
3. waiting: a poke-mode sensor alive across pokes, one event appended before each poke
   that does not meet its target: median ms per poke, at 20k, 200k and 1M evaluations.
4. memory: peak RSS of a process that imports the sensor and pokes once, on the 1M file
   (target < 200 MB), waiting for the last step and (worst case) for any step.
5. event files 1 -> 200: an idle poll (nothing new) on local disk (ms) and on GCS
   (requests, counted at a recording proxy in front of the gcp-storage-emulator).

The last line printed is one JSON object with every figure and the verdict, which is
computed from same-work figures only.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_events.py [--rounds 5]
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import google_crc32c

from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.tfrecord import masked_crc32c
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor
from airflow_tf_export.storage.local import LocalStorage

TAGS = ("loss", "auc", "accuracy", "precision", "recall")
STEP = 100
CACHE = Path(tempfile.gettempdir()) / "atfe-bench-events-v2"
FILE_NAME = "events.out.tfevents.1700000000.bench"
SIZES = {"20k": 20_000, "200k": 200_000, "1m": 1_000_000}
SAME_WORK = {"tf1": 200_000, "tf2": 40_000}  # evaluations: 200k events either way
MANY_FILES = 200
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


# -- Writing event files directly --------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(step: int, wall_time: float, values: bytes) -> bytes:
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + _field(5, values)


def tf1_event(step: int, wall_time: float, metrics: dict[str, float]) -> bytes:
    """An Event of `simple_value`s, serialized as TensorFlow serializes it."""
    values = b"".join(
        _field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", value))
        for tag, value in metrics.items()
    )
    return _envelope(step, wall_time, values)


_SCALARS_METADATA = _field(9, _field(1, _field(1, b"scalars")))


def tf2_event(step: int, wall_time: float, tag: str, value: float) -> bytes:
    """An Event of one `tf.summary.scalar`, serialized as TensorFlow 2.21 serializes it."""
    tensor = b"\x08\x01\x12\x00" + _field(4, struct.pack("<f", value))
    return _envelope(
        step, wall_time, _field(1, _field(1, tag.encode()) + _field(8, tensor) + _SCALARS_METADATA)
    )


def frame(event: bytes) -> bytes:
    length = struct.pack("<Q", len(event))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + event
        + struct.pack("<I", masked_crc32c(event))
    )


FILE_VERSION = frame(b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0dbrain.Event:2")


def metric_values(index: int) -> dict[str, float]:
    """The values of evaluation `index` (float32-exact, so every reader agrees)."""
    return {
        tag: struct.unpack("<f", struct.pack("<f", index * 1e-6 + i))[0]
        for i, tag in enumerate(TAGS)
    }


def evaluation_records(flavour: str, index: int) -> bytes:
    step, wall_time = index * STEP, 1.7e9 + index
    metrics = metric_values(index)
    if flavour == "tf1":
        return frame(tf1_event(step, wall_time, metrics))
    return b"".join(
        frame(tf2_event(step, wall_time + i * 1e-3, tag, value))
        for i, (tag, value) in enumerate(metrics.items())
    )


def write_eval_file(path: Path, flavour: str, first: int, last: int) -> None:
    """Evaluations first..last (inclusive) of `flavour` ("tf1" or "tf2") into `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(FILE_VERSION)
        batch = []
        for index in range(first, last + 1):
            batch.append(evaluation_records(flavour, index))
            if len(batch) == 10_000:
                handle.write(b"".join(batch))
                batch.clear()
        handle.write(b"".join(batch))


def model_dir(flavour: str, evaluations: int) -> Path:
    """A cached model dir with one eval file of `evaluations` evaluations."""
    root = CACHE / f"{flavour}-{evaluations}"
    done = root / "complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        write_eval_file(root / "eval" / FILE_NAME, flavour, 1, evaluations)
        done.write_text("ok")
    return root


def many_files_dir(files: int) -> Path:
    """A cached model dir with `files` eval files of 100 TF1 evaluations each."""
    root = CACHE / f"files-{files}"
    done = root / "complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        for number in range(files):
            name = f"events.out.tfevents.{1700000000 + number}.bench"
            first = number * 100 + 1
            write_eval_file(root / "eval" / name, "tf1", first, first + 99)
        done.write_text("ok")
    return root


def check_the_writer() -> None:
    """Our events serialize like tensorboard's protos; TF's reader reads our files exactly."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2

    metrics = metric_values(7)
    expected_tf1 = event_pb2.Event(
        step=700,
        wall_time=1.7e9 + 7,
        summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in metrics.items()]
        ),
    )
    assert tf1_event(700, 1.7e9 + 7, metrics) == expected_tf1.SerializeToString()
    value = summary_pb2.Summary.Value(
        tag="auc",
        tensor=tensor_pb2.TensorProto(
            dtype=1, tensor_shape={}, tensor_content=struct.pack("<f", 0.5)
        ),
    )
    value.metadata.plugin_data.plugin_name = "scalars"
    expected_tf2 = event_pb2.Event(
        step=700, wall_time=1.5, summary=summary_pb2.Summary(value=[value])
    )
    assert tf2_event(700, 1.5, "auc", 0.5) == expected_tf2.SerializeToString()
    for flavour in ("tf1", "tf2"):
        path = model_dir(flavour, SIZES["20k"]) / "eval" / FILE_NAME
        expected = {i * STEP: metric_values(i) for i in range(1, SIZES["20k"] + 1)}
        assert summary_iterator_map(path) == expected, (
            f"TensorFlow reads the {flavour} file otherwise"
        )


# -- The two sides --------------------------------------------------------------------------


def summary_iterator_map(path: Path) -> dict[int, dict[str, float]]:
    """TensorFlow's reader: every (step, tag) -> value of scalar summaries (TF1 and TF2)."""
    import tensorflow as tf

    steps: dict[int, dict[str, float]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                steps.setdefault(event.step, {})[value.tag] = value.simple_value
            elif value.metadata.plugin_data.plugin_name == "scalars":
                tensor = value.tensor
                number = (
                    struct.unpack("<f", tensor.tensor_content)[0]
                    if tensor.tensor_content
                    else tensor.float_val[0]
                )
                steps.setdefault(event.step, {})[value.tag] = number
    return steps


def ours_map(root: Path) -> dict[int, Any]:
    reader = EvalDirReader(LocalStorage(), str(root))
    reader.refresh()
    if hasattr(reader, "metrics_by_step"):
        return reader.metrics_by_step()
    return {result.step: result.metrics for result in reader.results()}  # older code


def ours_results_map(root: Path) -> dict[int, Any]:
    reader = EvalDirReader(LocalStorage(), str(root))
    reader.refresh()
    return {result.step: result.metrics for result in reader.results()}


def read_and_crc(path: Path) -> int:
    """The floor: the file's bytes read, and one CRC32C over them."""
    with path.open("rb") as handle:
        return int(google_crc32c.value(handle.read()))


def fresh_sensor(root: Path, min_step: int) -> EvalMetricsSensor:
    return EvalMetricsSensor(task_id="wait", model_dir=str(root), min_step=min_step)


def poke_found(sensor: EvalMetricsSensor) -> int:
    poked = sensor.poke({})  # type: ignore[arg-type]
    assert poked.is_done
    return int(poked.xcom_value["step"])


def interleaved(sides: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each side, run in turn `rounds` times."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, action in sides.items():
            start = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# -- Measurements ---------------------------------------------------------------------------


def same_work(rounds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for flavour, evaluations in SAME_WORK.items():
        root = model_dir(flavour, evaluations)
        path = root / "eval" / FILE_NAME
        expected = summary_iterator_map(path)
        assert len(expected) == evaluations
        assert ours_map(root) == expected and ours_results_map(root) == expected
        medians = interleaved(
            {
                "tf": lambda path=path: summary_iterator_map(path),
                "ours": lambda root=root: ours_map(root),
                "ours_results": lambda root=root: ours_results_map(root),
            },
            rounds,
        )
        figures[f"{flavour}_summary_iterator_map_s"] = medians["tf"]
        figures[f"{flavour}_ours_metrics_by_step_s"] = medians["ours"]
        figures[f"{flavour}_ours_results_s"] = medians["ours_results"]
        figures[f"{flavour}_same_work_speedup"] = medians["tf"] / medians["ours"]
        figures[f"{flavour}_same_work_speedup_results_api"] = (
            medians["tf"] / medians["ours_results"]
        )
        print(
            f"{flavour} ({evaluations} evaluations), every (step, tag) -> value: "
            f"summary_iterator {medians['tf']:.3f}s, ours {medians['ours']:.3f}s "
            f"(via results(): {medians['ours_results']:.3f}s)"
        )
    return figures


def first_pokes(rounds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for label, evaluations in SIZES.items():
        root = model_dir("tf1", evaluations)
        path = root / "eval" / FILE_NAME
        last = evaluations * STEP
        assert poke_found(fresh_sensor(root, last)) == last
        sensors = [fresh_sensor(root, last) for _ in range(rounds)]  # made outside the timing
        medians = interleaved(
            {
                "floor": lambda path=path: read_and_crc(path),
                "poke": lambda sensors=sensors: poke_found(sensors.pop()),
            },
            rounds,
        )
        figures[f"read_crc_floor_ms_{label}"] = medians["floor"] * 1e3
        figures[f"first_poke_ms_{label}"] = medians["poke"] * 1e3
        figures[f"wait_over_read_crc_floor_{label}"] = medians["poke"] / medians["floor"]
        print(
            f"{label}: first poke of a fresh sensor waiting for the last step "
            f"{medians['poke'] * 1e3:.1f} ms; reading the file + one CRC32C "
            f"{medians['floor'] * 1e3:.1f} ms"
        )
    return figures


def waiting_pokes(pokes: int) -> dict[str, float]:
    """Poke mode: one sensor, one event appended before each poke, none meets the target."""
    figures: dict[str, float] = {}
    for label, evaluations in SIZES.items():
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            (root / "eval").mkdir()
            copy = root / "eval" / FILE_NAME
            shutil.copyfile(model_dir("tf1", evaluations) / "eval" / FILE_NAME, copy)
            sensor = EvalMetricsSensor(
                task_id="wait", model_dir=str(root), min_step=(evaluations + 1000) * STEP
            )
            assert not sensor.poke({})  # type: ignore[arg-type]
            times = []
            for index in range(evaluations + 1, evaluations + 1 + pokes):
                with copy.open("ab") as handle:
                    handle.write(evaluation_records("tf1", index))
                start = time.perf_counter()
                assert not sensor.poke({})  # type: ignore[arg-type]
                times.append(time.perf_counter() - start)
        figures[f"waiting_poke_ms_{label}"] = statistics.median(times) * 1e3
        poke_ms = figures[f"waiting_poke_ms_{label}"]
        print(f"{label}: a waiting poke after one appended event {poke_ms:.2f} ms")
    return figures


def sensor_memory() -> dict[str, Any]:
    root = model_dir("tf1", SIZES["1m"])
    figures: dict[str, Any] = {}
    for name, min_step in (("last_step", SIZES["1m"] * STEP), ("any_step", 0)):
        out = subprocess.run(
            [sys.executable, "-c", SENSOR_POKE, str(root), str(min_step)],
            capture_output=True,
            text=True,
            check=True,
        )
        poke = json.loads(out.stdout.strip().splitlines()[-1])
        assert poke["done"] and poke["step"] == SIZES["1m"] * STEP
        figures[f"sensor_peak_rss_mb_1m_{name}"] = poke["peak_rss_mb"]
        figures["sensor_loaded_tensorflow"] = (
            figures.get("sensor_loaded_tensorflow") or poke["tensorflow"]
        )
        target = name.replace("_", " ")
        print(f"1m: sensor process waiting for {target}: peak RSS {poke['peak_rss_mb']:.1f} MB")
    figures["sensor_peak_rss_mb_1m"] = max(
        figures["sensor_peak_rss_mb_1m_last_step"], figures["sensor_peak_rss_mb_1m_any_step"]
    )
    return figures


def idle_polls(rounds: int) -> dict[str, float]:
    """A refresh that finds nothing new, local (ms) and on GCS (requests), 1 vs 200 files."""
    figures: dict[str, float] = {}
    for files in (1, MANY_FILES):
        root = many_files_dir(files)
        reader = EvalDirReader(LocalStorage(), str(root))
        reader.refresh()
        figures[f"idle_poll_ms_{files}_files"] = (
            interleaved({"poll": reader.refresh}, rounds * 4)["poll"] * 1e3
        )
    with _gcs() as (client, proxy, bucket):
        from airflow_tf_export.storage.gcs import GcsStorage

        for files in (1, MANY_FILES):
            root = many_files_dir(files)
            prefix = f"m{files}"
            for path in sorted((root / "eval").iterdir()):
                bucket.blob(f"{prefix}/eval/{path.name}").upload_from_filename(str(path))
            reader = EvalDirReader(GcsStorage(client), f"gs://{bucket.name}/{prefix}")
            reader.refresh()
            assert len(reader.steps()) == files * 100
            proxy.reset()
            start = time.perf_counter()
            reader.refresh()
            figures[f"gcs_idle_poll_ms_{files}_files"] = (time.perf_counter() - start) * 1e3
            figures[f"gcs_requests_per_idle_poll_{files}_files"] = proxy.count()
    for files in (1, MANY_FILES):
        print(
            f"{files} event files, an idle poll: "
            f"local {figures[f'idle_poll_ms_{files}_files']:.2f} ms, "
            f"GCS {figures[f'gcs_requests_per_idle_poll_{files}_files']} requests "
            f"({figures[f'gcs_idle_poll_ms_{files}_files']:.1f} ms)"
        )
    return figures


@contextmanager
def _gcs() -> Iterator[tuple[Any, Any, Any]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from gcs_fixtures import RecordingProxy, emulator_client, running_emulator

    with running_emulator() as host, RecordingProxy(host) as proxy:
        os.environ["STORAGE_EMULATOR_HOST"] = host
        client = emulator_client(proxy.url)
        bucket = client.create_bucket("bench-events")
        yield client, proxy, bucket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    started = time.perf_counter()
    check_the_writer()
    figures: dict[str, Any] = {"rounds": rounds}
    figures.update(same_work(rounds))
    figures.update(first_pokes(rounds))
    figures.update(waiting_pokes(pokes=max(rounds, 5)))
    figures.update(sensor_memory())
    figures.update(idle_polls(rounds))
    figures["same_work_speedup_vs_summary_iterator"] = min(
        figures["tf1_same_work_speedup"], figures["tf2_same_work_speedup"]
    )
    figures["wait_over_read_crc_floor"] = max(
        figures[f"wait_over_read_crc_floor_{label}"] for label in SIZES
    )
    figures["gcs_requests_per_idle_poll_200_files"] = figures[
        f"gcs_requests_per_idle_poll_{MANY_FILES}_files"
    ]
    for name in ("read_crc_floor_ms", "first_poke_ms", "waiting_poke_ms"):
        figures[f"{name}_growth_20k_to_1m"] = figures[f"{name}_1m"] / figures[f"{name}_20k"]
    figures["idle_poll_ms_growth_1_to_200_files"] = (
        figures[f"idle_poll_ms_{MANY_FILES}_files"] / figures["idle_poll_ms_1_files"]
    )
    figures["benchmark_s"] = time.perf_counter() - started
    figures = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    figures["targets_met"] = (
        figures["same_work_speedup_vs_summary_iterator"] >= 1.0
        and figures["wait_over_read_crc_floor"] <= 10
        and figures["sensor_peak_rss_mb_1m"] < 200
        and figures["gcs_requests_per_idle_poll_200_files"] <= 2
        and not figures["sensor_loaded_tensorflow"]
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
