"""Checkpoint retention and checkpoint resolution on genuine Estimator model_dirs (made by
tf.estimator 2.15, tests/data/estimator), copied to local disk and to the GCS emulator.

Each copy also holds files that are not this model dir's checkpoints: another series'
checkpoint-shaped files (`report-5.index`, `notes-7.data-*`), a warm-start checkpoint
(`pretrained-1.*`, a real TF checkpoint), `graph.pbtxt` and a training event file. The
Estimator's eval events record each checkpoint at the absolute path where the generator's
model_dir was (`/work/main/tests/data/estimator/...`, which exists on the project machines):
a copy must use its own checkpoints, never those.

The task instance in the context is a stand-in carrying only the lineage fields, as in
test_operators_execute.py.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors
from gcs_fixtures import GenerationEnforcingProxy, emulator_client
from operator_support import ModelDir, copy_model_dir

from airflow_tf_export.core.checkpoint_retention import plan_checkpoint_retention
from airflow_tf_export.core.eval_wait import parse_eval_wait
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.eval_search import find_eval_result
from airflow_tf_export.operators.compare import CompareOperator
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.storage.checkpoint_cleanup import (
    CHANGED_CONCURRENTLY,
    apply_checkpoint_plan,
    plan_state_file,
    read_model_dir,
)
from airflow_tf_export.storage.local import LocalStorage

ESTIMATOR_DATA = Path(__file__).resolve().parents[2] / "data" / "estimator"
CKPT_FILES = (".data-00000-of-00001", ".index", ".meta")
FOREIGN = (
    "report-5.index",
    "notes-7.data-00000-of-00001",
    "pretrained-1.index",
    "pretrained-1.data-00000-of-00001",
    "graph.pbtxt",
    "events.out.tfevents.1796476000.vm",
)
NOT_OURS = "kept: not a checkpoint of this model dir's series model.ckpt"
NOT_A_FILE_OF_OURS = "kept: not a checkpoint file of this model dir's series model.ckpt"
RELATIVE_STATE = (
    'model_checkpoint_path: "model.ckpt-150"\n'
    'all_model_checkpoint_paths: "model.ckpt-100"\n'
    'all_model_checkpoint_paths: "model.ckpt-125"\n'
    'all_model_checkpoint_paths: "model.ckpt-150"\n'
)


def context() -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="task", try_number=1, map_index=-1)
    return {"ti": ti, "outlet_events": OutletEventAccessors()}


def files_of(*steps: int) -> set[str]:
    return {f"model.ckpt-{step}{suffix}" for step in steps for suffix in CKPT_FILES}


def estimator_source(tmp_path: Path, name: str) -> Path:
    """A local copy of the Estimator model_dir with the foreign files added."""
    source = tmp_path / "source" / name
    shutil.copytree(ESTIMATOR_DATA / name / "model_dir", source)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(source / f"model.ckpt-100{suffix}", source / f"pretrained-1{suffix}")
    (source / "report-5.index").write_text("quarterly report\n")
    (source / "notes-7.data-00000-of-00001").write_text("notes\n")
    (source / "graph.pbtxt").write_text('node { name: "global_step" }\n')
    (source / "events.out.tfevents.1796476000.vm").write_bytes(b"\x00" * 16)
    return source


@pytest.fixture(params=["local", "gcs"])
def estimator_model_dir(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], ModelDir]:
    """Copies an Estimator model_dir (with the foreign files) to local disk or GCS."""

    def copy(name: str) -> ModelDir:
        return copy_model_dir(request, estimator_source(tmp_path, name), tmp_path, monkeypatch)

    return copy


def names(model_dir: ModelDir, *parts: str) -> set[str]:
    return {e.name for e in model_dir.storage.list_dir(model_dir.join(*parts))}


def local_state_dir(model_dir: ModelDir, *checkpoints: str) -> Path:
    """The state file and the named checkpoints' files, downloaded for TensorFlow to read."""
    local = Path(tempfile.mkdtemp(prefix="state-"))
    wanted = ["checkpoint", *(n for c in checkpoints for n in files_of_name(c))]
    model_dir.storage.download_dir(model_dir.uri, local, wanted)
    return local


