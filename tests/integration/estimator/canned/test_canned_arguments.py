"""The canned estimators' arguments: tf.estimator's defaults, and a clear error for anything that
cannot be rebuilt, raised when the estimator is constructed (before any export)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from canned_support import CANNED_MODELS, build, copy_checkpoint, specs

from airflow_tf_export.estimator import canned
from airflow_tf_export.estimator.canned.optimizers import resolve_optimizer
from airflow_tf_export.savedmodel.errors import DefinitionError


def _columns() -> dict[str, Any]:
    import tensorflow as tf

    return specs.feature_columns(tf)


@pytest.mark.parametrize("name", CANNED_MODELS)
def test_optimizer_hyperparameters_start_as_the_estimator_s(name: str, tmp_path: Path) -> None:
    """Before any restore, the optimizers' hyperparameter variables hold what the Estimator's
    did (its default learning rates for optimizer names among them): the checkpoint's values."""
    import tensorflow as tf

    built = build(name, "train")
    checkpoint = tf.train.load_checkpoint(copy_checkpoint(name, tmp_path))
    with built.graph.as_default(), tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        hyperparameters = {
            v.op.name: session.run(v)
            for v in tf.compat.v1.global_variables()
            if v.op.name.startswith("training/")
            and v.shape.rank == 0
            and not v.op.name.endswith("/iter")
        }
    assert hyperparameters
    for key, value in hyperparameters.items():
        assert value == pytest.approx(checkpoint.get_tensor(key), abs=0), key


