"""Hostile inputs through real operator, sensor and trigger runs on a real trained model dir:
symbolic-link loops, dangling links and links out of the tree in exporter, model and eval
dirs; model definitions that fail; and paths outside the allowed roots when
`[tf_export] allowed_roots` is set (local disk and the GCS emulator)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from hostile_trees import finishes, plant_hostile_links, snapshot
from operator_support import classify, load_version, run_task, task_context

from airflow_tf_export.operators.export import BestExportOperator, LatestExportOperator
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.savedmodel.errors import DefinitionUnavailableError
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

DEFINITION = "airflow_tf_export.example.model:definition"
ROOTS_ENV = "AIRFLOW__TF_EXPORT__ALLOWED_ROOTS"


def serves(storage: Any, version_uri: str) -> None:
    scores = classify(load_version(storage, version_uri), [25, 70], ["german", "x"])["scores"]
    assert scores.numpy().shape == (2, 2)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the model dir, holding what must never be read or changed."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("not yours")
    (directory / "events.out.tfevents.1.stolen").write_bytes(b"not an event file")
    return directory


@pytest.fixture
def local_model(trained_model_dir: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    return model


# --- model definitions that fail ------------------------------------------------------


@pytest.fixture
def broken_definitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package `broken_defs` whose factories raise, importable as a DAG's module would be."""
    package = tmp_path / "defs" / "broken_defs"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(
        "def factory():\n"
        "    raise RuntimeError('the feature store is misconfigured')\n"
        "def flaky():\n"
        "    raise OSError(5, 'Input/output error', '/mnt/nfs/vocab.txt')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "defs"))
    for name in ("broken_defs", "broken_defs.model"):
        monkeypatch.delitem(__import__("sys").modules, name, raising=False)


def _latest(model_dir: str, definition: str, **kwargs: Any) -> LatestExportOperator:
    return LatestExportOperator(
        task_id="export", name="latest", model_definition=definition, model_dir=model_dir, **kwargs
    )


@pytest.mark.usefixtures("broken_definitions")
@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            "broken_defs.model:factory",
            "latest export 'latest': calling 'broken_defs.model:factory' for the model "
            "definition failed: RuntimeError: the feature store is misconfigured",
        ),
        (
            "broken_defs.missing:factory",
            "latest export 'latest': cannot resolve model definition "
            "'broken_defs.missing:factory': no module named 'broken_defs.missing'",
        ),
    ],
)
def test_a_definition_that_cannot_be_built_fails_the_task_without_retry_naming_it(
    local_model: Path, definition: str, expected: str
) -> None:
    with pytest.raises(AirflowFailException) as raised:
        _latest(str(local_model), definition).execute(task_context())
    assert str(raised.value) == expected
    assert not (local_model / "export").exists()


@pytest.mark.usefixtures("broken_definitions")
def test_an_io_error_building_a_definition_is_left_to_the_task_s_retries(
    local_model: Path,
) -> None:
    with pytest.raises(DefinitionUnavailableError) as raised:
        _latest(str(local_model), "broken_defs.model:flaky").execute(task_context())
    assert not isinstance(raised.value, AirflowFailException)
    assert "'broken_defs.model:flaky'" in str(raised.value)
    assert "OSError: [Errno 5] Input/output error: '/mnt/nfs/vocab.txt'" in str(raised.value)


# --- symbolic links ------------------------------------------------------------------


def test_exports_and_retention_finish_beside_link_loops_and_report_them(
    local_model: Path, outside: Path
) -> None:
    exporter = local_model / "export" / "latest"
    planted = plant_hostile_links(exporter, outside)
    plant_hostile_links(local_model / "stray", outside)
    (local_model / "loop").symlink_to("loop")
    before = snapshot(outside)
    published = []
    for step in (20, 40, 60):
        op = _latest(
            str(local_model),
            DEFINITION,
            checkpoint_path=f"ckpt-{step}",
            exports_to_keep=1,
        )
        ctx = task_context(try_number=step)
        state, result = finishes(lambda op=op, ctx=ctx: run_task(op, ctx))
        assert state == "success"
        published.append(result["version"])
        invalid = result["retention"]["invalid"]
        assert [i["version"] for i in invalid] == planted.integer_links
        assert all("symbolic link, not a version directory" in i["error"] for i in invalid)
    storage = LocalStorage()
    serves(storage, str(exporter / str(published[-1])))
    assert [m.version for m in ExporterDir(storage, str(exporter)).committed()] == published[-1:]

    report = finishes(
        lambda: RetentionOperator(
            task_id="retention",
            exporter_dirs=[str(exporter)],
            keep={"newest": 1},
            model_dir=str(local_model),
            checkpoints_to_keep=1,
        ).execute(task_context())
    )
    (exporter_report,) = report["exporters"]
    assert [i["version"] for i in exporter_report["invalid"]] == planted.integer_links
    for name in (*map(str, planted.integer_links), planted.loop, planted.dangling, planted.outside):
        assert (exporter / name).is_symlink()
    assert (local_model / "loop").is_symlink()
    assert snapshot(outside) == before


def test_the_sensor_and_best_export_read_events_beside_link_loops(
    local_model: Path, outside: Path
) -> None:
    eval_dir = local_model / "eval"
    (eval_dir / "events.out.tfevents.0.loop").symlink_to("events.out.tfevents.0.loop")
    (eval_dir / "events.out.tfevents.0.dangling").symlink_to(outside / "gone")
    plant_hostile_links(eval_dir, outside)
    (local_model / "loop").symlink_to("loop")
    sensor = EvalMetricsSensor(task_id="wait", model_dir=str(local_model), min_step=60, timeout=0)
    result = finishes(lambda: sensor.execute(task_context()))
    assert result["step"] == 60
    best = BestExportOperator(
        task_id="export", model_definition=DEFINITION, model_dir=str(local_model)
    )
    state, outcome = finishes(lambda: run_task(best, task_context()))
    assert (state, outcome["global_step"]) == ("success", 60)


