"""Benchmark: exporting a TF 2.15 Estimator checkpoint, against the same export written by hand.

The checkpoints are the committed ones the real tf.estimator trained
(`tests/data/estimator/<model>/model_dir/model.ckpt-150`), exported with the canned estimators
`specs.py` builds with `airflow_tf_export.estimator` (the one changed import): a
`LinearClassifier` and a `DNNLinearCombinedClassifier` (linear and DNN parts, embedding,
crossed and identity columns, a weight column, two optimizers).

Two sides do the same work in one process, in interleaved rounds (one warm-up round not
counted; every other round runs the sides in the reverse order):

  ours      write_saved_model(definition, checkpoint, export_dir, modes=...)
  by hand   what a user would otherwise write with the same model_fn and receivers: for each
            mode (train, eval, serve order) a fresh tf.Graph with the global step, the
            receiver, the model_fn's EstimatorSpec, its SignatureDefs, a sharded
            tf.compat.v1.train.Saver and the local-init main op; the checkpoint restored with
            the Saver into the first graph; tf.compat.v1.saved_model.Builder's
            add_meta_graph_and_variables for the first mode and add_meta_graph for the
            others; save().

Before timing, both sides' SavedModels are compared and must be equal: the same files, and
for each MetaGraphDef the same tags, signature keys, method names, input and output keys,
dtypes and shapes, the same saved variables (names, shapes, dtypes), asset files and train op
collection. Ours also checks the definition and the checkpoint before it writes (each graph's
variables against the checkpoint's, every signature's inputs) and logs the signatures it
wrote, which the hand-written side does not: that is the overhead measured.

A third figure, `operator`, is LatestExportOperator.execute writing the same SavedModel as a
DAG task does; it does more work (resolving the state file's checkpoint, copying its files,
the manifest, publishing, retention), so its ratio is shown without a target.

Figures, per model: `single` exports the serve mode, `multi` the train, eval and serve modes
into one SavedModel; medians of wall-clock seconds, and of CPU seconds (every thread of the
process), which a shared machine disturbs less. A ratio is the median over rounds of ours /
by hand measured in the same round, one right after the other (the ratio of the two medians is
shown too). Targets: ours / by hand <= 1.2 (wall-clock) for single and for multi, on every
model. The last line printed is one JSON object: the worst ratio of each kind, every ratio and
each side's seconds per model, and the process's peak RSS. Run it several times on a shared
machine.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_estimator_export.py [--runs 11]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "estimator"
sys.path.insert(0, str(DATA))

import specs  # noqa: E402
from measuring import Action, interleaved_rounds  # noqa: E402

from airflow_tf_export.savedmodel import write_saved_model  # noqa: E402

MODELS = ("linear_classifier", "combined_classifier")
CHECKPOINT = "model.ckpt-150"
SINGLE = ("serve",)
MULTI = ("train", "eval", "serve")
TARGET = 1.2
# The Estimator's mode keys, for each SavedModel tag.
MODE_KEY = {"train": "train", "eval": "eval", "serve": "infer"}
TRAIN_OP_COLLECTION = "saved_model_train_op"
METHOD = {"train": "tensorflow/supervised/training", "eval": "tensorflow/supervised/eval"}


def definition_of(name: str) -> Any:
    """The canned estimator of tests/data/estimator/<name>, with this package's estimator."""
    import tensorflow as tf

    from airflow_tf_export import estimator

    return specs.MODELS[name].build(tf, estimator)


def copy_model_dir(name: str, work: Path) -> Path:
    """The model's model_dir (checkpoints, state file, eval events; not the Estimator's
    exports) copied to `work/<name>`."""
    target = work / name
    shutil.copytree(DATA / name / "model_dir", target, ignore=shutil.ignore_patterns("export"))
    return target


def supervised_signature(method_name: str, inputs: Mapping[str, Any], spec: Any) -> Any:
    """The train or eval SignatureDef, as a user writes it: the inputs fed, and the loss,
    the predictions and each metric's value and update op (an Operation run through an
    empty tensor), under the keys the Estimator used."""
    import tensorflow as tf

    def prefixed(key: str, prefix: str) -> str:
        return key if key.startswith(prefix) else f"{prefix}/{key}"

    outputs = {"loss": spec.loss}
    for key, tensor in spec.predictions.items():
        outputs[prefixed(key, "predictions")] = tensor
    for key, (value, update_op) in spec.eval_metric_ops.items():
        if isinstance(update_op, tf.Operation):
            with tf.control_dependencies([update_op]):
                update_op = tf.constant([], name="metric_op_wrapper")
        outputs[f"{prefixed(key, 'metrics')}/value"] = value
        outputs[f"{prefixed(key, 'metrics')}/update_op"] = update_op
    info = tf.compat.v1.saved_model.build_tensor_info
    return tf.compat.v1.saved_model.build_signature_def(
        {key: info(t) for key, t in inputs.items()},
        {key: info(t) for key, t in outputs.items()},
        method_name,
    )