def test_constructors_take_tf_estimator_s_arguments() -> None:
    """The arguments of TF 2.15's canned estimators (`inspect.signature` there), in order,
    with the same defaults, then this package's two receivers (keyword only)."""
    common = ("weight_column",)
    tf_215 = {
        "LinearClassifier": (
            "feature_columns",
            "model_dir",
            "n_classes",
            *common,
            "label_vocabulary",
            "optimizer",
            "config",
            "warm_start_from",
            "loss_reduction",
            "sparse_combiner",
        ),
        "LinearRegressor": (
            "feature_columns",
            "model_dir",
            "label_dimension",
            *common,
            "optimizer",
            "config",
            "warm_start_from",
            "loss_reduction",
            "sparse_combiner",
        ),
        "DNNClassifier": (
            "hidden_units",
            "feature_columns",
            "model_dir",
            "n_classes",
            *common,
            "label_vocabulary",
            "optimizer",
            "activation_fn",
            "dropout",
            "config",
            "warm_start_from",
            "loss_reduction",
            "batch_norm",
        ),
        "DNNRegressor": (
            "hidden_units",
            "feature_columns",
            "model_dir",
            "label_dimension",
            *common,
            "optimizer",
            "activation_fn",
            "dropout",
            "config",
            "warm_start_from",
            "loss_reduction",
            "batch_norm",
        ),
        "DNNLinearCombinedClassifier": (
            "model_dir",
            "linear_feature_columns",
            "linear_optimizer",
            "dnn_feature_columns",
            "dnn_optimizer",
            "dnn_hidden_units",
            "dnn_activation_fn",
            "dnn_dropout",
            "n_classes",
            *common,
            "label_vocabulary",
            "config",
            "warm_start_from",
            "loss_reduction",
            "batch_norm",
            "linear_sparse_combiner",
        ),
        "DNNLinearCombinedRegressor": (
            "model_dir",
            "linear_feature_columns",
            "linear_optimizer",
            "dnn_feature_columns",
            "dnn_optimizer",
            "dnn_hidden_units",
            "dnn_activation_fn",
            "dnn_dropout",
            "label_dimension",
            *common,
            "config",
            "warm_start_from",
            "loss_reduction",
            "batch_norm",
            "linear_sparse_combiner",
        ),
    }
    defaults = {
        "model_dir": None,
        "n_classes": 2,
        "label_dimension": 1,
        "weight_column": None,
        "label_vocabulary": None,
        "config": None,
        "warm_start_from": None,
        "loss_reduction": "sum_over_batch_size",
        "sparse_combiner": "sum",
        "linear_sparse_combiner": "sum",
        "dropout": None,
        "dnn_dropout": None,
        "batch_norm": False,
        "linear_feature_columns": None,
        "dnn_feature_columns": None,
        "dnn_hidden_units": None,
        "linear_optimizer": "Ftrl",
        "dnn_optimizer": "Adagrad",
    }
    for class_name, arguments in tf_215.items():
        parameters = inspect.signature(getattr(canned, class_name)).parameters
        positional = [p for p in parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert tuple(p.name for p in positional) == arguments, class_name
        keyword_only = [p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert keyword_only == ["serving_input_receiver_fn", "supervised_input_receiver_fn"]
        for p in positional:
            if p.name in defaults:
                assert p.default == defaults[p.name], (class_name, p.name)
        optimizer = parameters.get("optimizer")
        if optimizer is not None:
            assert optimizer.default == ("Ftrl" if class_name.startswith("Linear") else "Adagrad")


def test_default_activation_is_relu_and_none_means_no_activation() -> None:
    import tensorflow as tf

    age = tf.feature_column.numeric_column("age")
    consumers = {}
    for label, arguments in (("default", {}), ("none", {"activation_fn": None})):
        regressor = canned.DNNRegressor([3], [age], **arguments)
        with tf.Graph().as_default() as graph:
            tf.compat.v1.train.get_or_create_global_step()
            regressor.model_fn({"age": tf.constant([[-4.0], [5.0]])}, None, "infer")
            layer = graph.get_operation_by_name("dnn/hiddenlayer_0/BiasAdd").outputs[0]
            consumers[label] = {op.type for op in layer.consumers()}
    assert consumers == {"default": {"Relu"}, "none": {"MatMul"}}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda c: canned.LinearClassifier([c["age"]], model_dir="/tmp/m"),
            "model_dir='/tmp/m' is not supported here: the model_dir is where the export operator",
        ),
        (lambda c: canned.LinearRegressor([c["age"]], config=object()), "config="),
        (
            lambda c: canned.DNNRegressor([2], [c["age"]], warm_start_from="/ckpt"),
            "warm_start_from='/ckpt'",
        ),
        (
            lambda c: canned.DNNClassifier([2], [c["age"]], batch_norm=True),
            "batch_norm=True is not supported",
        ),
        (
            lambda c: canned.DNNLinearCombinedRegressor(
                dnn_feature_columns=[c["age"]], dnn_hidden_units=[2], batch_norm=True
            ),
            "batch_norm=True",
        ),
        (
            lambda c: canned.LinearClassifier([], n_classes=2),
            "feature_columns must name at least one",
        ),
        (lambda c: canned.LinearClassifier(c["age"]), "feature_columns must be a list"),
        (
            lambda c: canned.LinearClassifier([c["age"], c["age"]]),
            "two feature columns are named 'age'",
        ),
        (
            lambda c: canned.DNNClassifier([2], [c["language"]]),
            "categorical; a DNN takes it wrapped in tf.feature_column.indicator_column or "
            "embedding_column",
        ),
        (
            lambda c: canned.DNNLinearCombinedClassifier(
                dnn_feature_columns=[c["hour"]], dnn_hidden_units=[2]
            ),
            "dnn_feature_columns: categorical_column_with_identity 'hour' is categorical",
        ),
        (
            lambda c: canned.DNNLinearCombinedClassifier(),
            "give linear_feature_columns, dnn_feature_columns or both",
        ),
        (
            lambda c: canned.DNNLinearCombinedClassifier(dnn_feature_columns=[c["age"]]),
            "dnn_hidden_units must be given",
        ),
        (
            lambda c: canned.DNNClassifier([], [c["age"]]),
            "hidden_units=[] must list at least one positive layer width",
        ),
        (lambda c: canned.DNNClassifier([4, 0], [c["age"]]), "hidden_units=[4, 0]"),
        (
            lambda c: canned.DNNClassifier([4], [c["age"]], dropout=1.0),
            "dropout=1.0 must be None or a rate in [0, 1)",
        ),
        (
            lambda c: canned.DNNClassifier([4], [c["age"]], activation_fn="relu"),
            "activation_fn='relu' must be a function",
        ),
        (
            lambda c: canned.LinearClassifier([c["age"]], n_classes=1),
            "n_classes=1 must be an integer of at least 2",
        ),
        (
            lambda c: canned.LinearClassifier([c["age"]], n_classes=3, label_vocabulary=["a", "b"]),
            "must name each of the 3 classes once",
        ),
        (
            lambda c: canned.LinearClassifier([c["age"]], label_vocabulary="ab"),
            "must be a list of strings",
        ),
        (lambda c: canned.LinearRegressor([c["age"]], label_dimension=0), "label_dimension=0"),
        (
            lambda c: canned.LinearRegressor([c["age"]], weight_column=c["language"]),
            "weight_column=",
        ),
        (
            lambda c: canned.LinearRegressor([c["age"]], loss_reduction="weighted_sum"),
            "loss_reduction='weighted_sum' is not supported; use one of "
            "'sum_over_batch_size', 'sum'",
        ),
        (
            lambda c: canned.LinearRegressor([c["age"]], sparse_combiner="max"),
            "sparse_combiner='max' must be one of 'sum', 'mean', 'sqrtn'",
        ),
        (
            lambda c: canned.DNNLinearCombinedRegressor(
                linear_feature_columns=[c["age"]], linear_sparse_combiner="max"
            ),
            "linear_sparse_combiner='max'",
        ),
    ],
)
def test_bad_arguments_are_definition_errors_naming_them(make: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        make(_columns())
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (
            lambda tf, c: tf.feature_column.shared_embeddings(
                [
                    c["language"],
                    tf.feature_column.categorical_column_with_vocabulary_list(
                        "l2", ["a", "b", "c"]
                    ),
                ],
                2,
            )[0],
            "shared_embeddings",
        ),
        (
            lambda tf, c: tf.feature_column.weighted_categorical_column(c["language"], "weight"),
            "weighted_categorical_column",
        ),
        (lambda tf, c: tf.feature_column.sequence_numeric_column("age"), "sequence_numeric_column"),
        (
            lambda tf, c: tf.feature_column.indicator_column(
                tf.feature_column.sequence_categorical_column_with_identity("hour", 24)
            ),
            "sequence_categorical_column_with_*",
        ),
    ],
)
def test_unsupported_feature_columns_are_named_with_the_supported_ones(
    column: Any, kind: str
) -> None:
    import tensorflow as tf

    with tf.Graph().as_default(), pytest.raises(DefinitionError) as raised:
        canned.LinearClassifier([column(tf, _columns())])  # shared_embeddings need a graph
    message = str(raised.value)
    assert f"feature_columns: {kind}" in message
    assert "supported feature columns: numeric_column, bucketized_column" in message


