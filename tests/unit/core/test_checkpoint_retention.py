"""Checkpoint retention deletes only checkpoints of the model dir's own series, never the
state file's latest, unevaluated or protected ones, and prunes the state file to match: an
entry leaves it only when its checkpoint, where the entry resolves, is deleted or gone."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.checkpoint_retention import (
    CheckpointPlan,
    CheckpointPlanItem,
    ModelDirEntry,
    plan_checkpoint_retention,
)
from airflow_tf_export.core.checkpoints import (
    CheckpointState,
    checkpoint_prefix,
    checkpoint_series,
    parse_checkpoint_state,
    prune_checkpoint_state,
)

DATA = ".data-00000-of-00001"


def files(*names: str) -> list[ModelDirEntry]:
    return [ModelDirEntry(name) for name in names]


def tf_checkpoints(*steps: int, series: str = "ckpt", meta: bool = False) -> list[ModelDirEntry]:
    suffixes = (".index", DATA, *((".meta",) if meta else ()))
    return files(*(f"{series}-{step}{suffix}" for step in steps for suffix in suffixes))


def state(latest: str, *kept: str) -> CheckpointState:
    return CheckpointState(latest, (*kept, latest) if latest not in kept else kept)


def plan(entries: list[ModelDirEntry], **kwargs: Any) -> CheckpointPlan:
    arguments: dict[str, Any] = {"keep_newest": 1, "state": None, "newest_evaluated_step": None}
    return plan_checkpoint_retention(entries, **{**arguments, **kwargs})


def kept(result: CheckpointPlan) -> tuple[str, ...]:
    """The kept checkpoints' locations, by ascending step."""
    return tuple(i.prefix for i in result.items if i.keep)


def deleted(result: CheckpointPlan) -> tuple[str, ...]:
    """The deleted checkpoints' locations, by ascending step."""
    return tuple(i.prefix for i in result.items if not i.keep)


@pytest.mark.parametrize("keep_newest", [0, -1, 2.5, True, None])
def test_keep_newest_must_be_a_positive_integer(keep_newest: object) -> None:
    with pytest.raises(ValueError) as caught:
        plan(tf_checkpoints(1), keep_newest=keep_newest)
    assert str(caught.value) == f"keep_newest must be a positive integer, got {keep_newest!r}"


@pytest.mark.parametrize("evaluated", ["10", 1.5, True])
def test_newest_evaluated_step_must_be_an_integer(evaluated: object) -> None:
    with pytest.raises(
        ValueError, match=f"newest_evaluated_step must be an integer or None, got {evaluated!r}"
    ):
        plan(tf_checkpoints(1), newest_evaluated_step=evaluated)


def test_plan_keeps_newest_state_file_unevaluated_and_exported_and_explains() -> None:
    result = plan(
        tf_checkpoints(500, 100, 200, 300, 400),
        state=state("ckpt-300", "ckpt-100", "ckpt-200", "ckpt-300"),
        newest_evaluated_step=400,
        exported_prefixes=["/model/ckpt-100/"],
        keep_exported=True,
    )
    assert kept(result) == ("ckpt-100", "ckpt-300", "ckpt-500")
    assert deleted(result) == ("ckpt-200", "ckpt-400")
    assert result.state_drop == ("ckpt-200",)
    assert result.explain().splitlines() == [
        "series: ckpt (listed by the checkpoint state file)",
        "ckpt-100 keep exported: a committed version was exported from it",
        "ckpt-200 delete: evaluated, older than the 1 newest, not protected",
        "ckpt-300 keep state-file: the latest checkpoint in the state file",
        "ckpt-400 delete: evaluated, older than the 1 newest, not protected",
        "ckpt-500 keep newest, unevaluated: among the 1 newest; "
        "newer than the newest evaluated step 400",
        "checkpoint state file: remove ckpt-200 from its list",
    ]


