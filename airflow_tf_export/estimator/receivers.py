"""Input receivers: the inputs of exported signatures and the features a model_fn gets.

What tf.estimator's receiver functions returned, and the builders that made them:

- `ServingInputReceiver`   returned by a `serving_input_receiver_fn`: the features passed to
                           the model_fn and the tensors fed by clients (`receiver_tensors`,
                           plus optional named alternatives, each giving more signatures).
- `SupervisedInputReceiver` returned by the receiver of the `train` and `eval` MetaGraphDefs:
                           features, labels and the tensors fed for them.

A receiver function takes no arguments and is called inside the graph being built, so it
creates placeholders there. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow_tf_export.savedmodel.errors import DefinitionError

# The keys a single tensor is given, as tf.estimator named them.
SINGLE_FEATURE_KEY = "feature"
SINGLE_RECEIVER_KEY = "input"
SINGLE_LABEL_KEY = "label"
# The parsing receiver's placeholder and input key.
EXAMPLES_PLACEHOLDER_NAME = "input_example_tensor"
EXAMPLES_KEY = "examples"


class ServingInputReceiver:
    """The serving signatures' input and the features the model_fn gets from it.

    `features`: a tensor (keyed `feature`) or a dict of string (or int) keys to Tensor,
    SparseTensor or RaggedTensor. `receiver_tensors`: a tensor (keyed `input`) or a dict of
    string keys to tensors: the signatures' inputs, typically one string placeholder of
    serialized tf.Example protos. `receiver_tensors_alternatives`: name -> another group of
    receiver tensors; every export output also gets a signature `<name>:<key>` taking it.
    """

    def __init__(
        self,
        features: Any,
        receiver_tensors: Any,
        receiver_tensors_alternatives: Mapping[str, Any] | None = None,
    ) -> None:
        self.features = _tensor_dict(features, "feature", SINGLE_FEATURE_KEY, int_keys=True)
        self.receiver_tensors = _tensor_dict(
            receiver_tensors, "receiver_tensor", SINGLE_RECEIVER_KEY
        )
        if receiver_tensors_alternatives is not None:
            if not isinstance(receiver_tensors_alternatives, Mapping):
                raise DefinitionError(
                    "receiver_tensors_alternatives must be a dict of name to receiver tensors, "
                    f"got {receiver_tensors_alternatives!r}"
                )
            receiver_tensors_alternatives = {
                name: _tensor_dict(tensors, "receiver_tensors_alternative", SINGLE_RECEIVER_KEY)
                for name, tensors in receiver_tensors_alternatives.items()
            }
        self.receiver_tensors_alternatives = receiver_tensors_alternatives


class SupervisedInputReceiver:
    """The `train` and `eval` signatures' input: features and labels for the model_fn.

    `features` and `labels` are passed to the model_fn as given (a tensor or a dict of
    tensors); `receiver_tensors` (a tensor, keyed `input`, or a dict) are the signature's
    inputs. There are no alternatives: those are for serving.
    """

    def __init__(self, features: Any, labels: Any, receiver_tensors: Any) -> None:
        _tensor_dict(features, "feature", SINGLE_FEATURE_KEY, int_keys=True)
        _tensor_dict(labels, "label", SINGLE_LABEL_KEY, int_keys=True)
        self.features = features
        self.labels = labels
        self.receiver_tensors = _tensor_dict(
            receiver_tensors, "receiver_tensor", SINGLE_RECEIVER_KEY
        )


def build_parsing_serving_input_receiver_fn(
    feature_spec: Mapping[str, Any], default_batch_size: int | None = None
) -> Callable[[], ServingInputReceiver]:
    """A serving receiver fn taking a batch of serialized tf.Example protos (input
    `examples`, a string placeholder named `input_example_tensor`) and parsing them with
    `feature_spec` (name -> tf.io.FixedLenFeature / VarLenFeature / ..., e.g. from
    `tf.feature_column.make_parse_example_spec`) into the features."""
    if not isinstance(feature_spec, Mapping) or not feature_spec:
        raise DefinitionError(
            f"feature_spec must be a non-empty dict of feature name to parsing spec, "
            f"got {feature_spec!r}"
        )
    _check_batch_size(default_batch_size)
    spec = dict(feature_spec)

    def serving_input_receiver_fn() -> ServingInputReceiver:
        import tensorflow as tf

        serialized = tf.compat.v1.placeholder(
            tf.string, [default_batch_size], name=EXAMPLES_PLACEHOLDER_NAME
        )
        features = tf.compat.v1.io.parse_example(serialized, spec)
        return ServingInputReceiver(features, {EXAMPLES_KEY: serialized})

    return serving_input_receiver_fn


def build_raw_serving_input_receiver_fn(
    features: Mapping[str, Any], default_batch_size: int | None = None
) -> Callable[[], ServingInputReceiver]:
    """A serving receiver fn with one placeholder per feature, fed directly.

    `features` maps names to tensors (or tf.TensorSpecs) giving each placeholder's dtype and
    per-example shape (the first dimension is replaced by `default_batch_size`) and, from a
    tensor, its name. They are usually placeholders made in a scratch graph:
    `with tf.Graph().as_default(): age = tf.compat.v1.placeholder(tf.float32, [None, 1], "age")`.
    """
    if not isinstance(features, Mapping) or not features:
        raise DefinitionError(
            f"features must be a non-empty dict of feature name to tensor, got {features!r}"
        )
    _check_batch_size(default_batch_size)
    templates = dict(features)

    def serving_input_receiver_fn() -> ServingInputReceiver:
        placeholders = {
            name: _placeholder_like(template, default_batch_size)
            for name, template in templates.items()
        }
        return ServingInputReceiver(placeholders, placeholders)

    return serving_input_receiver_fn


def build_raw_supervised_input_receiver_fn(
    features: Any, labels: Any, default_batch_size: int | None = None
) -> Callable[[], SupervisedInputReceiver]:
    """A receiver fn for the `train` and `eval` MetaGraphDefs: one placeholder per feature
    and per label (as for build_raw_serving_input_receiver_fn), fed directly and passed to
    the model_fn as given (a tensor, or a dict of them). A single feature tensor is the
    input `input`, a single label tensor the input `label`; keys must not overlap."""
    feature_keys = set(features) if isinstance(features, Mapping) else {SINGLE_RECEIVER_KEY}
    label_keys = set(labels) if isinstance(labels, Mapping) else {SINGLE_LABEL_KEY}
    overlap = feature_keys & label_keys
    if overlap:
        raise DefinitionError(
            f"features and labels must have distinct keys; both have {sorted(overlap)}"
        )
    _check_batch_size(default_batch_size)

    def supervised_input_receiver_fn() -> SupervisedInputReceiver:
        feature_tensors = _placeholders(features, default_batch_size)
        label_tensors = _placeholders(labels, default_batch_size)
        receiver_tensors = {
            **_keyed(feature_tensors, SINGLE_RECEIVER_KEY),
            **_keyed(label_tensors, SINGLE_LABEL_KEY),
        }
        return SupervisedInputReceiver(feature_tensors, label_tensors, receiver_tensors)

    return supervised_input_receiver_fn


def _check_batch_size(default_batch_size: object) -> None:
    if default_batch_size is not None and (
        isinstance(default_batch_size, bool)
        or not isinstance(default_batch_size, int)
        or default_batch_size < 1
    ):
        raise DefinitionError(
            f"default_batch_size must be a positive int or None (any batch size), "
            f"got {default_batch_size!r}"
        )


def _placeholders(templates: Any, batch_size: int | None) -> Any:
    if isinstance(templates, Mapping):
        return {name: _placeholder_like(t, batch_size) for name, t in templates.items()}
    return _placeholder_like(templates, batch_size)


def _keyed(tensors: Any, single_key: str) -> dict[str, Any]:
    return dict(tensors) if isinstance(tensors, Mapping) else {single_key: tensors}


def _placeholder_like(template: Any, batch_size: int | None) -> Any:
    """A placeholder with the template's dtype, shape (its first dimension `batch_size`) and
    name (a graph tensor's op name, a TensorSpec's name)."""
    import tensorflow as tf

    if isinstance(template, tf.TensorSpec):
        name = template.name
    elif isinstance(template, tf.Tensor):
        try:
            name = template.op.name
        except AttributeError:  # an eager tensor has no op
            name = None
    else:
        raise DefinitionError(
            f"a raw receiver needs a tensor or tf.TensorSpec per input, got {template!r}"
        )
    shape = tf.TensorShape([batch_size]).concatenate(template.shape[1:])
    return tf.compat.v1.placeholder(template.dtype, shape, name=name)


def _tensor_dict(
    tensors: Any, field: str, single_key: str, *, int_keys: bool = False
) -> dict[Any, Any]:
    """`tensors` as a dict (a single tensor keyed `single_key`), every key a string (or an
    int when allowed) and every value a Tensor, SparseTensor or RaggedTensor."""
    import tensorflow as tf

    if tensors is None:
        raise DefinitionError(f"{field}s must be given")
    if not isinstance(tensors, Mapping):
        tensors = {single_key: tensors}
    key_types = (str, int) if int_keys else (str,)
    for key, tensor in tensors.items():
        if not isinstance(key, key_types) or isinstance(key, bool):
            kinds = "strings or ints" if int_keys else "strings"
            raise DefinitionError(f"{field} keys must be {kinds}, got {key!r}")
        if not isinstance(tensor, tf.Tensor | tf.sparse.SparseTensor | tf.RaggedTensor):
            raise DefinitionError(
                f"{field} {key!r} must be a Tensor, SparseTensor or RaggedTensor, got {tensor!r}"
            )
    return dict(tensors)
