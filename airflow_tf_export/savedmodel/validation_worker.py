"""The validating process: loads staged SavedModels as a server does and calls their signatures.

Run as `python -m airflow_tf_export.savedmodel.validation_worker <parent pid>` by
savedmodel/validation.py, never in the process that wrote the SavedModel, so a model that
only works with state of that process fails here. It reads one JSON request per line on
stdin and answers each with one JSON line on its own copy of stdout (the real stdout is
pointed at stderr, so nothing TensorFlow prints can corrupt an answer).

Request: `{"dir": staged SavedModel, "calls": [{"tag", "key", "feeds": {input: base64
TensorProto}}], "warmup": path of a warmup file to replay, or null}`. Answer: `{"load_error":
str|null, "results": [{"tag", "key", "error": str|null, "outputs": {name: OutputReport
fields}}], "warmup": {"answered": int, "error": str|null}|null}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
import time
from typing import Any, TextIO

_PARENT_POLL_SECONDS = 1.0


def main() -> None:
    """Answer requests until stdin closes, or until the process that started it (its pid is
    the one argument) is gone."""
    _exit_with_parent(int(sys.argv[1]))
    answers = _private_stdout()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for line in sys.stdin:
        if line.strip():
            answers.write(json.dumps(answer(json.loads(line))) + "\n")
            answers.flush()


def _exit_with_parent(parent: int) -> None:
    """End this process once `parent` is no longer its parent: a closed stdin ends it only
    between requests, and a signature that never returns would keep it running forever
    after the task that started it was killed."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _private_stdout() -> TextIO:
    """A stream on a duplicate of stdout, with stdout itself redirected to stderr."""
    private = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return private


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """Load the SavedModel once per tag set, call each requested signature, replay the
    warmup file."""
    import tensorflow as tf

    loaded: dict[str, Any] = {}
    try:
        for tag in dict.fromkeys(call["tag"] for call in request["calls"]):
            loaded[tag] = tf.saved_model.load(request["dir"], tags=[tag])
    except Exception as error:
        return {"load_error": f"{type(error).__name__}: {error}", "results": [], "warmup": None}
    results = [_call(loaded[call["tag"]], call) for call in request["calls"]]
    warmup = None
    if request.get("warmup"):
        warmup = _replay(loaded["serve"], request["warmup"])
    return {"load_error": None, "results": results, "warmup": warmup}


def _call(model: Any, call: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    result: dict[str, Any] = {"tag": call["tag"], "key": call["key"], "error": None, "outputs": {}}
    try:
        function = model.signatures[call["key"]]
        feeds = {name: tf.constant(_tensor(tf, encoded)) for name, encoded in call["feeds"].items()}
        outputs = function(**feeds)
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        return result
    declared = function.structured_outputs
    for name, tensor in outputs.items():
        spec = declared.get(name)
        result["outputs"][name] = _report(tensor.numpy(), tensor.dtype.name, spec)
    return result


def _tensor(tf: Any, encoded: str) -> Any:
    proto = tf.make_tensor_proto(0)
    proto.ParseFromString(base64.b64decode(encoded))
    return tf.make_ndarray(proto)


def _report(values: Any, dtype: str, spec: Any) -> dict[str, Any]:
    """The OutputReport fields of one output's values."""
    import numpy as np

    report: dict[str, Any] = {
        "dtype": dtype,
        "shape": list(values.shape),
        "declared_dtype": dtype if spec is None else spec.dtype.name,
        "declared_shape": None if spec is None or spec.shape.rank is None else spec.shape.as_list(),
        "nonfinite": 0,
        "min": None,
        "max": None,
        "digest": _digest(values),
    }
    if values.dtype.kind in "fc":
        finite = np.isfinite(values)
        report["nonfinite"] = int(values.size - np.count_nonzero(finite))
        if finite.any():
            report["min"] = float(np.min(values[finite]))
            report["max"] = float(np.max(values[finite]))
    elif values.dtype.kind in "iub" and values.size:
        report["min"] = float(np.min(values))
        report["max"] = float(np.max(values))
    return report


def _digest(values: Any) -> str:
    """SHA-256 of the values (strings length-prefixed), their dtype and shape."""
    digest = hashlib.sha256(f"{values.dtype.str}{list(values.shape)}".encode())
    if values.dtype.kind == "O":
        for item in values.ravel():
            data = item if isinstance(item, bytes) else str(item).encode()
            digest.update(len(data).to_bytes(8, "little") + data)
    else:
        digest.update(values.tobytes())
    return "sha256:" + digest.hexdigest()


def _replay(model: Any, path: str) -> dict[str, Any]:
    """Parse each warmup record with TF's own TFRecord reader and TF Serving's message
    layout, and call the signature it names; the count answered, or the first error."""
    import tensorflow as tf

    from airflow_tf_export.savedmodel.warmup_protos import PredictionLog

    answered = 0
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
            log = PredictionLog.FromString(record)
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                feeds = {
                    name: tf.constant(_tensor(tf, base64.b64encode(value).decode()))
                    for name, value in request.inputs.items()
                }
            elif kind in ("classify_log", "regress_log"):
                request = getattr(log, kind).request
                examples = tf.constant(list(request.input.example_list.examples))
                signature = model.signatures[request.model_spec.signature_name]
                (input_name,) = signature.structured_input_signature[1]
                feeds = {input_name: examples}
            else:
                return {"answered": answered, "error": f"record {index} holds no request"}
            key = request.model_spec.signature_name or "serving_default"
            model.signatures[key](**feeds)
            answered += 1
    except Exception as error:
        return {"answered": answered, "error": f"{type(error).__name__}: {error}"}
    return {"answered": answered, "error": None}


if __name__ == "__main__":
    main()