def files_of_name(checkpoint: str) -> list[str]:
    return [checkpoint + suffix for suffix in CKPT_FILES]


@pytest.mark.parametrize("model", ["linear_classifier", "custom_model_fn"])
def test_retention_deletes_whole_checkpoints_of_the_series_and_prunes_the_state_file(
    estimator_model_dir: Callable[[str], ModelDir], model: str
) -> None:
    import tensorflow as tf

    model_dir = estimator_model_dir(model)
    before = names(model_dir)
    exports_before = model_dir.storage.list_files(model_dir.join("export"))

    def retention(dry_run: bool = False) -> dict[str, Any]:
        operator = RetentionOperator(
            task_id="retention",
            model_dir=model_dir.uri,
            checkpoints_to_keep=1,
            dry_run=dry_run,
        )
        result: dict[str, Any] = operator.execute(context())["checkpoints"]
        return result

    planned = retention(dry_run=True)
    assert names(model_dir) == before
    assert planned["state_file"]["outcome"] == "planned"
    assert planned["state_file"]["remove"] == ["model.ckpt-100", "model.ckpt-125"]

    done = retention()
    assert done["series"] == ["model.ckpt"]
    assert [d["prefix"] for d in done["delete"]] == [
        model_dir.join("model.ckpt-100"),
        model_dir.join("model.ckpt-125"),
    ]
    assert sorted(done["delete"][0]["files"]) == sorted(files_of_name("model.ckpt-100"))
    assert [(k["step"], k["rule"]) for k in done["keep"]] == [(150, "newest, state-file")]
    # .index, .data and .meta went together; nothing else in the model dir was touched.
    assert names(model_dir) == before - files_of(100, 125)
    assert files_of(150) | set(FOREIGN) | {"checkpoint", "eval", "export"} == names(model_dir)
    assert model_dir.storage.list_files(model_dir.join("export")) == exports_before
    others = {o["name"]: o["reason"] for o in done["other"]}
    assert {n: others[n] for n in ("report-5.index", "pretrained-1.index")} == {
        "report-5.index": NOT_OURS,
        "pretrained-1.index": NOT_OURS,
    }
    assert others["notes-7.data-00000-of-00001"] == NOT_OURS
    assert others["graph.pbtxt"] == NOT_A_FILE_OF_OURS
    assert others["export"].startswith("kept: a directory")
    assert f"report-5.index {NOT_OURS}" in done["explain"]

    # The state file lists exactly what is kept, in its own (relative) style, and
    # TensorFlow reads it and restores the latest checkpoint it names.
    assert done["state_file"]["outcome"] == "rewritten"
    state_text = model_dir.storage.read_bytes(model_dir.join("checkpoint")).decode()
    assert state_text == (
        'model_checkpoint_path: "model.ckpt-150"\nall_model_checkpoint_paths: "model.ckpt-150"\n'
    )
    local = local_state_dir(model_dir, "model.ckpt-150")
    state = tf.train.get_checkpoint_state(str(local))
    assert state.model_checkpoint_path == str(local / "model.ckpt-150")
    assert list(state.all_model_checkpoint_paths) == [str(local / "model.ckpt-150")]
    latest = tf.train.latest_checkpoint(str(local))
    assert latest == str(local / "model.ckpt-150")
    assert tf.train.load_checkpoint(latest).get_tensor("global_step") == 150

    again = retention()
    assert again["delete"] == []
    assert again["state_file"]["outcome"] == "unchanged"


