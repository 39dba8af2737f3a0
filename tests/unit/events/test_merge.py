"""Merging events by step: the later write wins, checkpoint paths join their step's metrics."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2

from airflow_tf_export.events.merge import StepMerger
from airflow_tf_export.events.summaries import decode_event

from .event_builders import checkpoint_event, simple_value_event


def _add(merger: StepMerger, uri: str, offset: int, event: bytes) -> None:
    decoded = decode_event(event)
    assert decoded is not None
    scalars, strings = decoded.values
    merger.add(uri, [(offset, decoded.step, decoded.wall_time, scalars, strings, None)])


def test_metrics_and_checkpoint_path_of_one_step_merge() -> None:
    merger = StepMerger()
    _add(merger, "/e/f1", 10, simple_value_event(100, {"loss": 0.5}, wall_time=1.0))
    _add(merger, "/e/f1", 50, checkpoint_event(100, "/m/model.ckpt-100", wall_time=2.0))
    result = merger.result(100)
    assert result is not None
    assert dict(result.metrics) == {"loss": 0.5}
    assert result.checkpoint_path == "/m/model.ckpt-100"
    assert (result.wall_time, result.source) == (2.0, "/e/f1")


def test_a_rewritten_step_takes_the_later_wall_time_then_file_then_offset() -> None:
    merger = StepMerger()
    _add(merger, "/e/b", 10, simple_value_event(7, {"loss": 3.0, "auc": 0.25}, wall_time=5.0))
    _add(merger, "/e/a", 10, simple_value_event(7, {"loss": 2.0}, wall_time=6.0))
    result = merger.result(7)
    assert result is not None
    assert dict(result.metrics) == {"loss": 2.0, "auc": 0.25}
    assert (result.wall_time, result.source) == (6.0, "/e/a")

    _add(merger, "/e/c", 10, simple_value_event(7, {"loss": 1.0}, wall_time=6.0))
    assert merger.result(7).metrics["loss"] == 1.0  # type: ignore[union-attr]
    _add(merger, "/e/c", 99, simple_value_event(7, {"loss": 0.5}, wall_time=6.0))
    assert merger.result(7).metrics["loss"] == 0.5  # type: ignore[union-attr]


def test_steps_without_usable_values_have_no_result() -> None:
    merger = StepMerger()
    text = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="note", simple_value=1.0)])
    text.value[0].ClearField("simple_value")
    _add(merger, "/e/f", 0, event_pb2.Event(step=3, summary=text).SerializeToString())
    assert merger.result(3) is None
    assert merger.results() == []
    assert list(merger.newest_first()) == []


def test_newest_first_and_results_order() -> None:
    merger = StepMerger()
    for offset, step in enumerate([300, 100, 200]):
        _add(merger, "/e/f", offset, simple_value_event(step, {"loss": step / 1000}))
    assert [r.step for r in merger.newest_first()] == [300, 200, 100]
    assert [r.step for r in merger.results()] == [100, 200, 300]
    merger.clear()
    assert merger.results() == []


def test_only_events_with_usable_values_are_kept() -> None:
    padding = summary_pb2.Summary.Value(
        tag="picture", image=summary_pb2.Summary.Image(encoded_image_string=b"\x89PNG" * 1000)
    )
    with_loss = summary_pb2.Summary(
        value=[padding, summary_pb2.Summary.Value(tag="loss", simple_value=0.5)]
    )
    image_only = summary_pb2.Summary(value=[padding])
    merger = StepMerger()
    for step, summary in ((1, with_loss), (2, image_only)):
        event = event_pb2.Event(step=step, wall_time=1.0, summary=summary).SerializeToString()
        _add(merger, "/e/f", step, event)
    assert [(r.step, dict(r.metrics)) for r in merger.results()] == [(1, {"loss": 0.5})]
    assert len(merger) == 1


def test_drop_below_forgets_lower_steps_only() -> None:
    merger = StepMerger()
    for offset, step in enumerate([100, 200, 200, 300, 50]):
        _add(merger, "/e/f", offset, simple_value_event(step, {"loss": offset / 8}))
    assert len(merger) == 5
    merger.drop_below(200)
    assert merger.steps() == [200, 300]
    assert dict(merger.result(200).metrics) == {"loss": 2 / 8}  # type: ignore[union-attr]
    assert sorted(step for step, _ in merger.stored()) == [200, 200, 300]
    merger.drop_below(1000)
    assert merger.results() == [] and len(merger) == 0


_writes = st.lists(
    st.tuples(
        st.sampled_from(["/e/a", "/e/b"]),
        st.integers(0, 3),  # step
        st.sampled_from([1.0, 2.0]),  # wall time: collisions are likely
        st.dictionaries(st.sampled_from(["loss", "auc"]), st.floats(0, 1, width=32), min_size=1),
    ),
    max_size=12,
)


@given(writes=_writes, order=st.randoms(use_true_random=False))
def test_the_merge_does_not_depend_on_reading_order(writes: list, order) -> None:  # type: ignore[no-untyped-def]
    events = [
        (uri, offset, simple_value_event(step, metrics, wall_time=wall_time))
        for offset, (uri, step, wall_time, metrics) in enumerate(writes)
    ]
    forward, shuffled = StepMerger(), StepMerger()
    for uri, offset, event in events:
        _add(forward, uri, offset, event)
    reordered = list(events)
    order.shuffle(reordered)
    for uri, offset, event in reordered:
        _add(shuffled, uri, offset, event)
    assert forward.results() == shuffled.results()
    # Each metric's value is the one with the greatest (wall_time, uri, offset).
    for result in forward.results():
        for tag, value in result.metrics.items():
            candidates = [
                ((w, u, o), m[tag])
                for o, (u, s, w, m) in enumerate(writes)
                if s == result.step and tag in m
            ]
            assert value == max(candidates)[1]