def by_hand(definition: Any, model_dir: Path, modes: tuple[str, ...], export_dir: Path) -> None:
    """The SavedModel of `modes` written with TensorFlow's own API and nothing of ours but
    the definition's model_fn and receivers (what a user would otherwise write)."""
    import tensorflow as tf

    checkpoint = str(model_dir / CHECKPOINT)

    graphs = []
    for mode in modes:
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.train.get_or_create_global_step()
            if mode == "serve":
                receiver = definition.serving_input_receiver_fn()
                spec = definition.model_fn(receiver.features, None, MODE_KEY[mode])
                signatures = {
                    key: output.as_signature_def(receiver.receiver_tensors)
                    for key, output in spec.export_outputs.items()
                }
            else:
                receiver = definition.supervised_input_receiver_fn()
                spec = definition.model_fn(receiver.features, receiver.labels, MODE_KEY[mode])
                signatures = {
                    mode: supervised_signature(METHOD[mode], receiver.receiver_tensors, spec)
                }
            if spec.train_op is not None:
                tf.compat.v1.add_to_collection(TRAIN_OP_COLLECTION, spec.train_op)
            arguments = {
                "signature_def_map": signatures,
                "assets_collection": tf.compat.v1.get_collection(
                    tf.compat.v1.GraphKeys.ASSET_FILEPATHS
                ),
                "main_op": tf.compat.v1.train.Scaffold.default_local_init_op(),
                "saver": tf.compat.v1.train.Saver(sharded=True),
                "strip_default_attrs": True,
            }
        graphs.append((mode, graph, arguments))
    (first_mode, first_graph, first_arguments), *later = graphs
    builder = tf.compat.v1.saved_model.Builder(str(export_dir))
    with first_graph.as_default(), tf.compat.v1.Session(graph=first_graph) as session:
        first_arguments["saver"].restore(session, checkpoint)
        builder.add_meta_graph_and_variables(session, [first_mode], **first_arguments)
    for mode, graph, arguments in later:
        with graph.as_default():
            builder.add_meta_graph([mode], **arguments)
    builder.save()


def ours(definition: Any, model_dir: Path, modes: tuple[str, ...], export_dir: Path) -> None:
    write_saved_model(definition, str(model_dir / CHECKPOINT), export_dir, modes=modes)


def describe(export_dir: Path) -> dict[str, Any]:
    """What a SavedModel holds, for comparing two of them: its files, each MetaGraphDef's
    tags, signatures (method, input and output keys with dtypes and shapes), asset files
    and train op collection, and the saved variables."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((export_dir / "saved_model.pb").read_bytes())

    def tensors(infos: Any) -> dict[str, Any]:
        return {
            key: (info.dtype, [d.size for d in info.tensor_shape.dim])
            for key, info in infos.items()
        }

    meta_graphs = []
    for meta in saved_model.meta_graphs:
        signatures = {
            key: (s.method_name, tensors(s.inputs), tensors(s.outputs))
            for key, s in meta.signature_def.items()
        }
        assets = sorted(a.filename for a in meta.asset_file_def)
        train_op = meta.collection_def[TRAIN_OP_COLLECTION].node_list.value
        meta_graphs.append((list(meta.meta_info_def.tags), signatures, assets, list(train_op)))
    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    variables = {
        name: (shape, dtypes[name].name)
        for name, shape in reader.get_variable_to_shape_map().items()
    }
    files = sorted(str(p.relative_to(export_dir)) for p in export_dir.rglob("*") if p.is_file())
    return {"files": files, "meta_graphs": meta_graphs, "variables": variables}


def check_same_work(definition: Any, model_dir: Path, modes: tuple[str, ...], work: Path) -> str:
    """Both sides' SavedModels of `modes`, compared; a summary of what each holds."""
    ours(definition, model_dir, modes, work / "check-ours")
    by_hand(definition, model_dir, modes, work / "check-by-hand")
    described = describe(work / "check-ours")
    other = describe(work / "check-by-hand")
    for part in described:
        if described[part] != other[part]:
            raise SystemExit(
                f"not the same work for modes {modes}: the {part} differ\n"
                f"ours:    {described[part]}\nby hand: {other[part]}"
            )
    shutil.rmtree(work / "check-ours")
    shutil.rmtree(work / "check-by-hand")
    signatures = sum(len(meta[1]) for meta in described["meta_graphs"])
    tags = "+".join(tag for meta in described["meta_graphs"] for tag in meta[0])
    return (
        f"{tags}: {signatures} signatures, {len(described['variables'])} variables, "
        f"{len(described['files'])} files"
    )