def test_without_a_state_file_nothing_is_deleted_unless_the_series_is_named(
    estimator_model_dir: Callable[[str], ModelDir],
) -> None:
    model_dir = estimator_model_dir("linear_classifier")
    model_dir.storage.delete_trees([model_dir.join("checkpoint")])
    before = names(model_dir)

    def retention(**kwargs: Any) -> dict[str, Any]:
        operator = RetentionOperator(
            task_id="retention", model_dir=model_dir.uri, checkpoints_to_keep=1, **kwargs
        )
        result: dict[str, Any] = operator.execute(context())["checkpoints"]
        return result

    unowned = retention()
    assert unowned["delete"] == [] and unowned["keep"] == []
    why = "no checkpoint state file and no checkpoint_prefix: no checkpoint is deleted"
    assert unowned["series_source"] == why
    assert {o["reason"] for o in unowned["other"] if o["name"].startswith("model.ckpt")} == {
        f"kept: no series to delete from ({why})"
    }
    assert names(model_dir) == before

    named = retention(checkpoint_prefix="model.ckpt")
    assert named["series_source"] == "named by checkpoint_prefix"
    assert [d["step"] for d in named["delete"]] == [100, 125]
    assert names(model_dir) == before - files_of(100, 125)
    assert named["state_file"]["uri"] is None


def test_a_state_file_a_trainer_rewrote_meanwhile_is_left_as_the_trainer_wrote_it(
    tmp_path: Path,
) -> None:
    """Retention reads the state file, plans and deletes; before it rewrites the file, the
    trainer saves a checkpoint and TensorFlow writes the state file (its Saver still lists a
    checkpoint retention deleted). Retention must not overwrite that update."""
    import tensorflow as tf

    model = tmp_path / "model"
    shutil.copytree(estimator_source(tmp_path, "linear_classifier"), model)
    storage = LocalStorage()
    contents = read_model_dir(storage, str(model))
    assert contents.state_file is not None
    plan = plan_checkpoint_retention(
        contents.entries,
        keep_newest=1,
        state=contents.state_file.state,
        newest_evaluated_step=150,
    )
    change = plan_state_file(contents, plan)
    for suffix in CKPT_FILES:
        shutil.copyfile(model / f"model.ckpt-150{suffix}", model / f"model.ckpt-175{suffix}")
    tf.compat.v1.train.update_checkpoint_state(
        str(model),
        "model.ckpt-175",
        all_model_checkpoint_paths=["model.ckpt-125", "model.ckpt-150", "model.ckpt-175"],
    )
    trainers = (model / "checkpoint").read_text()

    outcome = apply_checkpoint_plan(storage, contents, plan, change)
    assert outcome.outcome == CHANGED_CONCURRENTLY
    assert "left as it is: it changed after it was read" in outcome.explain()
    assert (model / "checkpoint").read_text() == trainers
    assert not (model / "model.ckpt-125.index").exists()
    assert tf.train.latest_checkpoint(str(model)) == str(model / "model.ckpt-175")

    # The next run prunes the entry of the checkpoint that is gone, keeping the trainer's.
    done = RetentionOperator(
        task_id="retention", model_dir=str(model), checkpoints_to_keep=2
    ).execute(context())["checkpoints"]
    assert done["delete"] == []
    assert done["state_file"]["remove"] == ["model.ckpt-125"]
    state = tf.train.get_checkpoint_state(str(model))
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == [
        "model.ckpt-150",
        "model.ckpt-175",
    ]