def test_an_estimator_checkpoint_is_its_index_data_and_meta() -> None:
    result = plan(
        tf_checkpoints(100, 125, 150, series="model.ckpt", meta=True),
        state=state("model.ckpt-150", "model.ckpt-100", "model.ckpt-125"),
        newest_evaluated_step=150,
    )
    assert result.series == ("model.ckpt",)
    (deleted_100, deleted_125) = [i for i in result.items if not i.keep]
    assert sorted(deleted_100.files) == [
        "model.ckpt-100.data-00000-of-00001",
        "model.ckpt-100.index",
        "model.ckpt-100.meta",
    ]
    assert result.delete_batches == (
        ("model.ckpt-100.index", "model.ckpt-125.index"),
        (
            "model.ckpt-100.data-00000-of-00001",
            "model.ckpt-100.meta",
            "model.ckpt-125.data-00000-of-00001",
            "model.ckpt-125.meta",
        ),
    )
    assert deleted_125.step == 125
    assert result.state_drop == ("model.ckpt-100", "model.ckpt-125")


def test_other_series_and_other_files_are_kept_and_reported() -> None:
    entries = [
        *tf_checkpoints(100, 150, series="model.ckpt", meta=True),
        *files(
            "checkpoint",
            "report-5.index",
            "notes-7.data-00000-of-00001",
            "pretrained-1.index",
            "pretrained-1" + DATA,
            "graph.pbtxt",
            "events.out.tfevents.1.host",
            "model.ckpt-100.index.tmp",
            "ckpt-3.weights.h5",
        ),
        ModelDirEntry("export", is_dir=True),
        ModelDirEntry("eval", is_dir=True),
    ]
    result = plan(
        entries, state=state("model.ckpt-150", "model.ckpt-100"), newest_evaluated_step=150
    )
    assert deleted(result) == ("model.ckpt-100",)
    series = "not a checkpoint of this model dir's series model.ckpt"
    not_a_file = "not a checkpoint file of this model dir's series model.ckpt"
    directory = "a directory: checkpoint retention deletes checkpoint files only"
    weights = "a Keras weights file: checkpoint retention deletes TF checkpoints only"
    assert {o.name: o.reason for o in result.others} == {
        "checkpoint": "the checkpoint state file",
        "ckpt-3.weights.h5": weights,
        "eval": directory,
        "events.out.tfevents.1.host": not_a_file,
        "export": directory,
        "graph.pbtxt": not_a_file,
        "model.ckpt-100.index.tmp": not_a_file,
        "notes-7.data-00000-of-00001": series,
        "pretrained-1.data-00000-of-00001": series,
        "pretrained-1.index": series,
        "report-5.index": series,
    }
    assert "report-5.index kept: not a checkpoint of this model dir's series model.ckpt" in (
        result.explain().splitlines()
    )


def test_without_a_state_file_or_a_named_series_nothing_is_deleted() -> None:
    result = plan(tf_checkpoints(1, 2, 3), newest_evaluated_step=3)
    assert result.items == ()
    assert result.series == ()
    why = "no checkpoint state file and no checkpoint_prefix: no checkpoint is deleted"
    assert result.series_source == why
    assert {o.reason for o in result.others} == {f"no series to delete from ({why})"}
    assert result.explain().splitlines()[0] == f"series: none ({why})"


def test_a_state_file_naming_no_stepped_checkpoint_owns_no_series() -> None:
    result = plan(tf_checkpoints(1, 2), state=state("final"), newest_evaluated_step=2)
    assert deleted(result) == ()
    assert "names no checkpoint ending in -<step>" in result.series_source


def test_a_named_series_replaces_the_state_files() -> None:
    entries = tf_checkpoints(1, 2, 3) + tf_checkpoints(1, 2, 3, series="model.ckpt")
    result = plan(
        entries,
        state=state("model.ckpt-3", "model.ckpt-1", "model.ckpt-2"),
        checkpoint_prefix="ckpt",
        newest_evaluated_step=3,
    )
    assert result.series == ("ckpt",)
    assert result.series_source == "named by checkpoint_prefix"
    assert deleted(result) == ("ckpt-1", "ckpt-2")
    # The state file's entries are of another series: none is pruned.
    assert result.state_drop == ()


def test_entries_of_checkpoints_that_are_gone_are_pruned_too() -> None:
    """A run that crashed after deleting files and before rewriting the state file left
    entries naming checkpoints that no longer exist: the next run prunes them."""
    result = plan(
        tf_checkpoints(3),
        state=state("ckpt-3", "/old/place/ckpt-1", "ckpt-2"),
        newest_evaluated_step=3,
    )
    assert result.items == (
        CheckpointPlanItem(
            "ckpt-3",
            3,
            ("ckpt-3.data-00000-of-00001", "ckpt-3.index"),
            True,
            "newest, state-file",
            "among the 1 newest; the latest checkpoint in the state file",
        ),
    )
    assert result.state_drop == ("/old/place/ckpt-1", "ckpt-2")


