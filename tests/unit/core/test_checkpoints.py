"""The `checkpoint` state file and checkpoint names, parsed without TensorFlow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.checkpoints import (
    CheckpointState,
    CheckpointStateError,
    checkpoint_prefix,
    checkpoint_series,
    checkpoint_step,
    parse_checkpoint_state,
    prune_checkpoint_state,
)

TF_WRITTEN = """model_checkpoint_path: "ckpt-30"
all_model_checkpoint_paths: "ckpt-10"
all_model_checkpoint_paths: "ckpt-20"
all_model_checkpoint_paths: "ckpt-30"
all_model_checkpoint_timestamps: 1795200000.123
all_model_checkpoint_timestamps: 1795200001.5
all_model_checkpoint_timestamps: 1795200002.25
last_preserved_timestamp: 1795199999.0
"""


def test_parse_a_state_file_as_tf_writes_it() -> None:
    assert parse_checkpoint_state(TF_WRITTEN) == CheckpointState(
        model_checkpoint_path="ckpt-30",
        all_model_checkpoint_paths=("ckpt-10", "ckpt-20", "ckpt-30"),
    )


def test_latest_is_added_to_the_kept_list_and_blank_lines_are_ignored() -> None:
    state = parse_checkpoint_state('\nmodel_checkpoint_path: "gs://b/m/model.ckpt-5"\n\n')
    assert state.all_model_checkpoint_paths == ("gs://b/m/model.ckpt-5",)


def test_escapes_are_undone() -> None:
    state = parse_checkpoint_state('model_checkpoint_path: "dir \\"a\\"\\\\ckpt-1"')
    assert state.model_checkpoint_path == 'dir "a"\\ckpt-1'


@given(
    st.lists(
        st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1),
        min_size=1,
        max_size=5,
    )
)
def test_round_trip_of_quoted_paths(paths: list[str]) -> None:
    def quote(path: str) -> str:
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'

    text = f"model_checkpoint_path: {quote(paths[-1])}\n" + "".join(
        f"all_model_checkpoint_paths: {quote(p)}\n" for p in paths
    )
    state = parse_checkpoint_state(text)
    assert state.model_checkpoint_path == paths[-1]
    assert state.all_model_checkpoint_paths == tuple(paths)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "run/checkpoint names no model_checkpoint_path"),
        ('all_model_checkpoint_paths: "ckpt-1"', "run/checkpoint names no model_checkpoint_path"),
        ('model_checkpoint_path: ""', "run/checkpoint names no model_checkpoint_path"),
        (
            'model_checkpoint_path: "ckpt-1"\ngarbage here',
            "run/checkpoint line 2 is not a proto field: 'garbage here'",
        ),
        ("model_checkpoint_path: ckpt-1", "run/checkpoint line 1 is not a proto field"),
    ],
)
def test_bad_state_files_name_the_source_and_line(text: str, message: str) -> None:
    with pytest.raises(CheckpointStateError) as caught:
        parse_checkpoint_state(text, source="run/checkpoint")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("prefix", "step"),
    [
        ("ckpt-1200", 1200),
        ("/m/model.ckpt-7", 7),
        ("gs://b/m/ckpt-3/", 3),
        ("ckpt-12-34", 34),
        ("ckpt", None),
        ("ckpt-", None),
        ("ckpt-1/other", None),
        ("ckpt-1.index", None),
    ],
)
def test_checkpoint_step(prefix: str, step: int | None) -> None:
    assert checkpoint_step(prefix) == step


@pytest.mark.parametrize(
    ("filename", "prefix"),
    [
        ("ckpt-5.index", "ckpt-5"),
        ("ckpt-5.data-00000-of-00001", "ckpt-5"),
        ("model.ckpt-100.data-00001-of-00002", "model.ckpt-100"),
        ("model.ckpt-100.meta", "model.ckpt-100"),
        ("model.ckpt-100.meta.tmp5f2c", None),
        ("ckpt-5.index.bak", None),
        ("ckpt-5.data-00000", None),
        ("ckpt-5.weights.h5", None),
        ("checkpoint", None),
        ("ckpt.index", None),
        ("events.out.tfevents.1.host", None),
    ],
)
def test_checkpoint_prefix(filename: str, prefix: str | None) -> None:
    assert checkpoint_prefix(filename) == prefix


@given(st.integers(0, 10**12), st.sampled_from(["ckpt", "model.ckpt", "/a/b/ckpt"]))
def test_step_and_prefix_agree(step: int, stem: str) -> None:
    prefix = f"{stem}-{step}"
    assert checkpoint_step(prefix) == step
    assert checkpoint_prefix(f"{prefix}.index") == prefix
    assert checkpoint_prefix(f"{prefix}.data-00000-of-00001") == prefix
    assert checkpoint_prefix(f"{prefix}.meta") == prefix
    assert checkpoint_series(prefix) == stem.rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    ("path", "series"),
    [
        ("model.ckpt-150", "model.ckpt"),
        ("/work/run/ckpt-3", "ckpt"),
        ("gs://b/run/pretrained-1", "pretrained"),
        ("ckpt-12-34", "ckpt-12"),
        ("final", None),
        ("-5", None),
        ("ckpt-5.weights.h5", None),
    ],
)
def test_checkpoint_series(path: str, series: str | None) -> None:
    assert checkpoint_series(path) == series


def test_state_series_are_those_its_entries_name() -> None:
    state = parse_checkpoint_state(
        'model_checkpoint_path: "/r/model.ckpt-3"\n'
        'all_model_checkpoint_paths: "warm-1"\n'
        'all_model_checkpoint_paths: "final"\n'
    )
    assert state.series == ("model.ckpt", "warm")


def test_pruning_a_tf_written_state_file() -> None:
    text = (
        'model_checkpoint_path: "/abs/run/ckpt-30"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-10"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-20"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-30"\n'
        "all_model_checkpoint_timestamps: 1795200000.1\n"
        "all_model_checkpoint_timestamps: 1795200001.2\n"
        "all_model_checkpoint_timestamps: 1795200002.3\n"
        "last_preserved_timestamp: 1795199999.0\n"
    )
    assert prune_checkpoint_state(text, ["ckpt-20", "ckpt-30", "ckpt-99"]) == (
        'model_checkpoint_path: "/abs/run/ckpt-30"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-10"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-30"\n'
        "all_model_checkpoint_timestamps: 1795200000.1\n"
        "all_model_checkpoint_timestamps: 1795200002.3\n"
        "last_preserved_timestamp: 1795199999.0\n"
    )
    assert prune_checkpoint_state(text, []) == text
    assert prune_checkpoint_state(text, ["ckpt-30"]) == text


def test_timestamps_that_are_not_one_per_path_cannot_be_pruned() -> None:
    two_for_three = TF_WRITTEN.replace("all_model_checkpoint_timestamps: 1795200002.25\n", "")
    with pytest.raises(CheckpointStateError) as caught:
        prune_checkpoint_state(two_for_three, ["ckpt-10"], source="run/checkpoint")
    assert str(caught.value) == (
        "run/checkpoint holds 2 all_model_checkpoint_timestamps for 3 "
        "all_model_checkpoint_paths; TensorFlow writes one per path"
    )


@given(
    st.lists(st.integers(0, 100), min_size=1, max_size=8, unique=True),
    st.sets(st.integers(0, 100)),
    st.booleans(),
    st.sampled_from(["", "/abs/run/", "gs://b/run/"]),
)
def test_pruning_lists_exactly_the_rest_with_their_own_timestamps(
    steps: list[int], drop: set[int], stamped: bool, directory: str
) -> None:
    text = f'model_checkpoint_path: "{directory}ckpt-{steps[-1]}"\n'
    text += "".join(f'all_model_checkpoint_paths: "{directory}ckpt-{s}"\n' for s in steps)
    if stamped:
        text += "".join(f"all_model_checkpoint_timestamps: {s}.5\n" for s in steps)
    pruned = prune_checkpoint_state(text, [f"ckpt-{s}" for s in drop])
    rest = [s for s in steps if s not in drop or s == steps[-1]]
    state = parse_checkpoint_state(pruned)
    assert state.model_checkpoint_path == f"{directory}ckpt-{steps[-1]}"
    assert state.all_model_checkpoint_paths == tuple(f"{directory}ckpt-{s}" for s in rest)
    stamps = [line.split(": ")[1] for line in pruned.splitlines() if "timestamps" in line]
    assert stamps == ([f"{s}.5" for s in rest] if stamped else [])
