"""Validate a staged SavedModel in a fresh process before it is published.

`staged_validator` gives the export flow its check between staging and publishing: pick the
warmup examples (a TFRecord file of serialized tf.Examples, the model definition's
`warmup_examples`, or generated from the serving input's feature spec), check them against
that spec, build each signature's inputs, optionally write TF Serving's warmup file
(`assets.extra/tf_serving_warmup_requests`) into the staged version, and ask the validating
process (validation_worker.py) to load the version with the `serve` tag (and `eval`, when
written) and call every signature. The answers are judged in core/validation.py; a failure
raises ValidationError (a ValueError: the task fails without retry) naming the signature and
output, and the version is not published.

One validating process serves every export of the process that starts it (an Airflow task,
the CLI, a test session): TensorFlow is imported there once, and each export costs a load
and the calls. It is never the process that wrote the SavedModel.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow_tf_export.core.validation import (
    FeatureSpec,
    OutputReport,
    SignatureRecord,
    Thresholds,
    ValidationError,
    ValidationRecord,
    check_examples,
    generated_examples,
    judge_output,
)
from airflow_tf_export.storage.base import Storage, WrittenModel
from airflow_tf_export.storage.export_flow import ValidateStaged

log = logging.getLogger(__name__)

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
SERVE_TAG = "serve"
EVAL_TAG = "eval"
_INIT_OP = "__saved_model_init_op"
_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

Example = dict[str, list[Any]]


@dataclass(frozen=True)
class ValidationOptions:
    """The user's validation arguments: `examples`, a TFRecord file (local or `gs://`) of
    serialized tf.Examples; `thresholds` on outputs; `warmup_requests`, whether to write TF
    Serving's warmup file into the version."""

    examples: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    warmup_requests: bool = False


@dataclass(frozen=True)
class SignatureInput:
    """One input of a signature, as saved_model.pb declares it (-1: unknown size)."""

    dtype: str
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class SignatureDef:
    method: str
    inputs: Mapping[str, SignatureInput]


def staged_validator(
    definition: object, storage_for: Callable[[str], Storage], options: ValidationOptions
) -> ValidateStaged:
    """The check the export flow runs on each staged SavedModel (see the module docstring)."""

    def validate(staged: Path, written: WrittenModel) -> ValidationRecord:
        spec = serving_feature_spec(definition)
        examples, source = _examples(definition, storage_for, options, spec)
        signatures = _signature_defs(staged)
        if not spec:
            spec = _raw_feature_spec(signatures.get(SERVE_TAG, {}))
        calls = [
            {"tag": tag, "key": key, "feeds": _feeds(sig, examples, spec, tag, key)}
            for tag in (SERVE_TAG, EVAL_TAG)
            for key, sig in sorted(signatures.get(tag, {}).items())
        ]
        if not calls:
            raise ValidationError(f"the staged SavedModel has no {SERVE_TAG!r} signatures")
        warmup_path = None
        serve_calls = [call for call in calls if call["tag"] == SERVE_TAG]
        if options.warmup_requests:
            warmup_path = _write_warmup_file(
                staged, signatures[SERVE_TAG], serve_calls, examples, spec
            )
        answer = validation_process().ask(
            {
                "dir": str(staged),
                "calls": calls,
                "warmup": None if warmup_path is None else str(warmup_path),
            }
        )
        requests = len(serve_calls) if warmup_path else None
        return _judged(answer, len(examples), source, options, requests)

    return validate


def serving_feature_spec(definition: object) -> dict[str, FeatureSpec]:
    """The features the serving input takes: a ModelDefinition's serving_input, or the
    tf.Example parsing spec (else the raw receiver tensors) an Estimator's
    serving_input_receiver_fn builds; empty when neither applies (the serve signatures'
    declared inputs are used then)."""
    from airflow_tf_export.savedmodel.definition import ModelDefinition

    if isinstance(definition, ModelDefinition):
        return {
            name: FeatureSpec(f.dtype, f.shape)
            for name, f in definition.serving_input.features.items()
        }
    receiver_fn = getattr(definition, "serving_input_receiver_fn", None)
    return {} if receiver_fn is None else _receiver_spec(receiver_fn)