# --- confinement ---------------------------------------------------------------------


def _outside_uri(model_dir: Any, name: str) -> str:
    """A sibling of the model dir: outside a root that is the model dir itself."""
    return model_dir.uri.rsplit("/", 1)[0] + f"/{name}"


def test_an_export_under_the_roots_runs_as_without_them(
    model_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOTS_ENV, f"/nonexistent/models, {model_dir.uri}")
    state, result = run_task(_latest(model_dir.uri, DEFINITION), task_context())
    assert state == "success"
    serves(model_dir.storage, result["version_uri"])


@pytest.mark.parametrize("argument", ["export_dir_base", "checkpoint_path", "model_dir"])
def test_a_templated_path_outside_the_roots_fails_before_anything_is_written(
    model_dir: Any, monkeypatch: pytest.MonkeyPatch, argument: str
) -> None:
    value = f"{model_dir.uri}, gs://unrelated-bucket/models"
    monkeypatch.setenv(ROOTS_ENV, value)
    elsewhere = _outside_uri(model_dir, "elsewhere")
    model_dir.storage.write_bytes(f"{elsewhere}/ckpt-20.index", b"not a checkpoint")
    arguments = {
        "export_dir_base": {"model_dir": model_dir.uri, "export_dir_base": elsewhere},
        "checkpoint_path": {"model_dir": model_dir.uri, "checkpoint_path": f"{elsewhere}/ckpt-20"},
        "model_dir": {"model_dir": elsewhere},
    }[argument]
    with pytest.raises(AirflowFailException) as raised:
        LatestExportOperator(
            task_id="export", name="latest", model_definition=DEFINITION, **arguments
        ).execute(task_context())
    message = str(raised.value)
    assert elsewhere in message
    assert f"[tf_export] allowed_roots = {value!r}" in message
    assert [e.name for e in model_dir.storage.list_dir(elsewhere)] == ["ckpt-20.index"]
    assert not model_dir.storage.exists(model_dir.join("export"))


def test_an_assets_extra_source_outside_the_roots_is_never_copied(
    local_model: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = local_model.parent / "assets"
    assets.mkdir()
    (assets / "vocab.txt").write_text("english\n")
    (assets / "innocent.txt").symlink_to(outside / "secret.txt")
    monkeypatch.setenv(ROOTS_ENV, f"{local_model}, {assets}")
    for source in (str(outside / "secret.txt"), str(assets / "innocent.txt")):
        op = _latest(
            str(local_model),
            DEFINITION,
            assets_extra={"vocab.txt": str(assets / "vocab.txt"), "x.txt": source},
        )
        with pytest.raises(
            AirflowFailException, match=f"refusing to copy into assets.extra/x.txt {source}"
        ):
            op.execute(task_context())
        assert not (local_model / "export").exists()
    op = _latest(
        str(local_model), DEFINITION, assets_extra={"vocab.txt": str(assets / "vocab.txt")}
    )
    state, result = run_task(op, task_context())
    assert state == "success"
    assert (Path(result["version_uri"]) / "assets.extra" / "vocab.txt").read_text() == "english\n"


def test_retention_checks_every_exporter_dir_before_deleting_anything(
    model_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = model_dir.join("export", "latest")
    for step in (20, 40):
        run_task(_latest(model_dir.uri, DEFINITION, checkpoint_path=f"ckpt-{step}"), task_context())
    monkeypatch.setenv(ROOTS_ENV, model_dir.uri)
    with pytest.raises(AirflowFailException, match="refusing to use"):
        RetentionOperator(
            task_id="retention",
            exporter_dirs=[exporter, _outside_uri(model_dir, "other/export/latest")],
            keep={"newest": 1},
        ).execute(task_context())
    assert len(ExporterDir(model_dir.storage, exporter).committed()) == 2


def test_the_sensor_refuses_event_files_outside_the_roots_in_every_mode(
    local_model: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOTS_ENV, str(local_model))
    (local_model / "eval" / "events.out.tfevents.1.link").symlink_to(
        outside / "events.out.tfevents.1.stolen"
    )
    expected = f"refusing to read {local_model / 'eval' / 'events.out.tfevents.1.link'}"
    poking = EvalMetricsSensor(task_id="wait", model_dir=str(local_model), min_step=60)
    with pytest.raises(AirflowFailException, match=expected):
        poking.execute(task_context())
    outside_model = EvalMetricsSensor(task_id="wait", model_dir=str(outside), min_step=60)
    with pytest.raises(AirflowFailException, match=f"refusing to use {outside}"):
        outside_model.execute(task_context())

    (local_model / "eval" / "events.out.tfevents.1.link").unlink()
    deferring = EvalMetricsSensor(
        task_id="wait",
        model_dir=str(local_model),
        min_step=1000,
        deferrable=True,
        timeout=600,
        poke_interval=0.1,
    )
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute(task_context())
    (local_model / "eval" / "events.out.tfevents.1.link").symlink_to(
        outside / "events.out.tfevents.1.stolen"
    )
    event = asyncio.run(
        asyncio.wait_for(anext(deferred.value.trigger.run()), 60)  # type: ignore[arg-type]
    )
    assert event.payload["kind"] == "configuration"
    assert expected in event.payload["message"]
    with pytest.raises(AirflowFailException, match=expected):
        deferring.execute_complete(task_context(), event.payload)