def test_leftover_files_of_a_deleted_checkpoint_are_deleted_with_the_series() -> None:
    result = plan(
        files(
            "model.ckpt-1" + DATA,
            "model.ckpt-1.meta",
            *[e.name for e in tf_checkpoints(2, series="model.ckpt")],
        ),
        state=state("model.ckpt-2"),
        newest_evaluated_step=2,
    )
    assert result.delete_batches == ((), ("model.ckpt-1.data-00000-of-00001", "model.ckpt-1.meta"))


def test_nothing_evaluated_keeps_everything() -> None:
    result = plan(tf_checkpoints(1, 2, 3), state=state("ckpt-3"))
    assert deleted(result) == ()
    assert result.items[0].rule == "unevaluated"
    assert result.items[0].reason == "no checkpoint has been evaluated yet"


@pytest.mark.parametrize(
    "latest",
    ["ckpt-1", "./ckpt-1", "gs://bucket/run/ckpt-1", "/model/ckpt-1/", "../../other/ckpt-1"],
)
def test_recorded_paths_outside_the_model_dir_name_checkpoints_by_name(latest: str) -> None:
    """The state file records paths relative, absolute, at an old location (a dir copied
    from local disk to GCS) or of another dir: outside the model dir only the checkpoint's
    name counts; an exported checkpoint is protected by its name."""
    result = plan(
        tf_checkpoints(1, 2, 3),
        state=state(latest, "ckpt-2"),
        newest_evaluated_step=3,
        exported_prefixes=["/home/me/run/ckpt-2"],
        keep_exported=True,
    )
    assert kept(result) == ("ckpt-1", "ckpt-2", "ckpt-3")


def test_exported_checkpoints_are_deletable_unless_keep_exported() -> None:
    result = plan(
        tf_checkpoints(1, 2, 3),
        state=state("ckpt-3"),
        newest_evaluated_step=3,
        exported_prefixes=["/model/ckpt-1"],
    )
    assert deleted(result) == ("ckpt-1", "ckpt-2")


def test_a_series_in_a_sub_directory_is_thinned_out_where_the_state_file_puts_it() -> None:
    """CheckpointManager(checkpoint_name="ckpts/ckpt") records `ckpts/ckpt-<step>`: those
    are the series. A top-level `ckpt-*` of the same names is another series, kept."""
    text = (
        'model_checkpoint_path: "ckpts/ckpt-7"\n'
        'all_model_checkpoint_paths: "ckpts/ckpt-5"\n'
        'all_model_checkpoint_paths: "ckpts/ckpt-6"\n'
        'all_model_checkpoint_paths: "ckpts/ckpt-7"\n'
    )
    entries = [
        *files(
            *(f"ckpts/ckpt-{step}{suffix}" for step in (5, 6, 7) for suffix in (".index", DATA))
        ),
        *tf_checkpoints(5, 6),
        ModelDirEntry("ckpts", is_dir=True),
        ModelDirEntry("checkpoint"),
        ModelDirEntry("ckpts/notes.txt"),
    ]
    result = plan(entries, state=parse_checkpoint_state(text), newest_evaluated_step=7)
    assert result.series == ("ckpts/ckpt",)
    assert deleted(result) == ("ckpts/ckpt-5", "ckpts/ckpt-6")
    assert kept(result) == ("ckpts/ckpt-7",)
    assert result.delete_batches == (
        ("ckpts/ckpt-5.index", "ckpts/ckpt-6.index"),
        ("ckpts/ckpt-5" + DATA, "ckpts/ckpt-6" + DATA),
    )
    assert result.state_drop == ("ckpts/ckpt-5", "ckpts/ckpt-6")
    others = {o.name: o.reason for o in result.others}
    assert others["ckpt-5.index"] == "not a checkpoint of this model dir's series ckpts/ckpt"
    assert others["ckpts/notes.txt"] == (
        "not a checkpoint file of this model dir's series ckpts/ckpt"
    )
    assert prune_checkpoint_state(text, result.state_drop) == (
        'model_checkpoint_path: "ckpts/ckpt-7"\nall_model_checkpoint_paths: "ckpts/ckpt-7"\n'
    )


