"""Decoding event values: TF1 simple values, TF2 tensors of each dtype, strings, filters."""

from __future__ import annotations

import math
import struct

import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from airflow_tf_export.events import protos
from airflow_tf_export.events.summaries import (
    EventValues,
    UndecodableEventError,
    decode_values,
    read_stamp,
)

from .event_builders import (
    checkpoint_event,
    file_version_event,
    float_tensor,
    simple_value_event,
    string_tensor,
    tensor_event,
)


def test_simple_values_and_the_event_stamp() -> None:
    event = simple_value_event(1200, {"loss": 0.25, "auc": 0.75}, wall_time=1700000000.5)
    assert read_stamp(event) == (1200, 1700000000.5)
    assert decode_values(event) == EventValues({"loss": 0.25, "auc": 0.75}, {})


def test_a_zero_simple_value_is_a_value() -> None:
    event = simple_value_event(5, {"loss": 0.0, "auc": 1.0})
    assert decode_values(event) == EventValues({"loss": 0.0, "auc": 1.0}, {})


def test_special_float_values_survive() -> None:
    values = decode_values(simple_value_event(5, {"nan": math.nan, "inf": math.inf}))
    assert math.isnan(values.scalars["nan"])
    assert values.scalars["inf"] == math.inf


def test_events_without_summary_have_no_stamp() -> None:
    assert read_stamp(file_version_event()) is None


@pytest.mark.parametrize("as_content", [True, False])
def test_tf2_float_scalar_tensor(as_content: bool) -> None:
    event = tensor_event(7, "accuracy", float_tensor(0.5, as_content=as_content))
    assert decode_values(event).scalars == {"accuracy": 0.5}


@pytest.mark.parametrize(
    ("dtype", "field", "content_format", "value"),
    [
        (types_pb2.DT_DOUBLE, "double_val", "<d", 0.1),
        (types_pb2.DT_INT32, "int_val", "<i", -7),
        (types_pb2.DT_INT64, "int64_val", "<q", 2**40),
        (types_pb2.DT_INT16, "int_val", "<h", -300),
        (types_pb2.DT_INT8, "int_val", "<b", -3),
        (types_pb2.DT_UINT8, "int_val", "<B", 200),
    ],
)
def test_numeric_scalar_tensors_of_each_dtype(
    dtype: int, field: str, content_format: str, value: float
) -> None:
    in_field = tensor_pb2.TensorProto(dtype=dtype)
    getattr(in_field, field).append(value)
    in_content = tensor_pb2.TensorProto(
        dtype=dtype, tensor_content=struct.pack(content_format, value)
    )
    for tensor in (in_field, in_content):
        assert decode_values(tensor_event(3, "m", tensor, plugin="")).scalars == {"m": value}


def test_a_one_element_tensor_of_shape_1_1_counts() -> None:
    tensor = float_tensor(0.5)
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=1)
    assert decode_values(tensor_event(3, "m", tensor)).scalars == {"m": 0.5}


def test_an_empty_value_list_is_a_zero_scalar() -> None:
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    assert decode_values(tensor_event(3, "m", tensor)).scalars == {"m": 0.0}


def test_checkpoint_path_and_text_strings() -> None:
    assert decode_values(checkpoint_event(10, "/m/model.ckpt-10")).strings == {
        "checkpoint_path": "/m/model.ckpt-10"
    }
    text = tensor_event(10, "checkpoint_path", string_tensor("gs://b/m/ckpt-10"), plugin="text")
    assert decode_values(text) == EventValues({}, {"checkpoint_path": "gs://b/m/ckpt-10"})


def test_tensors_that_are_not_scalars_or_from_other_plugins_are_ignored() -> None:
    vector = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0])
    vector.tensor_shape.dim.add(size=2)
    histogram = float_tensor(1.0)
    unsupported_dtype = tensor_pb2.TensorProto(dtype=types_pb2.DT_BOOL, bool_val=[True])
    wrong_content_size = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0\0")
    events = [
        tensor_event(1, "vector", vector),
        tensor_event(1, "histogram", histogram, plugin="histograms"),
        tensor_event(1, "flag", unsupported_dtype),
        tensor_event(1, "short", wrong_content_size),
        tensor_event(1, "image", string_tensor("png bytes"), plugin="images"),
    ]
    for event in events:
        assert decode_values(event) == EventValues({}, {})


def test_an_event_mixing_an_image_and_scalars_keeps_the_scalars() -> None:
    summary = summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(tag="loss", simple_value=0.5),
            summary_pb2.Summary.Value(
                tag="picture", image=summary_pb2.Summary.Image(height=1, width=1)
            ),
            summary_pb2.Summary.Value(tag="auc", tensor=float_tensor(0.75)),
        ]
    )
    event = event_pb2.Event(step=4, summary=summary).SerializeToString()
    assert decode_values(event) == EventValues({"loss": 0.5, "auc": 0.75}, {})


def test_bytes_that_are_not_an_event_are_undecodable() -> None:
    with pytest.raises(UndecodableEventError, match="not an Event"):
        read_stamp(b"\xff\xff\xff\xff")
    with pytest.raises(UndecodableEventError, match="not an Event"):
        decode_values(b"\x2a\x05\x0a\x03")  # summary field cut short


def test_runtime_descriptors_match_tensorboards_protos() -> None:
    """Field numbers and wire types equal those of tensorboard's generated messages."""
    pairs = [
        (protos.Event.DESCRIPTOR, event_pb2.Event.DESCRIPTOR),
        (
            protos.Event.DESCRIPTOR.fields_by_name["summary"].message_type,
            summary_pb2.Summary.DESCRIPTOR,
        ),
        (
            protos.Event.DESCRIPTOR.fields_by_name["summary"]
            .message_type.fields_by_name["value"]
            .message_type,
            summary_pb2.Summary.Value.DESCRIPTOR,
        ),
    ]
    value = pairs[2][0]
    pairs += [
        (value.fields_by_name["tensor"].message_type, tensor_pb2.TensorProto.DESCRIPTOR),
        (value.fields_by_name["metadata"].message_type, summary_pb2.SummaryMetadata.DESCRIPTOR),
        (
            value.fields_by_name["metadata"]
            .message_type.fields_by_name["plugin_data"]
            .message_type,
            summary_pb2.SummaryMetadata.PluginData.DESCRIPTOR,
        ),
    ]
    enum_type = 14  # TYPE_ENUM: read as int32, the same varint on the wire
    for ours, theirs in pairs:
        for field in ours.fields:
            reference = theirs.fields_by_name[field.name]
            assert field.number == reference.number, (ours.full_name, field.name)
            assert field.type == reference.type or reference.type == enum_type, field.name
            assert field.is_repeated == reference.is_repeated, field.name
