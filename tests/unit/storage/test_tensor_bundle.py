"""The tensor bundle reader on the real tf.estimator exports committed in tests/data/estimator
(written by TensorFlow 2.15.1), and on damaged copies of them. No TensorFlow is imported here;
tests/integration/storage/test_tensor_bundle_tf.py compares with TensorFlow 2.21 itself."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_tf_export.storage.base import Entry
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.storage.sstable import FOOTER_BYTES, Table, TableError
from airflow_tf_export.storage.tensor_bundle import (
    TensorBundle,
    TensorBundleError,
    saved_model_global_step,
)

ESTIMATOR = Path(__file__).resolve().parents[2] / "data" / "estimator"
MODELS = sorted(p.name for p in ESTIMATOR.iterdir() if (p / "model_dir").is_dir())
EXPORTERS = ("best", "latest", "final")
LINEAR_BEST_100 = ESTIMATOR / "linear_classifier" / "model_dir" / "export" / "best" / "1796476015"


def files_of(storage: LocalStorage, uri: str) -> dict[str, Entry]:
    return {e.name: e for e in storage.list_files(uri)}


def global_step(directory: Path) -> int:
    storage = LocalStorage()
    return saved_model_global_step(storage, str(directory), files_of(storage, str(directory)))


def expected_steps(model: str) -> dict[tuple[str, str], int]:
    """(exporter, version) -> the step the Estimator exported, from reference/decisions.json."""
    rounds = json.loads((ESTIMATOR / model / "reference" / "decisions.json").read_text())
    return {
        (exporter, row[exporter]): row["step"]
        for row in rounds
        for exporter in EXPORTERS
        if row[exporter] is not None
    }


@pytest.mark.parametrize("model", MODELS)
def test_every_estimator_export_holds_the_step_the_estimator_exported(model: str) -> None:
    expected = expected_steps(model)
    found = {}
    for exporter in EXPORTERS:
        for version_dir in sorted(
            (ESTIMATOR / model / "model_dir" / "export" / exporter).iterdir()
        ):
            found[(exporter, version_dir.name)] = global_step(version_dir)
    assert found, f"no exports in {model}"
    assert found == {key: expected[key] for key in found}


def optimizer_state(name: str) -> bool:
    """A variable of the optimizer (canned estimators' `training/<Optimizer>/...`, a TF1
    AdamOptimizer's slots and powers): in the checkpoint, not in a serving export."""
    return (
        name.startswith("training/") or re.search(r"/Adam(_1)?$|^beta[12]_power$", name) is not None
    )


@pytest.mark.parametrize("model", MODELS)
def test_every_variable_of_an_estimator_export_reads_with_its_checkpoint_shape(
    model: str,
) -> None:
    reference = json.loads((ESTIMATOR / model / "reference" / "outputs.json").read_text())
    shapes = {name: tuple(shape) for name, shape in reference["variables"].items()}
    export = ESTIMATOR / model / "model_dir" / reference["serving_export"].split("model_dir/")[1]
    bundle = TensorBundle(LocalStorage(), str(export / "variables" / "variables"))
    model_variables = [name for name in shapes if not optimizer_state(name)]
    assert "global_step" in model_variables and len(model_variables) > 1
    for name in model_variables:
        tensor = bundle.read(name)
        assert tensor.shape == shapes[name], name
        assert len(tensor.values) == math.prod(tensor.shape)
        assert all(math.isfinite(v) for v in tensor.values), name
    for name in set(shapes) - set(model_variables):
        with pytest.raises(TensorBundleError, match="has no tensor"):
            bundle.entry(name)
    assert bundle.read("global_step").values == (reference["step"],)


def test_the_multi_mode_reference_export_holds_the_final_step() -> None:
    export = next((ESTIMATOR / "linear_classifier" / "reference" / "all_modes").iterdir())
    assert global_step(export) == 150


def test_a_linear_export_reads_its_tensors_with_dtype_shape_and_values() -> None:
    bundle = TensorBundle(LocalStorage(), str(LINEAR_BEST_100 / "variables" / "variables"))
    assert bundle.num_shards == 1
    step = bundle.read("global_step")
    assert (step.dtype, step.shape, step.values) == ("int64", (), (100,))
    language = bundle.read("linear/linear_model/language/weights")
    assert (language.dtype, language.shape, len(language.values)) == ("float32", (3, 1), 3)
    entry = bundle.entry("linear/linear_model/language/weights")
    assert (entry.shard, entry.size, entry.sliced, entry.dtype_name) == (0, 12, False, "float32")
    assert bundle.data_uri(0).endswith("variables/variables.data-00000-of-00001")


def test_a_table_lookup_finds_every_key_and_a_missing_one_is_none() -> None:
    table = Table(LocalStorage(), str(LINEAR_BEST_100 / "variables" / "variables.index"))
    assert table.get(b"") is not None  # the bundle header sorts first
    for name in ("global_step", "linear/linear_model/bias_weights"):
        assert table.get(name.encode()) is not None
    assert table.get(b"no such tensor") is None
    assert table.get(b"zzz") is None  # after the last key


def test_a_missing_tensor_is_named() -> None:
    bundle = TensorBundle(LocalStorage(), str(LINEAR_BEST_100 / "variables" / "variables"))
    with pytest.raises(TensorBundleError, match=r"variables\.index has no tensor 'global_stepp'$"):
        bundle.read("global_stepp")
    with pytest.raises(TensorBundleError, match="has no tensor ''"):
        bundle.entry("")


# --- damaged copies: clear errors, nothing raised but TableError / TensorBundleError ---------


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A copy of the Estimator's best export of step 100."""
    copy = tmp_path / "1796476015"
    shutil.copytree(LINEAR_BEST_100, copy)
    return copy


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupt_index_block_fails_its_crc(export: Path) -> None:
    flip_byte(export / "variables" / "variables.index", 12)  # inside the key "global_step"
    with pytest.raises(TableError, match=r"the block at byte 0 \(\d+ bytes\) fails its CRC32C"):
        global_step(export)


def test_corrupt_tensor_bytes_fail_their_crc(export: Path) -> None:
    flip_byte(export / "variables" / "variables.data-00000-of-00001", 0)
    with pytest.raises(
        TensorBundleError,
        match=r"tensor 'global_step': its 8 bytes in .*variables\.data-00000-of-00001 fail "
        r"their CRC32C check \(corrupt\)$",
    ):
        global_step(export)


def test_a_truncated_data_file_is_named(export: Path) -> None:
    (export / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x64\x00")
    with pytest.raises(
        TensorBundleError, match=r"holds 2 of its 8 bytes at offset 0 \(truncated\)"
    ):
        global_step(export)


def test_a_missing_data_file_is_named(export: Path) -> None:
    (export / "variables" / "variables.data-00000-of-00001").unlink()
    with pytest.raises(TensorBundleError, match=r"data file .*data-00000-of-00001 does not exist"):
        global_step(export)


def test_an_index_that_is_not_a_table_is_named(export: Path) -> None:
    index = export / "variables" / "variables.index"
    index.write_bytes(index.read_bytes()[:-1])
    with pytest.raises(TableError, match=r"variables\.index is not an SSTable: its footer ends"):
        global_step(export)
    index.write_bytes(b"not a table")
    with pytest.raises(TableError, match=f"has 11 bytes, fewer than the {FOOTER_BYTES}-byte"):
        global_step(export)


def test_an_index_shorter_than_listed_is_named(export: Path) -> None:
    storage = LocalStorage()
    index = export / "variables" / "variables.index"
    with pytest.raises(TableError, match=r"the file is shorter than listed"):
        Table(storage, str(index), size=index.stat().st_size + 10)


def test_a_dir_without_variables_or_saved_model_is_named(export: Path) -> None:
    shutil.rmtree(export / "variables")
    with pytest.raises(TensorBundleError, match=r"holds no variables/variables\.index$"):
        global_step(export)
    (export / "saved_model.pb").unlink()
    with pytest.raises(TensorBundleError, match=r"holds no saved_model\.pb or saved_model\.pbtxt"):
        global_step(export)


def test_reading_a_bundle_imports_neither_tensorflow_nor_the_reader_at_dag_parse_time() -> None:
    """DAG parsing imports the exporter dir module; the bundle reader (protobuf) loads only
    when a foreign version is read, and reading one never imports TensorFlow."""
    script = (
        "import sys\n"
        "import airflow_tf_export.storage.exporter_dir\n"
        "print('airflow_tf_export.storage.tensor_bundle' in sys.modules)\n"
        "from airflow_tf_export.storage.local import LocalStorage\n"
        "from airflow_tf_export.storage.tensor_bundle import TensorBundle\n"
        f"print(TensorBundle(LocalStorage(), {str(LINEAR_BEST_100)!r} + '/variables/variables')"
        ".read('global_step').values)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "(100,)", "False"]