def test_a_named_series_never_prunes_sub_directory_entries_whose_files_exist() -> None:
    """checkpoint_prefix="ckpt" owns the top-level `ckpt-*` only: the state file's
    `ckpts/ckpt-*` entries stay listed, and their files are reported, never deleted."""
    state_ = parse_checkpoint_state(
        'model_checkpoint_path: "ckpts/ckpt-7"\nall_model_checkpoint_paths: "ckpts/ckpt-5"\n'
    )
    entries = files(
        "ckpts/ckpt-5.index", "ckpts/ckpt-7.index", *(e.name for e in tf_checkpoints(1, 2))
    )
    result = plan(entries, state=state_, checkpoint_prefix="ckpt", newest_evaluated_step=7)
    assert deleted(result) == ("ckpt-1",)
    assert result.state_drop == ()
    assert {o.name for o in result.others} == {"ckpts/ckpt-5.index", "ckpts/ckpt-7.index"}


@pytest.mark.parametrize(
    ("recorded", "model_dir", "location"),
    [
        ("ckpts/ckpt-5", "", "ckpts/ckpt-5"),
        ("./ckpts/./ckpt-5", "", "ckpts/ckpt-5"),
        ("/models/run/ckpts/ckpt-5", "/models/run", "ckpts/ckpt-5"),
        ("gs://b/run/ckpts/ckpt-5", "gs://b/run/", "ckpts/ckpt-5"),
        ("/old/run/ckpts/ckpt-5", "gs://b/run", "ckpt-5"),
        ("../other/ckpts/ckpt-5", "/models/run", "ckpt-5"),
    ],
)
def test_sub_directory_entries_resolve_as_written_inside_the_model_dir_else_by_name(
    recorded: str, model_dir: str, location: str
) -> None:
    state_ = parse_checkpoint_state(f'model_checkpoint_path: "{recorded}"\n', model_dir=model_dir)
    entries = files("ckpt-5.index", "ckpts/ckpt-5.index", "ckpt-4.index", "ckpts/ckpt-4.index")
    result = plan(entries, state=state_, newest_evaluated_step=5)
    series = location.removesuffix("-5")
    assert result.series == (series,)
    assert kept(result) == (location,)
    assert deleted(result) == (f"{series}-4",)


# A model dir as a strategy: checkpoints of the series (maybe in a sub-directory) with some of
# their files (a crash may have left only some), checkpoint-shaped files of other series
# (among them the top-level namesakes of a sub-directory series), other files and dirs, and
# maybe a state file whose entries are recorded in any style: relative, `./`, absolute under
# the model dir, at an old place, on another backend, or leaving the model dir.
MODEL_DIR = "/models/run"
SERIES = ("model.ckpt", "ckpt", "ckpts/ckpt")
OTHERS = ("pretrained", "report", "notes", "ckpt")
SUFFIXES = (".index", DATA, ".meta")
STYLES = ("", "./", f"{MODEL_DIR}/", "/old/run/", "gs://b/run/", "../other/")


def resolved(recorded: str) -> str:
    """Where the documented rule puts a recorded path of the styles above (spelled out
    here independently of core.checkpoints.checkpoint_location)."""
    if recorded.startswith(f"{MODEL_DIR}/"):
        return recorded[len(MODEL_DIR) + 1 :]
    if recorded.startswith(("/", "gs://", "../")):
        return recorded.rsplit("/", 1)[-1]
    return recorded.removeprefix("./")