def test_on_gcs_a_state_file_changed_just_before_the_rewrite_is_not_clobbered(
    gcs_emulator: str,
    generation_enforcing_gcs_proxy: GenerationEnforcingProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trainer's write lands between retention's read and its conditional upload (the
    proxy lets it act right before that upload is forwarded); GCS refuses the upload."""
    proxy = generation_enforcing_gcs_proxy
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    trainer = emulator_client(gcs_emulator)
    trainer.create_bucket(bucket)
    source = estimator_source(tmp_path, "linear_classifier")
    for path in sorted(source.rglob("*")):
        if path.is_file():
            blob = trainer.bucket(bucket).blob(f"model/{path.relative_to(source).as_posix()}")
            blob.upload_from_filename(str(path))
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        '{"conn_type": "google_cloud_platform", '
        '"extra": {"is_anonymous": true, "project": "test-project"}}',
    )
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    trainers = RELATIVE_STATE.replace("150", "175").replace("100", "150")
    state_blob = trainer.bucket(bucket).blob("model/checkpoint")

    def trainer_saves(method: str, name: str | None) -> None:
        if name == "model/checkpoint":
            proxy.before_forward = None
            state_blob.upload_from_string(trainers)

    proxy.before_forward = trainer_saves
    done = RetentionOperator(
        task_id="retention", model_dir=f"gs://{bucket}/model", checkpoints_to_keep=1
    ).execute(context())["checkpoints"]
    assert done["state_file"]["outcome"] == CHANGED_CONCURRENTLY
    assert state_blob.download_as_bytes().decode() == trainers
    assert [d["step"] for d in done["delete"]] == [100, 125]
    refused = [r for r in proxy.requests if r.object_name == "model/checkpoint"]
    assert [r.status for r in refused] == [412]


def compare_candidate(model_dir: ModelDir, **kwargs: Any) -> dict[str, Any]:
    operator = CompareOperator(task_id="compare", model_dir=model_dir.uri, name="best", **kwargs)
    result: dict[str, Any] = operator.execute(context())["candidate"]
    return result


def test_an_eval_results_old_absolute_checkpoint_path_is_found_in_the_copy(
    estimator_model_dir: Callable[[str], ModelDir],
) -> None:
    """The sensor finds the Estimator's evaluation of model.ckpt-150 by name; the candidate
    is the copy's model.ckpt-150, not the recorded path (which exists elsewhere)."""
    model_dir = estimator_model_dir("linear_classifier")
    wait = parse_eval_wait(
        checkpoint_path=model_dir.join("model.ckpt-150"), required_metrics=["loss"]
    )
    reader = EvalDirReader(model_dir.storage, model_dir.uri, "eval/*.tfevents.*")
    found = find_eval_result(reader, wait, model_dir.uri)
    assert found is not None and found.step == 150
    assert found.checkpoint_path == (
        "/work/main/tests/data/estimator/linear_classifier/model_dir/model.ckpt-150"
    )
    candidate = compare_candidate(model_dir, eval_result=found.to_dict())
    assert candidate["checkpoint_path"] == model_dir.join("model.ckpt-150")
    assert candidate["global_step"] == 150


@pytest.mark.parametrize("outside", ["absolute", "dot-dot"])
def test_a_state_file_entry_outside_the_model_dir_never_uses_the_other_models_checkpoint(
    estimator_model_dir: Callable[[str], ModelDir], outside: str
) -> None:
    model_dir = estimator_model_dir("linear_classifier")
    other = ESTIMATOR_DATA / "dnn_classifier" / "model_dir"
    at = f"{other}/" if outside == "absolute" else "../../dnn_classifier/model_dir/"
    state = f'model_checkpoint_path: "{at}model.ckpt-150"\n'
    model_dir.storage.write_bytes(model_dir.join("checkpoint"), state.encode())
    candidate = compare_candidate(model_dir)
    assert candidate["checkpoint_path"] == model_dir.join("model.ckpt-150")

    missing = f'model_checkpoint_path: "{at}model.ckpt-175"\n'
    model_dir.storage.write_bytes(model_dir.join("checkpoint"), missing.encode())
    with pytest.raises(AirflowFailException) as raised:
        compare_candidate(model_dir)
    message = str(raised.value)
    assert f"records checkpoint '{at}model.ckpt-175'" in message
    assert f"model dir {model_dir.uri}, which holds no 'model.ckpt-175'" in message
    assert message.endswith(
        "it holds the checkpoints pretrained-1, report-5, model.ckpt-100, model.ckpt-125, "
        "model.ckpt-150"
    )