def operator(
    definition: Any, model_dir: Path, modes: tuple[str, ...], export_dir_base: Path
) -> None:
    """LatestExportOperator.execute: the export as a DAG runs it (more work than the two
    sides above: it also resolves the state file's checkpoint, copies its files to a
    temporary directory, decides, writes the manifest, publishes a version and applies
    retention)."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_tf_export.operators.export import LatestExportOperator

    task = LatestExportOperator(
        task_id="export",
        name="bench",
        model_definition=lambda: definition,
        model_dir=str(model_dir),
        export_dir_base=str(export_dir_base),
        modes=modes,
    )
    result = task.execute({"outlet_events": OutletEventAccessors()})
    if not result["exported"]:
        raise SystemExit(f"the operator did not export: {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="timed rounds (at least 5)")
    runs = max(5, parser.parse_args().runs)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")

    actions: dict[str, Action] = {}
    with tempfile.TemporaryDirectory(prefix="bench-estimator-export-") as scratch:
        work = Path(scratch)
        for model in MODELS:
            definition = definition_of(model)
            model_dir = copy_model_dir(model, work)
            for kind, modes in (("single", SINGLE), ("multi", MULTI)):
                same = check_same_work(definition, model_dir, modes, work)
                print(f"{model} {kind}, the same on both sides: {same}")
                for side in (ours, by_hand, operator):
                    actions[f"{model} {kind} {side.__name__}"] = functools.partial(
                        side, definition, model_dir, modes
                    )
        rounds = interleaved_rounds(actions, work, runs)

    median = {name: rounds.median(name) for name in actions}
    median_cpu = {name: rounds.median(name, cpu=True) for name in actions}
    print(f"{runs} timed rounds (+1 warm-up), interleaved; median seconds wall-clock (CPU)")
    for name, values in rounds.wall.items():
        print(
            f"{name:>36}: median {median[name]:.3f} ({median_cpu[name]:.3f})  "
            f"runs {[round(v, 3) for v in values]}"
        )
    ratios: dict[str, dict[str, dict[str, float]]] = {"single": {}, "multi": {}}
    for model in MODELS:
        for kind, by_model in ratios.items():
            key = f"{model} {kind}"
            by_model[model] = figures = {
                "paired": rounds.paired(f"{key} ours", f"{key} by_hand"),
                "of_medians": median[f"{key} ours"] / median[f"{key} by_hand"],
                "cpu_paired": rounds.paired(f"{key} ours", f"{key} by_hand", cpu=True),
                "operator_paired": rounds.paired(f"{key} operator", f"{key} by_hand"),
            }
            print(
                f"{key}: ours/by hand {figures['paired']:.3f} (target <= {TARGET}; ratio of "
                f"medians {figures['of_medians']:.3f}, CPU {figures['cpu_paired']:.3f}); "
                f"operator/by hand {figures['operator_paired']:.3f} (more work, no target)"
            )
    single = max(figures["paired"] for figures in ratios["single"].values())
    multi = max(figures["paired"] for figures in ratios["multi"].values())
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "single_over_by_hand": round(single, 3),
                "multi_over_by_hand": round(multi, 3),
                "ratios": {
                    kind: {
                        model: {name: round(value, 3) for name, value in figures.items()}
                        for model, figures in by_model.items()
                    }
                    for kind, by_model in ratios.items()
                },
                "seconds": {name: round(value, 4) for name, value in median.items()},
                "cpu_seconds": {name: round(value, 4) for name, value in median_cpu.items()},
                "peak_rss_mb": round(peak_rss_mb, 1),
                "runs": runs,
                "meets_targets": single <= TARGET and multi <= TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