def test_embedding_with_a_checkpoint_to_load_from_is_refused() -> None:
    import tensorflow as tf

    column = tf.feature_column.embedding_column(
        _columns()["language"], 2, ckpt_to_load_from="/old/model.ckpt", tensor_name_in_ckpt="e"
    )
    with pytest.raises(DefinitionError, match="build the column without ckpt_to_load_from"):
        canned.DNNClassifier([2], [column])


def test_every_supported_column_kind_is_accepted() -> None:
    columns = _columns()
    dense = [
        "age",
        "x",
        "age_buckets",
        "language_embedding",
        "color_embedding",
        "hour_indicator",
        "user_indicator",
    ]
    # age_scaled is another numeric column of the feature "age": one of the two per model.
    canned.LinearClassifier([c for name, c in columns.items() if name != "age_scaled"])
    canned.DNNClassifier([2], [columns[name] for name in dense])


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (
            "Adadelta",
            "optimizer='Adadelta' is not an optimizer name; use one of "
            "'Adagrad', 'Adam', 'Ftrl', 'RMSProp', 'SGD'",
        ),
        ("adam", "optimizer='adam' is not an optimizer name"),
        (lambda: __import__("keras").optimizers.Adadelta(), "is not supported; use one of"),
        (lambda: __import__("keras").optimizers.AdamW(), "is not supported; use one of"),
        (
            lambda: __import__("keras").optimizers.Adam(weight_decay=0.01),
            "Adam(weight_decay=0.01) is not supported",
        ),
        (
            lambda: __import__("keras").optimizers.SGD(clipnorm=1.0),
            "SGD(clipnorm=1.0) is not supported",
        ),
        (
            lambda: __import__("keras").optimizers.Ftrl(global_clipnorm=1.0),
            "Ftrl(global_clipnorm=1.0)",
        ),
        (lambda: __import__("keras").optimizers.Adagrad(use_ema=True), "Adagrad(use_ema=True)"),
        (
            lambda: __import__("keras").optimizers.RMSprop(gradient_accumulation_steps=2),
            "RMSprop(gradient_accumulation_steps=2)",
        ),
        (
            lambda: __import__("keras").optimizers.Adam(
                learning_rate=__import__("keras").optimizers.schedules.ExponentialDecay(
                    0.1, 10, 0.9
                )
            ),
            "give a number",
        ),
        (object(), "is not supported; use one of"),
    ],
)
def test_unsupported_optimizers_are_definition_errors(optimizer: Any, message: str) -> None:
    argument = optimizer() if callable(optimizer) and not isinstance(optimizer, str) else optimizer
    with pytest.raises(DefinitionError) as raised:
        canned.LinearRegressor([_columns()["age"]], optimizer=argument)
    assert message in str(raised.value)
    assert "optimizer" in str(raised.value)


