"""tf.estimator's canned estimators, rebuilt to export their TF 2.15 checkpoints on TF 2.21.

LinearClassifier, LinearRegressor, DNNClassifier, DNNRegressor, DNNLinearCombinedClassifier
and DNNLinearCombinedRegressor take tf.estimator's arguments and rebuild the same graph
(variable names, heads, signatures, train op), so a model_dir trained by the real Estimator
restores by name. docs/canned-estimators.md says what is supported.
"""

from airflow_tf_export.estimator.canned.estimators import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearRegressor,
)

__all__ = [
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "LinearClassifier",
    "LinearRegressor",
]
