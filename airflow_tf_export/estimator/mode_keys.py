"""`ModeKeys`: the modes a model_fn is called in, spelled as tf.estimator spelled them.

A model_fn compares its `mode` argument with these values. The export modes (SavedModel
tags) of each: TRAIN -> `train`, EVAL -> `eval`, PREDICT (`infer`) -> `serve`.
"""

from __future__ import annotations

from airflow_tf_export.savedmodel.modes import EVAL, SERVE, TRAIN


class ModeKeys:
    """The values of a model_fn's `mode` argument (tf.estimator.ModeKeys)."""

    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


# Export mode (SavedModel tag) -> the mode a model_fn is called in for it.
MODE_KEY_OF_EXPORT_MODE = {TRAIN: ModeKeys.TRAIN, EVAL: ModeKeys.EVAL, SERVE: ModeKeys.PREDICT}
MODE_KEYS = frozenset(MODE_KEY_OF_EXPORT_MODE.values())