def test_keras_optimizers_keep_their_settings_and_the_legacy_name() -> None:
    import keras

    spec = resolve_optimizer(
        keras.optimizers.Ftrl(learning_rate=0.3, l1_regularization_strength=0.1, beta=0.2),
        argument="optimizer",
        default_learning_rate=0.2,
    )
    assert (spec.kind, spec.name) == ("Ftrl", "Ftrl")
    assert spec.hyperparameters["learning_rate"] == pytest.approx(0.3)
    assert spec.hyperparameters["l1_regularization_strength"] == pytest.approx(0.1)
    assert spec.hyperparameters["beta"] == pytest.approx(0.2)
    keras.optimizers.RMSprop()  # Keras numbers its automatic names: rm_sprop_1, ...
    assert (
        resolve_optimizer(keras.optimizers.RMSprop(), argument="o", default_learning_rate=None).name
        == "RMSprop"
    )
    named = resolve_optimizer(
        keras.optimizers.Adam(name="MyAdam"), argument="o", default_learning_rate=None
    )
    assert named.name == "MyAdam"
    made = resolve_optimizer(
        lambda: keras.optimizers.SGD(momentum=0.9), argument="o", default_learning_rate=None
    )
    assert (made.kind, made.has_momentum) == ("SGD", True)


@pytest.mark.parametrize(
    ("make", "learning_rates"),
    [
        (lambda c: canned.LinearClassifier([c["age"]]), {"Ftrl": 0.2}),
        (lambda c: canned.LinearRegressor([c["age"]], optimizer="SGD"), {"SGD": 0.2}),
        (lambda c: canned.DNNRegressor([2], [c["age"]], optimizer="SGD"), {"SGD": 0.01}),
        (lambda c: canned.DNNClassifier([2], [c["age"]], optimizer="Adam"), {"Adam": 0.001}),
        (
            lambda c: canned.DNNLinearCombinedRegressor(
                linear_feature_columns=[c["age"]],
                dnn_feature_columns=[c["x"]],
                dnn_hidden_units=[2],
                dnn_optimizer="SGD",
            ),
            {"SGD": 0.001, "Ftrl": 0.005},
        ),
    ],
)
def test_optimizer_names_get_tf_estimator_s_learning_rates(
    make: Any, learning_rates: dict[str, float]
) -> None:
    model = make(_columns()).canned_model
    specs_by_kind = {
        part.optimizer.kind: part.optimizer for part in (model.dnn, model.linear) if part
    }
    assert {
        k: v.hyperparameters["learning_rate"] for k, v in specs_by_kind.items()
    } == learning_rates
