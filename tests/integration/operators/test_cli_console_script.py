"""The `airflow-tf-export` console script, run as a user runs it: the installed script in a
subprocess, against a real trained model dir on local disk and on the GCS emulator (reached
through STORAGE_EMULATOR_HOST alone: no Airflow connection, no metadata DB). Real exports:
each published SavedModel is loaded with TensorFlow and run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from operator_support import ModelDir, classify, load_version

from airflow_tf_export.storage.exporter_dir import ExporterDir

SCRIPT = Path(sys.executable).parent / "airflow-tf-export"
OPERATORS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "operators.md"
DEFINITION = "airflow_tf_export.example.model:definition"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: reinstall the package (pip install -e .)"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False
    )


def cli_json(*args: str, exit_code: int = 0) -> Any:
    done = cli(*args, "--json")
    assert done.returncode == exit_code, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def committed(model_dir: ModelDir, name: str) -> list[int]:
    uri = model_dir.join("export", name)
    return [m.version for m in ExporterDir(model_dir.storage, uri).committed()]


def test_export_list_dry_run_and_verify_on_a_real_model_dir(model_dir: ModelDir) -> None:
    exports = {}
    for step, exit_code in ((20, 0), (40, 0), (60, 4)):
        exports[step] = cli_json(
            "export",
            "--model-definition",
            DEFINITION,
            "--model-dir",
            model_dir.uri,
            "--name",
            "best",
            "--strategy",
            "best",
            "--checkpoint",
            f"ckpt-{step}",
            exit_code=exit_code,
        )
    assert [exports[s]["exported"] for s in (20, 40, 60)] == [True, True, False]
    # The export operators' XCom as docs/operators.md documents it (the operators add
    # `new_version`, the version they announce).
    documented = json.loads(re.findall(r"```json\n(.*?)```", OPERATORS_PAGE.read_text(), re.S)[0])
    assert {*exports[20], "new_version"} == set(documented)
    assert exports[60]["reason"].startswith("skipped: candidate loss 0.5 is not better")
    v20, v40 = exports[20]["version"], exports[40]["version"]
    assert exports[40]["eval_result"]["metrics"]["loss"] == pytest.approx(0.4)
    outputs = classify(load_version(model_dir.storage, exports[40]["version_uri"]), [33], ["x"])
    assert outputs["scores"].shape == (1, 2)

    listed = cli_json("versions", "--model-dir", model_dir.uri, "--keep", '{"newest": 1}')
    (best,) = listed["exporters"]
    assert best["uri"] == model_dir.join("export", "best")
    assert [(v["version"], v["global_step"], v["retention"]) for v in best["versions"]] == [
        (v20, 20, "delete"),
        (v40, 40, "keep"),
    ]
    assert best["versions"][0]["metrics"]["loss"] == pytest.approx(0.6)
    assert best["versions"][1]["why"] == "newest-committed, current-best, newest(1)"
    table = cli("versions", model_dir.join("export", "best"), "--keep", '{"newest": 1}')
    assert table.returncode == 0, table.stderr
    row20 = next(line for line in table.stdout.splitlines() if line.strip().startswith(str(v20)))
    assert "would delete" in row20 and "0.6000" in row20

    planned = cli_json("retention", model_dir.join("export", "best"), "--keep", '{"newest": 1}')
    (plan,) = planned["exporters"]
    assert planned["dry_run"] is True
    assert [d["version"] for d in plan["delete"]] == [v20]
    assert committed(model_dir, "best") == [v20, v40], "a dry run deletes nothing"

    checked = cli_json("verify", exports[40]["version_uri"])
    assert (checked["ok"], checked["global_step"]) == (True, 40)
    assert checked["files"] == len(exports[40]["metadata"]["manifest"])
    variables = next(
        e["path"] for e in exports[40]["metadata"]["manifest"] if ".data-" in e["path"]
    )
    target = f"{exports[40]['version_uri']}/{variables}"
    data = bytearray(model_dir.storage.read_bytes(target))
    data[0] ^= 0xFF
    model_dir.storage.write_bytes(target, bytes(data))
    failed = cli_json("verify", exports[40]["version_uri"], exit_code=1)
    assert failed["ok"] is False and "does not match its manifest" in failed["error"]


def test_latest_export_then_nothing_new_exits_4_with_the_reason(model_dir: ModelDir) -> None:
    args = ("export", "--model-definition", DEFINITION, "--model-dir", model_dir.uri)
    first = cli(*args, "--name", "latest")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "exported step 60 from " + model_dir.join("ckpt-60") in first.stdout
    again = cli(*args, "--name", "latest")
    assert again.returncode == 4
    assert f"already exported as version {committed(model_dir, 'latest')[0]}" in again.stdout


def test_bad_input_exits_2_naming_it_and_missing_dirs_exit_3(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "export" / "best")
    done = cli("versions", missing)
    assert done.returncode == 3
    assert f"exporter dir {missing} does not exist" in done.stderr

    (tmp_path / "export" / "best").mkdir(parents=True)
    (tmp_path / "export" / "best" / "1").mkdir()
    (tmp_path / "export" / "best" / "1" / "saved_model.pb").write_bytes(b"")
    done = cli("retention", str(tmp_path / "export" / "best"), "--keep", '{"newst": 1}')
    assert done.returncode == 2
    assert "unknown keys ['newst']" in done.stderr

    done = cli("verify", str(tmp_path / "export" / "best" / "latest"))
    assert done.returncode == 2 and "is not a version directory" in done.stderr

    done = cli(
        "export",
        "--model-definition",
        "no_such_package.model:definition",
        "--model-dir",
        str(tmp_path),
        "--name",
        "latest",
    )
    assert done.returncode == 2
    assert "no_such_package" in done.stderr


def test_help_documents_every_exit_code() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for code in ("0 done", "1 verify", "2 bad arguments", "3 storage error", "4 export"):
        assert code in " ".join(done.stdout.split())


def test_the_allowed_roots_variable_confines_every_command(tmp_path: Path) -> None:
    """The CLI reads no airflow.cfg, but honours the option's environment variable."""
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    (elsewhere / "export" / "best" / "1").mkdir(parents=True)
    (elsewhere / "export" / "best" / "1" / "saved_model.pb").write_bytes(b"")
    allowed.mkdir()
    env = {**os.environ, "AIRFLOW__TF_EXPORT__ALLOWED_ROOTS": str(allowed)}

    def confined(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=env
        )

    for args in (
        ("versions", str(elsewhere / "export" / "best")),
        ("verify", str(elsewhere / "export" / "best" / "1")),
        ("export", "--model-definition", DEFINITION, "--model-dir", str(elsewhere), "--name", "x"),
        (
            "export",
            "--model-definition",
            DEFINITION,
            "--model-dir",
            str(allowed),
            "--name",
            "x",
            "--export-dir-base",
            str(elsewhere / "export" / "x"),
        ),
    ):
        done = confined(*args)
        assert done.returncode == 2, done.stderr
        assert (
            f"lies outside the allowed roots AIRFLOW__TF_EXPORT__ALLOWED_ROOTS = {str(allowed)!r}"
            in done.stderr
        )
    assert not (elsewhere / "export" / "x").exists()
    assert cli("versions", str(elsewhere / "export" / "best")).returncode == 0