def _receiver_spec(receiver_fn: Callable[[], Any]) -> dict[str, FeatureSpec]:
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        receiver = receiver_fn()
    spec: dict[str, FeatureSpec] = {}
    for op in graph.get_operations():
        if op.type != "ParseExampleV2":
            continue
        sparse_keys = tf.make_ndarray(op.inputs[2].op.get_attr("value"))
        dense_keys = tf.make_ndarray(op.inputs[3].op.get_attr("value"))
        for key, dtype in zip(sparse_keys, op.get_attr("sparse_types"), strict=True):
            spec[key.decode()] = FeatureSpec(tf.as_dtype(dtype).name, ())
        shapes = op.get_attr("dense_shapes")
        for key, dtype, shape in zip(dense_keys, op.get_attr("Tdense"), shapes, strict=True):
            dims = tuple(d.size for d in shape.dim)
            spec[key.decode()] = FeatureSpec(tf.as_dtype(dtype).name, dims)
    if spec:
        return spec
    return {
        str(name): FeatureSpec(tensor.dtype.name, tuple(tensor.shape.as_list()[1:]))
        for name, tensor in receiver.receiver_tensors.items()
        if tensor.shape.rank is not None and None not in tensor.shape.as_list()[1:]
    }


def _raw_feature_spec(signatures: Mapping[str, SignatureDef]) -> dict[str, FeatureSpec]:
    return {
        name: FeatureSpec(put.dtype, put.shape[1:])
        for sig in signatures.values()
        for name, put in sig.inputs.items()
        if put.shape is not None and all(size > 0 for size in put.shape[1:])
    }


def _examples(
    definition: object,
    storage_for: Callable[[str], Storage],
    options: ValidationOptions,
    spec: Mapping[str, FeatureSpec],
) -> tuple[list[Example], str]:
    """The warmup examples and where they came from, checked against `spec`."""
    if options.examples is not None:
        examples, source = _read_examples(storage_for, options.examples), "file"
        described = f"file {options.examples}"
    elif getattr(definition, "warmup_examples", ()):
        examples = [
            {k: _as_list(v) for k, v in e.items()}
            for e in definition.warmup_examples  # type: ignore[attr-defined]
        ]
        source = described = "definition"
    else:
        examples = generated_examples(spec)
        log.info(
            "validation: no warmup examples given; generated %d from the serving input's "
            "feature spec %s",
            len(examples),
            {name: f.to_dict() for name, f in spec.items()},
        )
        return examples, "generated"
    if spec:
        check_examples(examples, spec, described)
    return examples, source


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if hasattr(value, "tolist"):
        listed = value.tolist()
        return listed if isinstance(listed, list) else [listed]
    return [value]


