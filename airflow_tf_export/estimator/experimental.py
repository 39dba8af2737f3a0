"""`estimator.experimental`: the receiver builder tf.estimator kept under that name."""

from __future__ import annotations

from airflow_tf_export.estimator.receivers import build_raw_supervised_input_receiver_fn

__all__ = ["build_raw_supervised_input_receiver_fn"]
