"""The SignatureDefs of one mode's graph, by the Estimator's rules.

serve   one signature per export output of the spec, under its key, taking the receiver
        tensors; for each receiver alternative `<name>`, also `<name>:<key>` taking those.
train   `train` (`tensorflow/supervised/training`) and eval `eval`
        (`tensorflow/supervised/eval`): loss, predictions and metrics, taking the
        supervised receiver's tensors.

A signature the receiver does not fit (a classify or regress output on anything but one
string input, or outputs depending on a placeholder the signature does not feed) is left
out with a log line, as the Estimator left it out; the serve mode keeps only signatures TF
Serving can serve. A mode left with no signature at all is an error: its MetaGraphDef
could not be used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_tf_export.estimator.export_outputs import ExportOutput, SupervisedOutput
from airflow_tf_export.estimator.spec import EstimatorSpec
from airflow_tf_export.savedmodel.errors import DefinitionError
from airflow_tf_export.savedmodel.export_outputs import DEFAULT_SIGNATURE_KEY
from airflow_tf_export.savedmodel.modes import (
    EVAL,
    EVAL_METHOD_NAME,
    SERVE,
    TRAIN,
    TRAIN_METHOD_NAME,
)

_log = logging.getLogger(__name__)

_METHOD_KINDS = {
    "tensorflow/serving/classify": "classify",
    "tensorflow/serving/regress": "regress",
    "tensorflow/serving/predict": "predict",
    TRAIN_METHOD_NAME: "train",
    EVAL_METHOD_NAME: "eval",
}


def export_outputs_for_mode(mode: str, spec: EstimatorSpec) -> dict[str, ExportOutput]:
    """Signature key -> export output of export mode `mode` (train, eval or serve)."""
    if mode == SERVE:
        return dict(spec.export_outputs or {})
    method_name = TRAIN_METHOD_NAME if mode == TRAIN else EVAL_METHOD_NAME
    output = SupervisedOutput(
        method_name,
        loss=spec.loss,
        predictions=spec.predictions,
        metrics=spec.eval_metric_ops,
    )
    return {TRAIN if mode == TRAIN else EVAL: output}


def build_signature_defs(
    mode: str,
    export_outputs: Mapping[str, ExportOutput],
    receiver_tensors: Mapping[str, Any],
    alternatives: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Signature key -> SignatureDef of every export output the receiver fits (logged)."""
    import tensorflow as tf

    groups = [("", receiver_tensors), *(alternatives or {}).items()]
    built: dict[str, Any] = {}
    excluded: dict[str, str] = {}
    for group_name, inputs in groups:
        for output_key, output in export_outputs.items():
            key = f"{output_key or 'None'}"
            if group_name:
                key = f"{group_name}:{key}"
            try:
                signature = output.as_signature_def(inputs)
                _require_fed(inputs.values(), signature.outputs)
            except ValueError as error:
                excluded[key] = str(error)
                continue
            if mode == SERVE and not tf.compat.v1.saved_model.is_valid_signature(signature):
                excluded[key] = f"not a valid serving signature ({signature.method_name})"
                continue
            built[key] = signature
    _report(mode, built, excluded)
    if not built:
        reasons = "; ".join(f"{key}: {reason}" for key, reason in excluded.items())
        raise DefinitionError(
            f"mode {mode!r} has no signature to export ({reasons or 'no export outputs'})"
        )
    return built


def _require_fed(inputs: Iterable[Any], outputs: Mapping[str, Any]) -> None:
    """ValueError naming a placeholder the outputs depend on that the inputs do not feed."""
    import tensorflow as tf

    fed = tf.nest.flatten(list(inputs), expand_composites=True)
    if not fed:
        return
    graph = fed[0].graph
    fed_names = {tensor.name for tensor in fed}
    tensors = [
        tf.compat.v1.saved_model.get_tensor_from_tensor_info(info, graph)
        for info in outputs.values()
    ]
    pending = [t.op for t in tf.nest.flatten(tensors, expand_composites=True)]
    seen: set[str] = set()
    while pending:
        op = pending.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type == "Placeholder" and any(out.name not in fed_names for out in op.outputs):
            raise ValueError(
                f"the outputs depend on placeholder {op.name!r}, which is not among the "
                f"signature's inputs {sorted(fed_names)}"
            )
        pending.extend(t.op for t in op.inputs if t.name not in fed_names)


def _report(mode: str, built: Mapping[str, Any], excluded: Mapping[str, str]) -> None:
    """Log what each kind of signature got, and why others were left out."""
    kinds: dict[str, list[str]] = {}
    for key, signature in built.items():
        kind = _METHOD_KINDS.get(signature.method_name, signature.method_name)
        kinds.setdefault(kind, []).append(key)
    for kind, keys in sorted(kinds.items()):
        _log.info("mode %r: %s signatures included: %s", mode, kind, sorted(keys))
    for key, reason in excluded.items():
        _log.info("mode %r: signature %r excluded: %s", mode, key, reason)
    if mode == SERVE and built and DEFAULT_SIGNATURE_KEY not in built:
        _log.warning(
            "mode %r: no %r signature: clients must name a signature", mode, DEFAULT_SIGNATURE_KEY
        )
