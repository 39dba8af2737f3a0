"""The `checkpoint` state file and checkpoint names, parsed without TensorFlow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.checkpoints import (
    CheckpointState,
    CheckpointStateError,
    checkpoint_prefix,
    checkpoint_step,
    parse_checkpoint_state,
)

TF_WRITTEN = """model_checkpoint_path: "ckpt-30"
all_model_checkpoint_paths: "ckpt-10"
all_model_checkpoint_paths: "ckpt-20"
all_model_checkpoint_paths: "ckpt-30"
all_model_checkpoint_timestamps: 1795200000.123
all_model_checkpoint_timestamps: 1795200001.5
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
