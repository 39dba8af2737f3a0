"""The one checkpoint resolver, on local disk: state file, kept step, moved model dirs,
recorded paths found by name in the model dir (never where they point), and bad input naming
the path. The GCS side runs in tests/integration/storage.

Resolution reads only the state file and file names (no TensorFlow): the checkpoint files
here are empty stand-ins named as tf.train.CheckpointManager names them; the savedmodel and
operator integration tests resolve checkpoints written by TF itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_tf_export.storage.checkpoints import (
    CheckpointError,
    ResolvedCheckpoint,
    checkpoint_files,
    list_checkpoints,
    recorded_checkpoint,
    resolve_checkpoint,
)
from airflow_tf_export.storage.local import LocalStorage

STATE = """model_checkpoint_path: "{d}ckpt-60"
all_model_checkpoint_paths: "{d}ckpt-20"
all_model_checkpoint_paths: "{d}ckpt-40"
all_model_checkpoint_paths: "{d}ckpt-60"
"""


def checkpoint_dir(root: Path, state: str, steps: tuple[int, ...] = (20, 40, 60)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for step in steps:
        (root / f"ckpt-{step}.index").write_bytes(b"")
        (root / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"")
    (root / "checkpoint").write_text(state)
    return root


@pytest.mark.parametrize("recorded_dir", ["", "/old/location/of/model/"], ids=["relative", "moved"])
def test_latest_or_the_kept_checkpoint_of_the_eval_step(tmp_path: Path, recorded_dir: str) -> None:
    model = checkpoint_dir(tmp_path / "model", STATE.format(d=recorded_dir))
    storage = LocalStorage()
    latest = resolve_checkpoint(storage, str(model), None)
    assert latest == ResolvedCheckpoint(str(model / "ckpt-60"), 60)
    assert resolve_checkpoint(storage, str(model), None, step=40).path == str(model / "ckpt-40")
    assert resolve_checkpoint(storage, str(model), "ckpt-20").step == 20
    # A step the state file does not list falls back to the latest (Best then names both).
    assert resolve_checkpoint(storage, str(model), None, step=50).step == 60


@pytest.mark.parametrize("outside", ["absolute", "dot-dot"])
def test_a_state_file_entry_pointing_at_another_model_dir_uses_this_ones_checkpoint(
    tmp_path: Path, outside: str
) -> None:
    elsewhere = checkpoint_dir(tmp_path / "other", "", steps=(60,))
    recorded = f"{elsewhere}/ckpt-60" if outside == "absolute" else "../other/ckpt-60"
    model = checkpoint_dir(tmp_path / "model", f'model_checkpoint_path: "{recorded}"\n')
    assert recorded_checkpoint(LocalStorage(), str(model)) == str(model / "ckpt-60")


@pytest.mark.parametrize("outside", ["absolute", "dot-dot"])
def test_a_state_file_entry_whose_name_is_not_in_the_model_dir_is_an_error(
    tmp_path: Path, outside: str
) -> None:
    """The other model dir has the checkpoint; it is never used silently."""
    elsewhere = checkpoint_dir(tmp_path / "other", "", steps=(70,))
    recorded = f"{elsewhere}/ckpt-70" if outside == "absolute" else "../other/ckpt-70"
    model = checkpoint_dir(tmp_path / "model", f'model_checkpoint_path: "{recorded}"\n')
    with pytest.raises(CheckpointError) as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert str(raised.value) == (
        f"the state file {model / 'checkpoint'} records checkpoint {recorded!r}; a recorded "
        "checkpoint is looked up as written when inside the model dir, else by name, in the "
        f"model dir {model}, which holds no 'ckpt-70' ({model / 'ckpt-70.index'} does not "
        "exist); it holds the checkpoints ckpt-20, ckpt-40, ckpt-60"
    )
    assert raised.value.path == recorded


@pytest.mark.parametrize(
    "recorded",
    [
        "/old/location/of/model/ckpt-40",
        "file:///old/location/of/model/ckpt-40",
        "gs://bucket/run/ckpt-40",
        "ckpt-40",
        "../elsewhere/ckpt-40",
    ],
)
def test_an_eval_results_checkpoint_is_found_by_name(tmp_path: Path, recorded: str) -> None:
    model = checkpoint_dir(tmp_path / "model", STATE.format(d=""))
    resolved = resolve_checkpoint(LocalStorage(), str(model), recorded_path=recorded, step=40)
    assert resolved == ResolvedCheckpoint(str(model / "ckpt-40"), 40)


def test_an_eval_results_checkpoint_that_is_not_in_the_model_dir_is_named(
    tmp_path: Path,
) -> None:
    model = checkpoint_dir(tmp_path / "model", STATE.format(d=""), steps=(60,))
    with pytest.raises(CheckpointError) as raised:
        resolve_checkpoint(LocalStorage(), str(model), recorded_path="/old/run/ckpt-40", step=40)
    message = str(raised.value)
    assert message.startswith("the eval result records checkpoint '/old/run/ckpt-40'; ")
    assert f"model dir {model}, which holds no 'ckpt-40'" in message
    assert message.endswith("it holds the checkpoints ckpt-60")
    assert raised.value.path == "/old/run/ckpt-40"
    with pytest.raises(CheckpointError, match="names no checkpoint file"):
        resolve_checkpoint(LocalStorage(), str(model), recorded_path="/old/run/..")


def test_an_error_in_an_absent_model_dir_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="it holds nothing: it does not exist"):
        resolve_checkpoint(LocalStorage(), str(tmp_path / "gone"), recorded_path="ckpt-1")


def test_an_explicit_checkpoint_path_is_used_where_it_points(tmp_path: Path) -> None:
    """The user's own checkpoint_path wins over the eval result's, even in another dir."""
    elsewhere = checkpoint_dir(tmp_path / "other", "", steps=(40,))
    model = checkpoint_dir(tmp_path / "model", STATE.format(d=""))
    chosen = str(elsewhere / "ckpt-40")
    resolved = resolve_checkpoint(LocalStorage(), str(model), chosen, recorded_path="ckpt-20")
    assert resolved == ResolvedCheckpoint(chosen, 40)


def test_listing_gives_the_checkpoints_of_the_state_files_series(tmp_path: Path) -> None:
    model = checkpoint_dir(tmp_path / "model", STATE.format(d="/old/"), steps=(20, 40))
    for name in ("ckpt-40.meta", "pretrained-1.index", "report-5.index", "ckpt-40.index.tmp"):
        (model / name).write_bytes(b"")
    listed = list_checkpoints(LocalStorage(), str(model))
    assert [(c.uri, c.files) for c in listed] == [
        (str(model / "ckpt-20"), ("ckpt-20.data-00000-of-00001", "ckpt-20.index")),
        (
            str(model / "ckpt-40"),
            ("ckpt-40.data-00000-of-00001", "ckpt-40.index", "ckpt-40.meta"),
        ),
    ]
    (model / "checkpoint").unlink()
    without_state = [c.uri for c in list_checkpoints(LocalStorage(), str(model))]
    assert without_state == [
        str(model / "pretrained-1"),
        str(model / "report-5"),
        str(model / "ckpt-20"),
        str(model / "ckpt-40"),
    ]


def test_the_files_of_a_checkpoint_are_those_a_restore_reads(tmp_path: Path) -> None:
    """A TF1 Saver's `.meta` graph is never read (the graphs are rebuilt), so an export from
    GCS does not download it."""
    model = checkpoint_dir(tmp_path / "model", STATE.format(d=""), steps=(20, 40))
    for name in ("ckpt-40.meta", "ckpt-40.data-00001-of-00002", "ckpt-400.index"):
        (model / name).write_bytes(b"")
    parent, names = checkpoint_files(LocalStorage(), str(model / "ckpt-40"))
    assert (parent, sorted(names)) == (
        str(model),
        ["ckpt-40.data-00000-of-00001", "ckpt-40.data-00001-of-00002", "ckpt-40.index"],
    )


def test_a_state_file_copied_from_another_backend_finds_its_checkpoint_by_name(
    tmp_path: Path,
) -> None:
    model = checkpoint_dir(tmp_path, 'model_checkpoint_path: "gs://bucket/run/ckpt-40"\n')
    assert resolve_checkpoint(LocalStorage(), str(model), None).path == str(model / "ckpt-40")


def test_an_explicit_checkpoint_path_wins(tmp_path: Path) -> None:
    model = checkpoint_dir(tmp_path, STATE.format(d=""))
    chosen = str(model / "ckpt-20")
    assert resolve_checkpoint(LocalStorage(), str(model), chosen).path == chosen


def test_no_state_file_names_the_model_dir_and_the_state_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path}") as raised:
        resolve_checkpoint(LocalStorage(), str(tmp_path), None)
    assert str(tmp_path / "checkpoint") in str(raised.value)
    assert raised.value.path == str(tmp_path)


def test_a_deleted_latest_checkpoint_is_named_with_where_it_was_looked_for(
    tmp_path: Path,
) -> None:
    model = checkpoint_dir(tmp_path, STATE.format(d="/old/"), steps=(20, 40))
    with pytest.raises(CheckpointError, match="records checkpoint '/old/ckpt-60'") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert f"{model / 'ckpt-60.index'} does not exist" in str(raised.value)
    assert raised.value.path == "/old/ckpt-60"


def test_a_missing_explicit_checkpoint_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "ckpt-42")
    with pytest.raises(CheckpointError, match="not found") as raised:
        resolve_checkpoint(LocalStorage(), str(tmp_path), missing)
    assert repr(missing) in str(raised.value)
    assert raised.value.path == missing


def test_the_checkpoint_name_must_end_with_its_global_step(tmp_path: Path) -> None:
    model = checkpoint_dir(tmp_path / "model", 'model_checkpoint_path: "final"\n')
    (model / "final.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match="does not end with its global step") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert raised.value.path == str(model / "final")
    # Without the step requirement the recorded checkpoint is still found.
    assert recorded_checkpoint(LocalStorage(), str(model)) == str(model / "final")


@pytest.mark.parametrize(
    "state",
    ["this is not a proto\n", 'all_model_checkpoint_paths: "ckpt-20"\n', "\udcff"],
    ids=["not-a-proto", "no-latest", "not-utf8"],
)
def test_an_unreadable_state_file_is_named(tmp_path: Path, state: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "checkpoint").write_bytes(state.encode("utf-8", "surrogateescape"))
    with pytest.raises(CheckpointError, match="cannot read the checkpoint state file") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert raised.value.path == str(model / "checkpoint")
    assert str(model / "checkpoint") in str(raised.value)


def test_bad_input_is_a_value_error_so_operators_fail_without_retrying(tmp_path: Path) -> None:
    assert issubclass(CheckpointError, ValueError)
    with pytest.raises(ValueError, match="no checkpoint in"):
        resolve_checkpoint(LocalStorage(), str(tmp_path), None)


SUB_STATE = """model_checkpoint_path: "ckpts/ckpt-60"
all_model_checkpoint_paths: "ckpts/ckpt-40"
all_model_checkpoint_paths: "ckpts/ckpt-60"
"""


def sub_dir_model(root: Path) -> Path:
    """A model dir as CheckpointManager(checkpoint_name="ckpts/ckpt") leaves it, with
    top-level namesakes of another series."""
    checkpoint_dir(root / "ckpts", "", steps=(20, 40, 60))
    (root / "ckpts" / "checkpoint").unlink()
    checkpoint_dir(root, SUB_STATE, steps=(40,))
    return root


def test_a_relative_sub_directory_entry_resolves_as_written(tmp_path: Path) -> None:
    model = sub_dir_model(tmp_path / "model")
    storage = LocalStorage()
    latest = resolve_checkpoint(storage, str(model), None)
    assert latest == ResolvedCheckpoint(str(model / "ckpts" / "ckpt-60"), 60)
    kept = resolve_checkpoint(storage, str(model), None, step=40)
    assert kept.path == str(model / "ckpts" / "ckpt-40")
    listed = [c.uri for c in list_checkpoints(storage, str(model))]
    assert listed == [str(model / "ckpts" / f"ckpt-{s}") for s in (20, 40, 60)]


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ("ckpts/ckpt-40", "ckpts/ckpt-40"),
        ("{model}/ckpts/ckpt-40", "ckpts/ckpt-40"),
        ("/old/place/ckpts/ckpt-40", "ckpt-40"),
        ("gs://bucket/run/ckpts/ckpt-40", "ckpt-40"),
        ("../other/ckpts/ckpt-40", "ckpt-40"),
    ],
)
def test_an_eval_results_sub_directory_checkpoint_inside_the_model_dir_is_used_as_written(
    tmp_path: Path, recorded: str, expected: str
) -> None:
    """Inside the model dir (relative, or absolute under it) as written; elsewhere (a copy's
    old place, another model dir) by name, directly in the model dir."""
    model = sub_dir_model(tmp_path / "model")
    resolved = resolve_checkpoint(
        LocalStorage(), str(model), recorded_path=recorded.format(model=model), step=40
    )
    assert resolved == ResolvedCheckpoint(str(model / expected), 40)


def test_a_missing_sub_directory_checkpoint_names_where_it_was_looked_for(
    tmp_path: Path,
) -> None:
    model = sub_dir_model(tmp_path / "model")
    (model / "checkpoint").write_text('model_checkpoint_path: "ckpts/ckpt-80"\n')
    with pytest.raises(CheckpointError) as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    message = str(raised.value)
    assert f"which holds no 'ckpts/ckpt-80' ({model / 'ckpts' / 'ckpt-80.index'}" in message
    assert message.endswith(f"{model / 'ckpts'} holds the checkpoints ckpt-20, ckpt-40, ckpt-60")


def test_a_state_file_on_one_line_resolves(tmp_path: Path) -> None:
    """A valid text proto TensorFlow reads, written on one line."""
    model = checkpoint_dir(tmp_path / "model", " ".join(STATE.format(d="").splitlines()))
    assert resolve_checkpoint(LocalStorage(), str(model), None).path == str(model / "ckpt-60")