@st.composite
def model_dirs(draw: st.DrawFn) -> tuple[list[ModelDirEntry], str | None, str | None]:
    series = draw(st.sampled_from(SERIES))
    steps = draw(st.lists(st.integers(0, 60), unique=True, max_size=12))
    names = [
        f"{series}-{step}{suffix}"
        for step in steps
        for suffix in draw(st.sets(st.sampled_from(SUFFIXES), min_size=1))
    ]
    names += [
        f"{other}-{step}{suffix}"
        for other, step, suffix in draw(
            st.lists(
                st.tuples(st.sampled_from(OTHERS), st.integers(0, 60), st.sampled_from(SUFFIXES))
            )
        )
    ]
    names += draw(
        st.sets(
            st.sampled_from(
                ["graph.pbtxt", "events.out.tfevents.1.h", "ckpt-4.weights.h5", "ckpts/notes"]
            )
        )
    )
    entries = [ModelDirEntry(n) for n in dict.fromkeys(names)]
    entries += [
        ModelDirEntry(d, is_dir=True)
        for d in draw(st.sets(st.sampled_from(["eval", "export", "ckpts"])))
    ]
    text = None
    if draw(st.booleans()):
        listed = draw(st.lists(st.integers(0, 60), min_size=1, max_size=6, unique=True))
        listed_names = [f"{series}-{s}" for s in sorted(listed)]
        listed_names += draw(
            st.lists(st.sampled_from(["pretrained-1", "report-5"]), max_size=2, unique=True)
        )
        recorded = [draw(st.sampled_from(STYLES)) + name for name in listed_names]
        latest = recorded[len(listed) - 1]
        text = f'model_checkpoint_path: "{latest}"\n'
        text += "".join(f'all_model_checkpoint_paths: "{p}"\n' for p in recorded)
        if draw(st.booleans()):
            text += "".join(
                f"all_model_checkpoint_timestamps: {1.7e9 + i}\n" for i in range(len(recorded))
            )
            text += "last_preserved_timestamp: 1699999999.5\n"
        if draw(st.booleans()):
            text = " ".join(text.split("\n"))  # the same fields on one line
    prefix = draw(st.one_of(st.none(), st.sampled_from(SERIES[:2])))
    return entries, text, prefix


@given(model_dirs(), st.integers(1, 4), st.one_of(st.none(), st.integers(0, 60)))
def test_only_the_series_is_ever_deleted_and_the_state_file_matches_what_is_kept(
    model_dir: tuple[list[ModelDirEntry], str | None, str | None],
    keep_newest: int,
    evaluated: int | None,
) -> None:
    entries, text, prefix = model_dir
    parsed = None if text is None else parse_checkpoint_state(text, model_dir=MODEL_DIR)
    result = plan(
        entries,
        keep_newest=keep_newest,
        state=parsed,
        checkpoint_prefix=prefix,
        newest_evaluated_step=evaluated,
    )
    recorded = () if parsed is None else parsed.all_model_checkpoint_paths
    stepped = {checkpoint_series(resolved(p)) for p in recorded} - {None}
    owned = {prefix} if prefix else stepped
    assert set(result.series) == owned
    latest = None if parsed is None else resolved(parsed.model_checkpoint_path)
    index_files, other_files = result.delete_batches
    doomed = set(index_files + other_files)
    # Never a file outside the series, a directory, or the state file's latest checkpoint.
    directories = {e.name for e in entries if e.is_dir}
    for name in doomed:
        owner = checkpoint_prefix(name)
        assert owner is not None and checkpoint_series(owner) in owned
        assert name not in directories
        assert owner != latest
    if not owned:
        assert not doomed
    # Every entry is either one checkpoint's file or reported as kept; none is lost.
    planned = [f for i in result.items for f in i.files] + [o.name for o in result.others]
    assert sorted(planned) == sorted(e.name for e in entries)
    # `.index` files go first, and a deleted checkpoint loses all its files.
    assert all(f.endswith(".index") for f in index_files)
    assert not any(f.endswith(".index") for f in other_files)
    if text is None or parsed is None:
        assert result.state_drop == ()
        return
    # An entry leaves the state file exactly when it is not the latest, resolves to a
    # checkpoint of the series and that checkpoint is not kept: no entry whose checkpoint
    # still exists where it resolves is ever dropped.
    remaining = {e.name for e in entries} - doomed
    kept_locations = set(kept(result))
    for path in dict.fromkeys(recorded):
        where = resolved(path)
        dropped = path in result.state_drop
        assert dropped == (
            where != latest and checkpoint_series(where) in owned and where not in kept_locations
        ), path
        if dropped:
            assert not any(checkpoint_prefix(name) == where for name in remaining), path
    # The pruned state file still parses, keeps its latest, and lists exactly the rest.
    pruned = parse_checkpoint_state(prune_checkpoint_state(text, result.state_drop))
    assert pruned.model_checkpoint_path == parsed.model_checkpoint_path
    assert pruned.all_model_checkpoint_paths == tuple(
        p for p in recorded if p not in result.state_drop
    )
