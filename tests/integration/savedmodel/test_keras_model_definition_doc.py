"""docs/keras-model-definition.md, run: its definition saved as a user's module, its
training loop (on the example model's synthetic data) and its export sample run with that
module's names; the multi-mode export loads back and serves what the trained model
computes."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np

from airflow_tf_export.example import model as example

DOC = Path(__file__).resolve().parents[3] / "docs" / "keras-model-definition.md"
BATCH = 32
EXAMPLES = 256


def serialized(features: dict[str, np.ndarray]) -> list[bytes]:
    """One serialized tf.Example per example: `age` (int64) and `language` (bytes)."""
    import tensorflow as tf

    examples = []
    for age, language in zip(features["age"], features["language"], strict=True):
        feature = {
            "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(age)])),
            "language": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(language)])),
        }
        example_proto = tf.train.Example(features=tf.train.Features(feature=feature))
        examples.append(example_proto.SerializeToString())
    return examples


def test_the_doc_s_definition_trains_checkpoints_and_exports_them(tmp_path: Path) -> None:
    import tensorflow as tf

    definition_code, training_code, export_code = re.findall(
        r"```python\n(.*?)```", DOC.read_text(), re.S
    )
    features, labels = example.make_dataset(EXAMPLES, seed=0)
    module_path = tmp_path / "census_model.py"
    module_path.write_text(definition_code)
    spec = importlib.util.spec_from_file_location("census_model", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    namespace: dict[str, Any] = {
        **vars(module),
        "model_dir": str(tmp_path / "model_dir"),
        "export_dir": tmp_path / "export",
        "dataset": tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH),
    }
    exec(compile(training_code, str(DOC), "exec"), namespace)
    steps = EXAMPLES // BATCH
    assert (tmp_path / "model_dir" / f"ckpt-{steps}.index").exists()

    exec(compile(export_code, str(DOC), "exec"), namespace)
    written = namespace["written"]
    assert written.tags == ("train", "serve")
    assert written.global_step == steps
    assert namespace["age_weights"].type == "VarHandleOp"

    held_out, _ = example.make_dataset(16, seed=1)
    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    served = loaded.signatures["predict"](examples=tf.constant(serialized(held_out)))
    trained = namespace["model"]({k: tf.constant(v) for k, v in held_out.items()})
    np.testing.assert_allclose(served["logistic"].numpy(), trained.numpy()[:, 0], atol=1e-6)
