"""The exporter dir's index on local disk and on the GCS emulator: stamps from one listing, a
rewritten record read again, the export flow keeping the index and deciding from it."""

from __future__ import annotations

from pathlib import Path

from storage_test_models import NOW, Backend, write_model_files

from airflow_tf_export.core.exporter_index import INDEX_NAME, decode_index
from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.strategies import Candidate, LatestStrategy
from airflow_tf_export.storage.base import WrittenModel
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir


def test_stamps_come_from_one_listing_and_change_when_the_record_is_rewritten(
    backend: Backend,
) -> None:
    exporter_uri = backend.uri("export", "latest")
    first = backend.publish(exporter_uri, step=1)
    backend.publish(exporter_uri, step=2, now=NOW + 1)
    backend.storage.write_bytes(backend.uri("export", "latest", "notes.txt"), b"hi")
    listed = backend.storage.list_dir_stamped(exporter_uri, METADATA_FILENAME)
    assert sorted(listed.stamps) == [str(NOW), str(NOW + 1)]
    assert [e.name for e in listed.others if e.name[0] != "."] == ["notes.txt"]
    record = backend.uri("export", "latest", str(first.version), METADATA_FILENAME)
    backend.storage.write_bytes(record, backend.storage.read_bytes(record) + b" ")
    again = backend.storage.list_dir_stamped(exporter_uri, METADATA_FILENAME)
    assert again.stamps[str(NOW)] != listed.stamps[str(NOW)]
    assert again.stamps[str(NOW + 1)] == listed.stamps[str(NOW + 1)]


def test_the_flow_decides_from_the_index_and_a_changed_record_is_read_again(
    backend: Backend, tmp_path: Path
) -> None:
    exporter_uri = backend.uri("export", "latest")
    exporter = ExporterDir(backend.storage, exporter_uri)
    strategy = LatestStrategy(name="latest", exports_to_keep=2)

    def write(step: int):  # type: ignore[no-untyped-def]
        def written(directory: Path) -> WrittenModel:
            write_model_files(directory, step=step)
            return WrittenModel()

        return written

    for step in (100, 200, 300):
        outcome = export_with_strategy(
            exporter,
            strategy,
            Candidate(f"/m/ckpt-{step}", step),
            write(step),
            now_seconds=NOW + step // 100 - 1,
        )
        assert outcome.exported
    index = decode_index(backend.storage.read_bytes(backend.uri("export", "latest", INDEX_NAME)))
    assert index is not None
    assert sorted(index) == [str(m.version) for m in exporter.committed()[:-1]]
    again = export_with_strategy(exporter, strategy, Candidate("/m/ckpt-300", 300), write(300))
    assert (again.exported, again.decision.existing_version) == (False, NOW + 2)
    assert again.metadata is not None and again.metadata.manifest, "the full record is shown"
    # a record edited by hand: its stamp changes, it is read again and is invalid
    newest = backend.uri("export", "latest", str(NOW + 2), METADATA_FILENAME)
    backend.storage.write_bytes(
        newest, backend.storage.read_bytes(newest).replace(b"ckpt-300", b"ckpt-900")
    )
    state = ExporterDir(backend.storage, exporter_uri).scan_indexed()
    assert [v for v, _why in state.invalid] == [NOW + 2]
    assert set(state.indexed) == {NOW + 1}
    outcome = export_with_strategy(
        exporter, strategy, Candidate("/m/ckpt-250", 250), write(250), now_seconds=NOW + 3
    )
    assert outcome.exported, outcome.decision.reason
    assert "newer than step 200 in version" in outcome.decision.reason
