"""The state file parser of core.checkpoints against TensorFlow 2.21 itself: whatever
`generate_checkpoint_state_proto` + text_format writes (any path text, one field per line
or all on one line) parses back to the same paths, and what `prune_checkpoint_state` leaves
is read by TensorFlow's own text-proto parser as the same state without the pruned
entries and their timestamps."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_tf_export.core.checkpoints import parse_checkpoint_state, prune_checkpoint_state
from airflow_tf_export.storage.checkpoints import resolve_checkpoint
from airflow_tf_export.storage.local import LocalStorage

# Any text a path may hold: quotes, backslashes, control characters, non-ASCII.
PATHS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
STAMPS = st.floats(allow_nan=False, allow_infinity=True, width=64)


def written(
    latest: str,
    paths: list[str],
    stamps: list[float] | None,
    preserved: float | None,
    one_line: bool,
    as_utf8: bool,
) -> str:
    """The state file TensorFlow writes for these values (as update_checkpoint_state does:
    generate_checkpoint_state_proto, then text_format.MessageToString)."""
    from google.protobuf import text_format
    from tensorflow.python.checkpoint import checkpoint_management

    proto = checkpoint_management.generate_checkpoint_state_proto(
        "/model_dir",
        latest,
        all_model_checkpoint_paths=paths,
        all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=preserved,
    )
    return text_format.MessageToString(proto, as_one_line=one_line, as_utf8=as_utf8)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    PATHS,
    st.lists(PATHS, max_size=5),
    st.booleans(),
    st.one_of(st.none(), STAMPS),
    st.booleans(),
    st.booleans(),
    st.data(),
)
def test_what_tensorflow_writes_parses_back_and_prunes_as_tensorflow_reads_it(
    latest: str,
    paths: list[str],
    stamped: bool,
    preserved: float | None,
    one_line: bool,
    as_utf8: bool,
    data: st.DataObject,
) -> None:
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

    # TensorFlow appends the latest to the kept paths unless it is the last one already.
    listed = paths if paths[-1:] == [latest] else [*paths, latest]
    stamps = data.draw(st.lists(STAMPS, min_size=len(listed), max_size=len(listed)))
    text = written(latest, paths, stamps if stamped else None, preserved, one_line, as_utf8)
    parsed = parse_checkpoint_state(text)
    assert parsed.model_checkpoint_path == latest
    assert parsed.all_model_checkpoint_paths == tuple(listed)

    drop = data.draw(st.sets(st.sampled_from(listed)))
    pruned = text_format.Parse(prune_checkpoint_state(text, drop), CheckpointState())
    kept = [i for i, p in enumerate(listed) if p not in drop or p == latest]
    assert pruned.model_checkpoint_path == latest
    assert list(pruned.all_model_checkpoint_paths) == [listed[i] for i in kept]
    expected_stamps = [stamps[i] for i in kept] if stamped else []
    assert list(pruned.all_model_checkpoint_timestamps) == expected_stamps
    assert pruned.last_preserved_timestamp == (preserved or 0.0)


def test_a_one_line_state_file_resolves_as_tensorflow_resolves_it(tmp_path: Path) -> None:
    import tensorflow as tf

    for step in (1, 2):
        tf.train.Checkpoint(step=tf.Variable(step, dtype=tf.int64)).write(
            str(tmp_path / f"ckpt-{step}")
        )
    (tmp_path / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-2" all_model_checkpoint_paths: "ckpt-1" '
        'all_model_checkpoint_paths: "ckpt-2"\n'
    )
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-2")
    assert resolve_checkpoint(LocalStorage(), str(tmp_path), None).path == str(tmp_path / "ckpt-2")
    assert resolve_checkpoint(LocalStorage(), str(tmp_path), None, step=1).step == 1
