"""Split one saved MetaGraphDef into one MetaGraphDef per mode: how multi-mode export works.

Mechanism. Every requested signature (train, eval, serving) is traced as a concrete function
over the same restored variables, and `tf.saved_model.save` writes them once: one
MetaGraphDef tagged `serve` holding all signatures, one function library, and one
`variables/` checkpoint with every variable any signature captures. This module then
rewrites `saved_model.pb` so it holds one copy of that MetaGraphDef per requested mode,
tagged `train`, `eval` or `serve`, each keeping only its own signatures (in the SignatureDef
map and in the object graph's signature map) and the SignatureDef method names the Estimator
used (classify, regress, supervised training/eval). The copies share the saver, the init op
and the single `variables/` directory, as the Estimator's multi-mode export did.

Why this and not the alternatives:
- `tf.compat.v1.saved_model.Builder` needs graph-mode construction of every mode; Keras 3
  models build their variables eagerly and do not cooperate with v1 graphs and sessions.
- Saving one SavedModel per mode would duplicate the variables and is not one directory.
- The copies are what `tf.compat.v1.saved_model.loader.load(sess, [tag], path)` and TF
  Serving (the C++ loader) read: graph, saver and signatures, all present in each copy.
  `tf.saved_model.load(path, tags=[tag])` loads a SavedModel with several MetaGraphDefs
  through its v1 path and returns the signatures of the chosen one; with a single mode the
  file keeps its one MetaGraphDef and the full TF2 object graph. The integration tests load
  every tag with both loaders and with `saved_model_cli`.
Cost: each MetaGraphDef repeats the graph and function library, so saved_model.pb grows
with the number of modes; the variables, usually most of the bytes, are written once.

The train MetaGraphDef also lists its train signature's op in the `saved_model_train_op`
collection, as Estimator exports did for v1 training loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_tf_export.savedmodel.modes import TRAIN

SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
FINGERPRINT_FILENAME = "fingerprint.pb"
# tf.saved_model constants: the init-op signature every MetaGraphDef keeps, the v1 train-op
# collection, and the object graph child that holds the signatures.
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"
TRAIN_OP_COLLECTION = "saved_model_train_op"
_SIGNATURE_MAP_CHILD = "signatures"


@dataclass(frozen=True)
class Placement:
    """Where one final signature comes from: its key in the saved MetaGraphDef, and method."""

    saved_key: str
    method_name: str


def split_by_mode(
    export_dir: Path, layout: Mapping[str, Mapping[str, Placement]], *, as_text: bool
) -> None:
    """Rewrite `export_dir`'s SavedModel to one MetaGraphDef per tag in `layout` (in order).

    `layout` is tag -> final signature key -> placement.
    """
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = export_dir / SAVED_MODEL_PB
    saved = saved_model_pb2.SavedModel.FromString(pb_path.read_bytes())
    (base,) = saved.meta_graphs
    result = saved_model_pb2.SavedModel(saved_model_schema_version=saved.saved_model_schema_version)
    for tag, signatures in layout.items():
        meta_graph = result.meta_graphs.add()
        meta_graph.CopyFrom(base)
        del meta_graph.meta_info_def.tags[:]
        meta_graph.meta_info_def.tags.append(tag)
        _keep_signatures(meta_graph, signatures)
        if tag == TRAIN:
            _add_train_op(meta_graph, TRAIN)
    fingerprint = export_dir / FINGERPRINT_FILENAME
    if as_text:
        (export_dir / SAVED_MODEL_PBTXT).write_text(text_format.MessageToString(result))
        pb_path.unlink()
        # The fingerprint is a digest of saved_model.pb; a text SavedModel has none.
        fingerprint.unlink(missing_ok=True)
    else:
        pb_path.write_bytes(result.SerializeToString(deterministic=True))
        _write_fingerprint(export_dir)


def _keep_signatures(meta_graph: Any, signatures: Mapping[str, Placement]) -> None:
    saved_defs = dict(meta_graph.signature_def)
    meta_graph.signature_def.clear()
    if INIT_OP_SIGNATURE_KEY in saved_defs:
        meta_graph.signature_def[INIT_OP_SIGNATURE_KEY].CopyFrom(saved_defs[INIT_OP_SIGNATURE_KEY])
    for key, placement in signatures.items():
        signature_def = meta_graph.signature_def[key]
        signature_def.CopyFrom(saved_defs[placement.saved_key])
        signature_def.method_name = placement.method_name
    objects = meta_graph.object_graph_def.nodes
    (map_id,) = (c.node_id for c in objects[0].children if c.local_name == _SIGNATURE_MAP_CHILD)
    saved_children = {child.local_name: child.node_id for child in objects[map_id].children}
    del objects[map_id].children[:]
    for key, placement in signatures.items():
        objects[map_id].children.add(node_id=saved_children[placement.saved_key], local_name=key)


def _add_train_op(meta_graph: Any, train_key: str) -> None:
    """Name the op that runs the train signature, where v1 `get_train_op` looks for it."""
    (loss,) = meta_graph.signature_def[train_key].outputs.values()
    collection = meta_graph.collection_def[TRAIN_OP_COLLECTION]
    collection.node_list.value.append(loss.name.split(":")[0])


def _write_fingerprint(export_dir: Path) -> None:
    """Recompute fingerprint.pb, which tf.saved_model.save derived from the old saved_model.pb."""
    # No public API recomputes it; this is the helper tf.saved_model.save itself calls.
    from tensorflow.python.saved_model import fingerprinting_utils

    fingerprinting_utils.write_fingerprint(str(export_dir))
