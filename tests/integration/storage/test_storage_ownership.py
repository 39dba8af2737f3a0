"""What retention may delete, on local disk and on the GCS emulator: only what it proves this
package created. A user's `temp-notes.txt`, `temp-dataset/`, a dir `42/` holding a copied
`export_metadata.json`, a `temp-claim-43` of theirs are kept and reported, by the
RetentionOperator and by an exporter's own retention, at grace 0. Leftovers of earlier
releases in their exact forms are still cleaned up. A record edited by hand is invalid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from storage_test_models import NOW, Backend, write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import METADATA_FILENAME, metadata_checksum_name
from airflow_tf_export.core.strategies import BestStrategy, Candidate, LatestStrategy
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.storage import VersionIntegrityError
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir

GCS_CONNECTION = json.dumps(
    {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "p"}}
)
TOKEN = "5" * 32
USER_FILES = {
    "temp-notes.txt": b"my notes",
    "temp-dataset/part-0.csv": b"a,b\n1,2\n",
    "42/notes.txt": b"a copy of a record, for reference",
    "temp-claim-43": b"not a claim",
    "43/saved_model.pb": b"someone else's model",
}


@pytest.fixture
def exporter(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> ExporterDir:
    """An exporter dir with two committed versions and a user's entries beside them; the
    default Airflow connection points at the emulator (for the operator on GCS)."""
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCS_CONNECTION)
    uri = backend.uri("export", "latest")
    first = backend.publish(uri, step=1)
    backend.publish(uri, step=2)
    storage = backend.storage
    for name, data in USER_FILES.items():
        storage.write_bytes(storage.join(uri, name), data)
    record = storage.read_bytes(storage.join(uri, str(first.version), METADATA_FILENAME))
    storage.write_bytes(storage.join(uri, "42", METADATA_FILENAME), record)
    return ExporterDir(storage, uri)


def _user_entries_are_intact(exporter: ExporterDir) -> None:
    storage = exporter.storage
    for name, data in USER_FILES.items():
        assert storage.read_bytes(storage.join(exporter.uri, name)) == data
    assert storage.exists(storage.join(exporter.uri, "42", METADATA_FILENAME))


def _retention_operator(exporter: ExporterDir, **kwargs: Any) -> dict[str, Any]:
    operator = RetentionOperator(
        task_id="retention", exporter_dirs=[exporter.uri], keep={"newest": 1}, **kwargs
    )
    (plan,) = operator.execute({})["exporters"]  # type: ignore[arg-type]
    return dict(plan)


def test_the_retention_operator_keeps_and_reports_what_it_did_not_create(
    exporter: ExporterDir,
) -> None:
    plan = _retention_operator(exporter, staging_grace_seconds=0)
    _user_entries_are_intact(exporter)
    assert [m.version for m in exporter.committed()] == [NOW + 1]
    assert plan["not_ours"] == ["temp-claim-43", "temp-dataset", "temp-notes.txt"]
    assert plan["foreign"] == [43]
    assert [i["version"] for i in plan["invalid"]] == [42]
    assert "says version 1800000000, but its directory is 42" in plan["invalid"][0]["error"]
    explain = plan["explain"].splitlines()
    assert "temp-notes.txt keep not ours: not in a form this product creates" in "\n".join(explain)
    assert (
        "temp-claim-43 keep not ours: named like a publish claim, but not a claim object "
        "holding a token of this product; never deleted automatically"
    ) in explain
    assert any(line.startswith("42 keep invalid: ") for line in explain)
    assert plan["staging_delete"] == []


def test_an_exporters_own_retention_keeps_them_too(exporter: ExporterDir) -> None:
    outcome = export_with_strategy(
        exporter,
        LatestStrategy(name="latest", exports_to_keep=1),
        Candidate("/model/ckpt-3", 3),
        lambda directory: write_model_files(directory, 3),
        now_seconds=NOW + 3,
        staging_grace_seconds=0,
    )
    assert outcome.exported
    _user_entries_are_intact(exporter)
    assert [m.version for m in exporter.committed()] == [NOW + 3]
    retention = outcome.to_dict()["retention"]
    assert retention["not_ours"] == ["temp-claim-43", "temp-dataset", "temp-notes.txt"]
    assert [i["version"] for i in retention["invalid"]] == [42]
    assert retention["foreign"] == [43]


def test_leftovers_of_earlier_releases_in_their_exact_forms_are_cleaned_up(
    backend: Backend, exporter: ExporterDir
) -> None:
    storage, uri = backend.storage, exporter.uri
    old = {
        f"temp-{TOKEN}/saved_model.pb": b"an abandoned staging dir",
        f"temp-deleting-{TOKEN}/variables/variables.index": b"a local delete cut short",
        f"temp-claim-{NOW + 50}": json.dumps({"token": TOKEN}).encode(),
        f"{NOW + 50}/variables/variables.index": b"a GCS publish cut short",
    }
    for name, data in old.items():
        storage.write_bytes(storage.join(uri, name), data)
    young = _retention_operator(exporter)
    assert sorted(young["staging_keep"]) == sorted(
        [f"temp-{TOKEN}", f"temp-deleting-{TOKEN}", str(NOW + 50), f"temp-claim-{NOW + 50}"]
    )
    plan = _retention_operator(exporter, staging_grace_seconds=0)
    # The abandoned publish goes before its claim.
    assert plan["staging_delete"] == [
        str(NOW + 50),
        f"temp-{TOKEN}",
        f"temp-deleting-{TOKEN}",
        f"temp-claim-{NOW + 50}",
    ]
    for name in old:
        assert not storage.exists(storage.join(uri, name))
    _user_entries_are_intact(exporter)


def test_a_version_of_an_earlier_release_has_no_checksum_and_still_counts(
    backend: Backend, exporter: ExporterDir
) -> None:
    storage = backend.storage
    newest = exporter.committed()[-1]
    version_uri = exporter.version_uri(newest.version)
    record = storage.read_bytes(storage.join(version_uri, METADATA_FILENAME))
    storage.delete_trees([storage.join(version_uri, metadata_checksum_name(record))])
    assert exporter.committed()[-1] == newest
    checked = exporter.verify(newest.version)
    assert checked.metadata == newest and checked.metadata_checksum is None
    assert checked.note.startswith("export_metadata.json has no checksum (published by an earlier")


def test_an_interrupted_delete_of_an_earlier_release_is_reported_not_deleted(
    backend: Backend, exporter: ExporterDir
) -> None:
    """An earlier release deleted saved_model first and the metadata last, with no marker:
    what it left is indistinguishable from a user's copy, so it is kept and reported."""
    storage = backend.storage
    oldest = exporter.committed()[0]
    storage.delete_trees([storage.join(exporter.version_uri(oldest.version), "saved_model.pb")])
    plan = _retention_operator(exporter, staging_grace_seconds=0)
    assert [i["version"] for i in plan["invalid"]] == [42, oldest.version]
    assert "'saved_model.pb' in the manifest is missing" in plan["invalid"][1]["error"]
    assert storage.exists(exporter.version_uri(oldest.version))


def test_a_hand_edited_loss_is_invalid_and_does_not_change_the_best(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "best"))

    def export(step: int, loss: float) -> bool:
        return export_with_strategy(
            exporter,
            BestStrategy(name="best", exports_to_keep=None),
            Candidate(f"/model/ckpt-{step}", step, EvalResult(step, {"loss": loss})),
            lambda directory: write_model_files(directory, step),
            now_seconds=NOW + step,
        ).exported

    assert export(1, 0.5) and export(2, 0.3)
    storage = backend.storage
    record_uri = storage.join(exporter.version_uri(NOW + 1), METADATA_FILENAME)
    edited = json.loads(storage.read_bytes(record_uri))
    edited["eval_result"]["metrics"]["loss"] = 0.01
    storage.write_bytes(record_uri, json.dumps(edited, indent=2, sort_keys=True).encode())

    with pytest.raises(VersionIntegrityError, match="was changed after it was published"):
        exporter.verify(NOW + 1)
    state = exporter.scan()
    assert [m.version for m in state.committed] == [NOW + 2]
    assert [v for v, _ in state.invalid] == [NOW + 1]
    assert export(3, 0.2), "0.2 beats the best committed loss 0.3, not the forged 0.01"
