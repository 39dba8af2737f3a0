"""The indexed scan decides as a full scan does, on exporter dirs changed in every way after
their index was written (versions added, deleted, rewritten, corrupted, files lost, the index
edited or gone), on real local directories."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.exporter_index import INDEX_NAME
from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
)
from airflow_tf_export.storage.export_flow import ForeignAdopter, decide_in_dir
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from version_writer import version_files, write_version

BASE = 1_800_000_000
STRATEGIES: list[ExportStrategy] = [
    FinalStrategy(name="final"),
    LatestStrategy(name="latest"),
    BestStrategy(name="best"),
]
versions = st.dictionaries(
    st.integers(1, 30).map(lambda n: BASE + n),
    st.tuples(st.integers(0, 6).map(lambda s: s * 100), st.none() | st.floats(0, 1)),
    max_size=12,
)
changes = st.lists(
    st.tuples(
        st.sampled_from(["delete", "add", "rewrite", "corrupt", "lose_file", "foreign", "index"]),
        st.integers(1, 40),
        st.integers(0, 6).map(lambda s: s * 100),
    ),
    max_size=5,
)


def _change(exporter: Path, what: str, number: int, step: int) -> None:
    existing = sorted(p for p in exporter.iterdir() if p.name.isdigit())
    target = existing[number % len(existing)] if existing else None
    if what == "add":
        write_version(exporter, BASE + 100 + number, step, 0.01 * number)
    elif what == "foreign":
        (exporter / str(BASE + 200 + number)).mkdir(exist_ok=True)
    elif what == "index" and (exporter / INDEX_NAME).exists():
        data = bytearray((exporter / INDEX_NAME).read_bytes())
        data[number % len(data)] ^= 1
        (exporter / INDEX_NAME).write_bytes(bytes(data))
    elif target is None or not (target / METADATA_FILENAME).exists():
        return
    elif what == "delete":
        for root, dirs, files in os.walk(target, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        target.rmdir()
    elif what == "rewrite":  # a valid record of another step, replaced as editors do
        files = version_files(int(target.name), step, 0.5, f"/other/ckpt-{step}")
        for old in target.glob(f"{METADATA_FILENAME}.sha256-*"):
            old.unlink()
        for name, data in files.items():
            if name.startswith(METADATA_FILENAME):
                (target / f"{name}.new").write_bytes(data)
                os.replace(target / f"{name}.new", target / name)
    elif what == "corrupt":
        (target / METADATA_FILENAME).write_bytes(b'{"format": "edited by hand"}')
    elif what == "lose_file":  # the record's stamp stays: only a full check sees it
        (target / "variables" / "variables.data-00000-of-00001").unlink(missing_ok=True)


@settings(max_examples=60, deadline=None)
@given(versions, changes, st.integers(0, 7).map(lambda s: s * 100), st.booleans())
def test_the_indexed_decision_is_the_full_scans(
    found: dict[int, tuple[int, float | None]],
    changed: list[tuple[str, int, int]],
    step: int,
    final: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        exporter = Path(tmp) / "export" / "e"
        exporter.mkdir(parents=True)
        for version, (version_step, loss) in found.items():
            write_version(exporter, version, version_step, loss)
        storage = LocalStorage()
        indexed = ExporterDir(storage, str(exporter))
        indexed.write_index(indexed.scan())
        for what, number, change_step in changed:
            _change(exporter, what, number, change_step)
        full = ExporterDir(storage, str(exporter)).scan()
        for path in (f"/model/ckpt-{step}", "/other/ckpt-300"):
            candidate = Candidate(path, step, EvalResult(step, {"loss": 0.3}))
            for strategy in STRATEGIES:
                _state, decision, _foreign = decide_in_dir(
                    indexed,
                    indexed.scan_indexed(),
                    strategy,
                    candidate,
                    final,
                    ForeignAdopter(None),
                )
                expected = strategy.decide(
                    full.committed,
                    candidate,
                    is_the_final_export=final,
                    foreign=full.foreign_versions,
                )
                assert decision == expected, (strategy.kind, changed)


def test_an_unchanged_dir_reads_no_record_and_a_new_version_only_its_own(tmp_path: Path) -> None:
    exporter = tmp_path / "export" / "latest"
    for i in range(20):
        write_version(exporter, BASE + i, i * 100, None)
    storage = LocalStorage()
    ExporterDir(storage, str(exporter)).write_index(ExporterDir(storage, str(exporter)).scan())
    reads: list[str] = []

    class Counting(LocalStorage):
        def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
            reads.append(Path(uri).name if Path(uri).name == INDEX_NAME else Path(uri).parent.name)
            return super().read_bytes(uri, start, end)

    state = ExporterDir(Counting(), str(exporter)).scan_indexed()
    assert reads == [INDEX_NAME] and len(state.indexed) == 20
    write_version(exporter, BASE + 20, 2000, None)
    reads.clear()
    state = ExporterDir(Counting(), str(exporter)).scan_indexed()
    assert reads == [INDEX_NAME, str(BASE + 20)]
    assert set(state.indexed) == {BASE + i for i in range(20)}
    newest = ExporterDir(Counting(), str(exporter)).newest_committed()
    assert newest is not None and newest.version == BASE + 20 and newest.manifest


def test_retention_checks_a_version_before_deleting_it(tmp_path: Path) -> None:
    """A version whose file went missing after it was indexed is invalid: the flow's retention
    checks each version it would delete and keeps that one (reported), deleting the next."""
    from airflow_tf_export.storage.base import WrittenModel
    from airflow_tf_export.storage.export_flow import export_with_strategy

    exporter = tmp_path / "export" / "latest"
    for i in range(3):
        write_version(exporter, BASE + i, i * 100, None)
    storage = LocalStorage()
    ExporterDir(storage, str(exporter)).write_index(ExporterDir(storage, str(exporter)).scan())
    (exporter / str(BASE) / "variables" / "variables.data-00000-of-00001").unlink()

    def write(directory: Path) -> WrittenModel:
        (directory / "saved_model.pb").write_bytes(b"graph")
        return WrittenModel()

    outcome = export_with_strategy(
        ExporterDir(storage, str(exporter)),
        LatestStrategy(name="latest", exports_to_keep=1),
        Candidate("/model/ckpt-900", 900),
        write,
        now_seconds=BASE + 10,
    )
    assert outcome.exported
    assert outcome.retention.delete_versions == (BASE + 1, BASE + 2)
    assert [v for v, _why in outcome.retention.invalid] == [BASE]
    assert (exporter / INDEX_NAME).exists(), "rewritten after the retention"
    assert (outcome.retention.not_ours, outcome.retention.foreign_versions) == ((), ())
    assert INDEX_NAME not in outcome.retention.explain()
    assert sorted(p.name for p in exporter.iterdir() if p.name.isdigit()) == [
        str(BASE),
        str(BASE + 10),
    ]


def test_a_broken_version_retention_keeps_takes_no_committed_versions_place(
    tmp_path: Path,
) -> None:
    """A version that lost a file after it was indexed (its record's stamp unchanged) is not
    committed: newest(3) keeps the three newest committed versions, as a full scan does, and
    reports the broken one as invalid instead of counting it among the three."""
    from airflow_tf_export.storage.export_flow import export_with_strategy

    exporter = tmp_path / "export" / "latest"
    for i in range(1, 6):
        write_version(exporter, BASE + i, i * 100, None)
    storage = LocalStorage()
    ExporterDir(storage, str(exporter)).write_index(ExporterDir(storage, str(exporter)).scan())
    (exporter / str(BASE + 4) / "variables" / "variables.data-00000-of-00001").unlink()

    def never_written(directory: Path) -> None:
        raise AssertionError(f"a skip wrote {directory}")

    outcome = export_with_strategy(
        ExporterDir(storage, str(exporter)),
        LatestStrategy(name="exporter", exports_to_keep=3),
        Candidate("/model/ckpt-500", 500),
        never_written,  # type: ignore[arg-type]
        now_seconds=BASE + 10,
    )
    assert not outcome.exported
    assert outcome.retention.delete_versions == (BASE + 1,)
    assert [v for v, _why in outcome.retention.invalid] == [BASE + 4]
    assert sorted(int(p.name) for p in exporter.iterdir() if p.name.isdigit()) == [
        BASE + 2,
        BASE + 3,
        BASE + 4,
        BASE + 5,
    ]


def test_a_skip_in_an_unchanged_dir_writes_nothing_and_a_changed_one_rewrites_the_index(
    tmp_path: Path,
) -> None:
    from airflow_tf_export.core.exporter_index import decode_index
    from airflow_tf_export.storage.export_flow import export_with_strategy

    exporter = tmp_path / "export" / "best"
    for i in range(5):
        write_version(exporter, BASE + i, i * 100, 0.5 - i * 0.01)
    storage = LocalStorage()
    ExporterDir(storage, str(exporter)).write_index(ExporterDir(storage, str(exporter)).scan())
    written: list[str] = []

    class Counting(LocalStorage):
        def write_bytes(self, uri: str, data: bytes) -> None:
            written.append(Path(uri).name)
            super().write_bytes(uri, data)

    def never_written(directory: Path) -> None:
        raise AssertionError(f"a skip wrote {directory}")

    def skip(candidate: Candidate) -> None:
        outcome = export_with_strategy(
            ExporterDir(Counting(), str(exporter)),
            BestStrategy(name="best", exports_to_keep=None),
            candidate,
            never_written,  # type: ignore[arg-type]
        )
        assert not outcome.exported, outcome.decision.reason

    skip(Candidate("/model/ckpt-900", 900, EvalResult(900, {"loss": 0.9})))
    skip(Candidate("/model/ckpt-100", 100, EvalResult(100, {"loss": 0.49})))
    assert written == []
    files = version_files(BASE + 2, 200, 0.25, "/other/ckpt-200")
    for old in (exporter / str(BASE + 2)).glob(f"{METADATA_FILENAME}.sha256-*"):
        old.unlink()
    for name, data in files.items():
        if name.startswith(METADATA_FILENAME):
            (exporter / str(BASE + 2) / name).write_bytes(data)
    skip(Candidate("/model/ckpt-900", 900, EvalResult(900, {"loss": 0.3})))
    assert written == [INDEX_NAME]
    index = decode_index((exporter / INDEX_NAME).read_bytes())
    assert index is not None and index[str(BASE + 2)].checkpoint_path == "/other/ckpt-200"


@pytest.mark.parametrize("field", ["wall_time", "source"])
def test_a_record_strict_json_cannot_hold_fails_no_export(tmp_path: Path, field: str) -> None:
    """A committed record holding e.g. `"wall_time": NaN` (JSON's parser takes it; an earlier
    release's record has no checksum to catch the edit) fails no export. A wall time that
    is not a number is unknown (no decision reads it): indexed and shown as null; a source
    that is not a string makes the version invalid: reported, never compared."""
    import json

    from airflow_tf_export.core.exporter_index import decode_index
    from airflow_tf_export.storage.export_flow import export_with_strategy

    exporter = tmp_path / "export" / "latest"
    write_version(exporter, BASE + 1, 100, None)
    edited = exporter / str(BASE + 2)
    write_version(exporter, BASE + 2, 200, 0.5)
    record = json.loads((edited / METADATA_FILENAME).read_bytes())
    record["eval_result"][field] = math.nan
    for checksum in edited.glob(f"{METADATA_FILENAME}.sha256-*"):
        checksum.unlink()
    (edited / METADATA_FILENAME).write_text(json.dumps(record))
    storage = LocalStorage()

    def never_written(directory: Path) -> None:
        raise AssertionError(f"a skip wrote {directory}")

    step = 200 if field == "wall_time" else 100
    outcome = export_with_strategy(
        ExporterDir(storage, str(exporter)),
        LatestStrategy(name="latest"),
        Candidate(f"/model/ckpt-{step}", step),
        never_written,  # type: ignore[arg-type]
    )
    shown = json.loads(json.dumps(outcome.to_dict(), allow_nan=False))
    index = decode_index((exporter / INDEX_NAME).read_bytes())
    assert index is not None
    if field == "wall_time":
        assert outcome.decision.existing_version == BASE + 2
        assert shown["metadata"]["eval_result"]["wall_time"] is None
        assert sorted(index) == [str(BASE + 1), str(BASE + 2)]
    else:
        assert (outcome.exported, outcome.decision.existing_version) == (False, BASE + 1)
        assert [v for v, _why in outcome.retention.invalid] == [BASE + 2]
        assert "'source' must be a string or null, got nan" in outcome.retention.invalid[0][1]
        assert sorted(index) == [str(BASE + 1)]


def test_the_newest_committed_version_is_found_above_a_record_read_in_full(
    tmp_path: Path,
) -> None:
    """An older version whose record changed is read in full, the newer ones stay indexed:
    the newest is still the highest version that checks out."""
    exporter = tmp_path / "export" / "latest"
    for i in range(1, 4):
        write_version(exporter, BASE + i, i * 100, None)
    storage = LocalStorage()
    ExporterDir(storage, str(exporter)).write_index(ExporterDir(storage, str(exporter)).scan())
    (exporter / str(BASE + 1) / METADATA_FILENAME).touch()
    (exporter / str(BASE + 3) / "variables" / "variables.data-00000-of-00001").unlink()
    state = ExporterDir(storage, str(exporter)).scan_indexed()
    assert [m.version for m in state.committed] == [BASE + 1]
    assert set(state.indexed) == {BASE + 2, BASE + 3}
    newest = ExporterDir(storage, str(exporter)).newest_committed()
    assert newest is not None and newest.version == BASE + 2


def test_an_export_reads_only_the_records_deciding_it_before_and_after_writing(
    tmp_path: Path,
) -> None:
    """The decision under the lock after the SavedModel is written lists the dir again but
    takes every version the first decision found from it: only the records deciding it are
    read, twice each (once per decision), whatever the number of versions."""
    from airflow_tf_export.storage.base import WrittenModel
    from airflow_tf_export.storage.export_flow import export_with_strategy

    exporter = tmp_path / "export" / "latest"
    for i in range(20):
        write_version(exporter, BASE + i, i * 100, None)
    ExporterDir(LocalStorage(), str(exporter)).write_index(
        ExporterDir(LocalStorage(), str(exporter)).scan()
    )
    reads: list[str] = []

    class Counting(LocalStorage):
        def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
            if Path(uri).name == METADATA_FILENAME:
                reads.append(Path(uri).parent.name)
            return super().read_bytes(uri, start, end)

    def write(directory: Path) -> WrittenModel:
        (directory / "saved_model.pb").write_bytes(b"graph")
        return WrittenModel()

    outcome = export_with_strategy(
        ExporterDir(Counting(), str(exporter)),
        LatestStrategy(name="latest", exports_to_keep=None),
        Candidate("/model/ckpt-5000", 5000),
        write,
        now_seconds=BASE + 100,
    )
    assert outcome.exported
    assert reads == [str(BASE + 19)] * 2


def test_retention_drops_the_rows_of_the_versions_it_deletes(tmp_path: Path) -> None:
    """The rows of the versions that stay are the ones the index held; the deleted
    versions' rows go with them."""
    from airflow_tf_export.core.exporter_index import decode_index
    from airflow_tf_export.core.retention import KeepNewest, plan_retention

    exporter = tmp_path / "export" / "latest"
    for i in range(4):
        write_version(exporter, BASE + i, i * 100, None)
    storage = LocalStorage()
    ExporterDir(storage, str(exporter)).write_index(ExporterDir(storage, str(exporter)).scan())
    _state, plan = ExporterDir(storage, str(exporter)).retain(
        lambda state: plan_retention(state.committed, [KeepNewest(2)])
    )
    assert plan.delete_versions == (BASE, BASE + 1)
    index = decode_index((exporter / INDEX_NAME).read_bytes())
    assert index is not None and set(index) == {str(BASE + 2), str(BASE + 3)}