def _read_examples(storage_for: Callable[[str], Storage], uri: str) -> list[Example]:
    """The tf.Examples of a TFRecord file, as feature dicts."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tf-export-examples-") as local:
        path = Path(local) / "examples.tfrecord"
        try:
            path.write_bytes(storage_for(uri).read_bytes(uri))
            records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
        except (OSError, tf.errors.OpError) as error:
            raise ValidationError(
                f"warmup examples file {uri} is not a readable TFRecord file: {error}"
            ) from None
    examples = []
    for index, record in enumerate(records):
        try:
            parsed = tf.train.Example.FromString(record)
        except Exception as error:
            raise ValidationError(
                f"warmup examples file {uri}: record {index} is not a serialized tf.Example "
                f"({error})"
            ) from None
        examples.append(
            {
                name: list(getattr(feature, feature.WhichOneof("kind") or "int64_list").value)
                for name, feature in parsed.features.feature.items()
            }
        )
    return examples


def _signature_defs(staged: Path) -> dict[str, dict[str, SignatureDef]]:
    """tag -> signature key -> SignatureDef, read from saved_model.pb(txt)."""
    import tensorflow as tf
    from tensorflow.python.saved_model import loader_impl

    try:
        saved_model = loader_impl.parse_saved_model(str(staged))
    except Exception as error:
        raise ValidationError(
            f"the staged SavedModel cannot be read, so it is not published: "
            f"{type(error).__name__}: {error}"
        ) from None
    found: dict[str, dict[str, SignatureDef]] = {}
    for meta_graph in saved_model.meta_graphs:
        tags = list(meta_graph.meta_info_def.tags)
        signatures = {}
        for key, sig in meta_graph.signature_def.items():
            if key == _INIT_OP:
                continue
            signatures[key] = SignatureDef(
                method=sig.method_name,
                inputs={
                    name: SignatureInput(
                        tf.as_dtype(info.dtype).name,
                        None
                        if info.tensor_shape.unknown_rank
                        else tuple(d.size for d in info.tensor_shape.dim),
                    )
                    for name, info in sig.inputs.items()
                },
            )
        for tag in tags:
            found[tag] = signatures
    return found


def _feeds(
    signature: SignatureDef,
    examples: Sequence[Example],
    spec: Mapping[str, FeatureSpec],
    tag: str,
    key: str,
) -> dict[str, str]:
    """Each input of a signature as a base64 TensorProto: a feature stacked from the
    examples, a string input not among the features as the serialized examples, anything
    else (a label the examples lack) generated from its declared dtype and shape."""
    import numpy as np
    import tensorflow as tf

    feeds = {}
    for name, put in signature.inputs.items():
        if name in spec or all(name in e for e in examples):
            shape = spec[name].shape if name in spec else _declared_shape(put)
            value: Any = _stacked(examples, name, put.dtype, shape)
        elif put.dtype == "string":
            value = np.array(serialized_examples(examples, spec), dtype=object)
        else:
            feature = FeatureSpec(put.dtype, _declared_shape(put))
            generated = generated_examples({name: feature}, len(examples))
            value = _stacked(generated, name, put.dtype, feature.shape)
        try:
            proto = tf.make_tensor_proto(value, dtype=tf.as_dtype(put.dtype))
        except (TypeError, ValueError) as error:
            raise ValidationError(
                f"signature {key!r} ({tag}) input {name!r} takes {put.dtype}; the warmup "
                f"examples give {value.dtype}: {error}"
            ) from None
        feeds[name] = base64.b64encode(proto.SerializeToString()).decode()
    return feeds


def _stacked(examples: Sequence[Example], name: str, dtype: str, shape: tuple[int, ...]) -> Any:
    import numpy as np

    kind = object if dtype == "string" else dtype
    return np.stack([np.asarray(e[name], dtype=kind).reshape(shape) for e in examples])


def _declared_shape(put: SignatureInput) -> tuple[int, ...]:
    return () if put.shape is None else tuple(max(size, 1) for size in put.shape[1:])


def serialized_examples(
    examples: Sequence[Example], spec: Mapping[str, FeatureSpec]
) -> list[bytes]:
    """The examples as serialized tf.Example protos (bool and int values as int64 lists)."""
    import tensorflow as tf

    serialized = []
    for example in examples:
        features = {}
        for name, values in example.items():
            dtype = spec[name].dtype if name in spec else _python_dtype(values)
            if dtype == "string":
                data = [v if isinstance(v, bytes) else str(v).encode() for v in values]
                features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=data))
            elif dtype.startswith("float") or dtype == "bfloat16":
                features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
            else:
                ints = [int(v) for v in values]
                features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=ints))
        serialized.append(
            tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
        )
    return serialized


def _python_dtype(values: Sequence[Any]) -> str:
    if any(isinstance(v, bytes | str) for v in values):
        return "string"
    if any(isinstance(v, float) for v in values):
        return "float32"
    return "int64"


def _write_warmup_file(
    staged: Path,
    signatures: Mapping[str, SignatureDef],
    calls: Sequence[Mapping[str, Any]],
    examples: Sequence[Example],
    spec: Mapping[str, FeatureSpec],
) -> Path:
    """TF Serving's warmup file: one PredictionLog per serve signature call (a classify or
    regress request of the serialized examples, else a predict request of its inputs)."""
    import tensorflow as tf

    from airflow_tf_export.savedmodel.warmup_protos import PredictionLog

    path = staged / WARMUP_FILE
    if path.exists():
        raise ValidationError(
            f"{WARMUP_FILE} is already given in assets_extra; drop it there or set "
            "warmup_requests=False"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    serialized = serialized_examples(examples, spec)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for call in calls:
            record = PredictionLog()
            method = signatures[call["key"]].method
            if method in (_CLASSIFY, _REGRESS):
                kind = "classify_log" if method == _CLASSIFY else "regress_log"
                request = getattr(record, kind).request
                request.input.example_list.examples.extend(serialized)
            else:
                request = record.predict_log.request
                for name, encoded in call["feeds"].items():
                    request.inputs[name] = base64.b64decode(encoded)
            request.model_spec.signature_name = call["key"]
            writer.write(record.SerializeToString())
    return path


def _judged(
    answer: Mapping[str, Any],
    batch_size: int,
    source: str,
    options: ValidationOptions,
    warmup_requests: int | None,
) -> ValidationRecord:
    """The ValidationRecord of a passing answer; ValidationError listing every failure."""
    if answer["load_error"]:
        raise ValidationError(
            "the staged SavedModel does not load in a fresh process, so it is not published: "
            f"{answer['load_error']}"
        )
    failures = []
    signatures = []
    for result in answer["results"]:
        key = result["key"]
        if result["error"]:
            failures.append(
                f"signature {key!r} ({result['tag']}) failed on {batch_size} warmup examples: "
                f"{result['error']}"
            )
            continue
        outputs = {}
        for name, fields in result["outputs"].items():
            report = OutputReport(
                dtype=fields["dtype"],
                shape=tuple(fields["shape"]),
                declared_dtype=fields["declared_dtype"],
                declared_shape=None
                if fields["declared_shape"] is None
                else tuple(fields["declared_shape"]),
                nonfinite=fields["nonfinite"],
                min=fields["min"],
                max=fields["max"],
                digest=fields["digest"],
            )
            why = judge_output(key, name, report, batch_size, options.thresholds)
            if why is not None:
                failures.append(why)
            outputs[name] = report
        signatures.append(SignatureRecord(result["tag"], key, outputs))
    if not failures:
        unmatched = options.thresholds.unmatched_ranges(
            (s.key, name) for s in signatures for name in s.outputs
        )
        if unmatched is not None:
            failures.append(unmatched)
    warmup = answer.get("warmup")
    if warmup is not None and warmup["error"]:
        failures.append(
            f"replaying {WARMUP_FILE}: request {warmup['answered']} failed: {warmup['error']}"
        )
    elif warmup is not None and warmup["answered"] != warmup_requests:
        failures.append(
            f"replaying {WARMUP_FILE}: {warmup['answered']} of {warmup_requests} requests answered"
        )
    if failures:
        raise ValidationError(
            "validation failed, the version is not published: " + "; ".join(failures)
        )
    return ValidationRecord(batch_size, source, tuple(signatures), warmup_requests)


class ValidationProcess:
    """The validating process of this process: started at the first request, restarted if
    it died, ended when this process ends (it exits when its stdin closes, or, in the middle
    of a request, when it sees this process gone). Requests from
    several threads are answered one at a time."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the process now (TensorFlow is imported at its first request)."""
        with self._lock:
            self._started()

    def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request and return its answer; ValidationError when the process dies
        answering it (e.g. a SavedModel that crashes TensorFlow when loaded). Interrupted
        while waiting, it ends the process (the next request starts a new one)."""
        with self._lock:
            process = self._started()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(dict(request)) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except BrokenPipeError:
                line = ""
            except BaseException:
                # Interrupted (a task's timeout, a signal): the answer it leaves unread
                # would be taken as the next request's, so the process goes with it.
                process.kill()
                process.wait()
                self._process = None
                raise
            if line:
                answer: dict[str, Any] = json.loads(line)
                return answer
            code = process.wait()
            self._process = None
            raise ValidationError(
                f"the validating process ended (exit code {code}) while loading "
                f"{request['dir']}, so it is not published; its last output: {self._tail()}"
            )

    def _started(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        # Kept open as long as the process runs: its tail explains a crash.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_tf_export.savedmodel.validation_worker",
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        return self._process

    def _tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:].strip()


_PROCESSES: dict[int, ValidationProcess] = {}


def validation_process() -> ValidationProcess:
    """This process's validating process (a forked child gets its own, never its parent's)."""
    return _PROCESSES.setdefault(os.getpid(), ValidationProcess())
