"""The tensor bundle reader against bundles TensorFlow 2.21 writes in the test: checkpoints of
every fixed-width dtype, sharded checkpoints, an index bigger than one table block, TF1
SavedModels with a `global_step` (the Estimator's layout) and a TF2 SavedModel without one.
Every value read is compared with `tf.train.load_variable`; the bundles are read on local disk
and, uploaded, on the GCS emulator (real HTTP)."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gcs_fixtures import RecordingProxy, emulator_client
from storage_test_models import Backend

from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.sstable import TAIL_BYTES
from airflow_tf_export.storage.tensor_bundle import (
    TensorBundle,
    TensorBundleError,
    saved_model_global_step,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TF_TABLE_BLOCK_BYTES = 262_144  # TensorFlow's default table block size
DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)
SHAPES = ((), (0,), (5,), (2, 3), (2, 1, 4))


def uploaded(backend: Backend, local: Path, name: str) -> str:
    """`local` (a file prefix's directory) in the backend: the same path, or an upload."""
    if backend.name == "local":
        return str(local)
    uri = backend.uri(name)
    backend.storage.upload_dir(local, uri)
    return uri


class CountingReads:
    """A real storage backend that counts the ranged reads made through it."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.ranges = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
        self.ranges += 1
        return self.storage.read_bytes(uri, start, end)


def close(read: Any, expected: Any, dtype: str) -> bool:
    """Equal values (floats to their dtype's precision; NaN-free test data)."""
    if dtype in ("float16", "bfloat16", "float32", "float64"):
        return math.isclose(float(read), float(expected), rel_tol=0, abs_tol=0)
    return bool(read == expected)


@pytest.fixture(scope="module")
def dtype_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tf.train.Checkpoint with a variable of each dtype and shape, plus a string one."""
    import numpy as np
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("dtypes")
    variables: dict[str, Any] = {}
    for dtype in DTYPES:
        for shape in SHAPES:
            count = math.prod(shape)
            values = (np.arange(count) % 7 * 3 - 5).reshape(shape)
            if dtype.startswith("uint"):
                values = np.abs(values) + 250
            name = f"{dtype}_{'x'.join(map(str, shape)) or 'scalar'}"
            variables[name] = tf.Variable(
                tf.cast(values / 4 if "float" in dtype else values, dtype)
            )
    variables["text"] = tf.Variable(tf.constant(["a", "bc"]))
    tf.train.Checkpoint(**variables).write(str(directory / "ckpt"))
    return directory


def test_every_fixed_width_dtype_and_shape_reads_as_tensorflow_reads_it(
    backend: Backend, dtype_checkpoint: Path
) -> None:
    import tensorflow as tf

    local_prefix = str(dtype_checkpoint / "ckpt")
    bundle = TensorBundle(backend.storage, uploaded(backend, dtype_checkpoint, "dtypes") + "/ckpt")
    names = [n for n, _ in tf.train.list_variables(local_prefix)]
    checked = 0
    for name in names:
        if name == "_CHECKPOINTABLE_OBJECT_GRAPH" or name.startswith("text/"):
            continue
        expected = tf.train.load_variable(local_prefix, name)
        tensor = bundle.read(name)
        dtype = expected.dtype.name
        assert (tensor.dtype, tensor.shape) == (dtype, expected.shape), name
        flat = expected.reshape(-1).tolist()
        assert all(close(r, e, dtype) for r, e in zip(tensor.values, flat, strict=True)), name
        checked += 1
    assert checked == len(DTYPES) * len(SHAPES)
    for string in ("text/.ATTRIBUTES/VARIABLE_VALUE", "_CHECKPOINTABLE_OBJECT_GRAPH"):
        with pytest.raises(TensorBundleError, match="has dtype string, which is not read"):
            bundle.read(string)


def test_a_sharded_checkpoint_reads_from_each_shard_and_refuses_sliced_tensors(
    backend: Backend, tmp_path: Path
) -> None:
    import numpy as np
    import tensorflow as tf

    shape = (100, 250)  # 100 000 bytes of float32: one tensor fills one shard
    variables = {
        "a": tf.Variable(np.full(shape, 1.5, np.float32)),
        "b": tf.Variable(np.arange(100 * 250, dtype=np.float32).reshape(shape)),
        "c": tf.Variable(np.arange(10, dtype=np.int64)),
        "d": tf.Variable(np.zeros((300, 250), np.float32)),  # larger than a shard: sliced
    }
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=100_000)
    options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "ckpt"), options=options)
    bundle = TensorBundle(backend.storage, uploaded(backend, tmp_path, "sharded") + "/ckpt")

    assert bundle.num_shards > 2
    assert len(list(tmp_path.glob("ckpt.data-*"))) == bundle.num_shards
    shards = set()
    for key in "abc":
        name = f"{key}/.ATTRIBUTES/VARIABLE_VALUE"
        expected = tf.train.load_variable(prefix, name)
        assert bundle.read(name).values == tuple(expected.reshape(-1).tolist())
        shards.add(bundle.entry(name).shard)
    assert len(shards) > 1
    sliced = "d/.ATTRIBUTES/VARIABLE_VALUE"
    assert bundle.entry(sliced).sliced
    with pytest.raises(TensorBundleError, match=f"tensor {sliced!r} is partitioned into slices"):
        bundle.read(sliced)


def test_an_index_larger_than_a_table_block_and_the_read_tail(
    backend: Backend, tmp_path: Path
) -> None:
    import tensorflow as tf

    names = [f"v_{hashlib.sha256(str(i).encode()).hexdigest() * 2}" for i in range(2_500)]
    variables = {name: tf.Variable(i, dtype=tf.int64) for i, name in enumerate(names)}
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "ckpt"))
    index_size = (tmp_path / "ckpt.index").stat().st_size
    assert index_size > TF_TABLE_BLOCK_BYTES + TAIL_BYTES  # several blocks, most before the tail
    uri = uploaded(backend, tmp_path, "large") + "/ckpt"
    counting = CountingReads(backend.storage)
    first = min(f"{name}/.ATTRIBUTES/VARIABLE_VALUE" for name in names)
    assert TensorBundle(counting, uri).read(first).values == (names.index(first.split("/")[0]),)
    assert counting.ranges == 3, "the tail, the first block (header and tensor), the tensor"

    bundle = TensorBundle(backend.storage, uri)
    for name, shape in tf.train.list_variables(prefix):
        assert bundle.entry(name).shape == tuple(shape), name
    for i in (0, 1, 700, 1_300, 2_499):
        key = f"{names[i]}/.ATTRIBUTES/VARIABLE_VALUE"
        assert bundle.read(key).values == (tf.train.load_variable(prefix, key),) == (i,)


def write_tf1_saved_model(export_dir: Path, step: Any, dtype: str = "int64") -> None:
    """A TF1 graph SavedModel with a `global_step` variable, as the Estimator exported."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        v1.get_variable(
            "global_step", shape=(), dtype=dtype, initializer=v1.constant_initializer(step)
        )
        features = v1.placeholder(tf.float32, (None, 2), name="x")
        weights = v1.get_variable("w", (2, 1), initializer=v1.ones_initializer())
        session.run(v1.global_variables_initializer())
        signature = v1.saved_model.predict_signature_def(
            {"x": features}, {"y": tf.matmul(features, weights)}
        )
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()


def write_tf2_saved_model(export_dir: Path) -> None:
    """A TF2 SavedModel of a tf.Module: object-based variables, no `global_step` name."""
    import tensorflow as tf

    module = tf.Module()
    module.step = tf.Variable(7, dtype=tf.int64)
    module.w = tf.Variable([1.0, 2.0])
    module.serve = tf.function(lambda x: x * module.w, input_signature=[tf.TensorSpec([2])])
    tf.saved_model.save(module, str(export_dir))


WRITERS: dict[str, tuple[Callable[[Path], None], int | str]] = {
    "tf1 int64": (lambda d: write_tf1_saved_model(d, 1234), 1234),
    "tf1 int32": (lambda d: write_tf1_saved_model(d, 77, "int32"), 77),
    "tf1 float32": (
        lambda d: write_tf1_saved_model(d, 3.0, "float32"),
        r"'global_step' is a float32 tensor of shape \[\], not an integer scalar",
    ),
    "tf2 module": (write_tf2_saved_model, r"variables\.index has no tensor 'global_step'$"),
}


@pytest.mark.parametrize("case", list(WRITERS))
def test_the_global_step_of_a_tensorflow_written_saved_model(
    backend: Backend, tmp_path: Path, case: str
) -> None:
    import tensorflow as tf

    write, expected = WRITERS[case]
    local = tmp_path / "1700000000"
    write(local)
    uri = uploaded(backend, local, "1700000000")
    files = {e.name: e for e in backend.storage.list_files(uri)}
    if isinstance(expected, int):
        prefix = str(local / "variables" / "variables")
        assert tf.train.load_variable(prefix, "global_step") == expected
        assert saved_model_global_step(backend.storage, uri, files) == expected
    else:
        with pytest.raises(TensorBundleError, match=expected):
            saved_model_global_step(backend.storage, uri, files)


def test_a_scan_reads_each_foreign_step_with_two_ranged_reads_on_gcs(
    gcs_bucket: tuple[Any, str], gcs_proxy: RecordingProxy, tmp_path: Path
) -> None:
    """The index's tail (footer, index block and, for an Estimator export, every block) and
    the `global_step` bytes: two ranged GETs per foreign version, and no size requests."""
    _client, bucket = gcs_bucket
    storage = GcsStorage(emulator_client(gcs_proxy.url))
    exporter_uri = f"gs://{bucket}/model/export/best"
    for version, step in ((1_700_000_000, 100), (1_700_000_500, 125)):
        write_tf1_saved_model(tmp_path / str(version), step)
        storage.upload_dir(tmp_path / str(version), f"{exporter_uri}/{version}")
    gcs_proxy.reset()
    state = ExporterDir(storage, exporter_uri).scan()
    assert [(f.version, f.global_step) for f in state.foreign_versions] == [
        (1_700_000_000, 100),
        (1_700_000_500, 125),
    ]
    reads = [r for r in gcs_proxy.requests if r.query.get("alt") == ["media"]]
    assert sorted(r.path.rsplit("%2F", 2)[-1] for r in reads) == sorted(
        ["variables.index", "variables.data-00000-of-00001"] * 2
    )
    assert all(r.range is not None for r in reads)
    metadata_gets = [
        r
        for r in gcs_proxy.requests
        if r.method == "GET" and "alt" not in r.query and "/o/" in r.path
    ]
    assert metadata_gets == []
