"""Manifests: CRC32C format, building from a directory, comparing with listings and bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.metadata import ManifestEntry
from airflow_tf_export.storage import StorageError, VersionIntegrityError
from airflow_tf_export.storage.manifest import (
    LOCAL_READ_BYTES,
    build_manifest,
    check_publishable,
    crc32c_hex,
    file_crc32c,
    manifest_mismatch,
    verify_files,
)


def test_crc32c_matches_the_published_check_value() -> None:
    # RFC 3720 (iSCSI) check value for "123456789" is 0xE3069283.
    assert crc32c_hex(b"123456789") == "e3069283"
    assert crc32c_hex(b"") == "00000000"


@given(st.binary(max_size=5000))
def test_file_and_memory_checksums_agree(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("crc") / "f"
    path.write_bytes(data)
    assert file_crc32c(path) == crc32c_hex(data)


def test_a_file_of_several_reads_has_the_checksum_of_its_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * (LOCAL_READ_BYTES // 256 * 2 + 3)
    (tmp_path / "f").write_bytes(data)
    assert file_crc32c(tmp_path / "f") == crc32c_hex(data)


def test_build_manifest_lists_every_file_with_posix_paths(tmp_path: Path) -> None:
    (tmp_path / "variables").mkdir()
    (tmp_path / "saved_model.pb").write_bytes(b"pb")
    (tmp_path / "variables" / "variables.index").write_bytes(b"index!")
    assert build_manifest(tmp_path) == (
        ManifestEntry("saved_model.pb", 2, crc32c_hex(b"pb")),
        ManifestEntry("variables/variables.index", 6, crc32c_hex(b"index!")),
    )


def test_check_publishable_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        check_publishable(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="is a file, expected a directory"):
        check_publishable(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match=r"neither saved_model\.pb nor saved_model\.pbtxt"):
        check_publishable(tmp_path / "empty")
    (tmp_path / "empty" / "saved_model.pbtxt").write_text("meta_graphs {}")
    check_publishable(tmp_path / "empty")


MANIFEST = (ManifestEntry("a", 1, "00000000"), ManifestEntry("b/c", 2, "00000000"))


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"a": 1, "b/c": 2}, None),
        ({"a": 1}, "file 'b/c' in the manifest is missing"),
        ({"a": 1, "b/c": 2, "x": 0}, "file 'x' is not in the manifest"),
        ({"a": 1, "b/c": 3}, "file 'b/c' has 3 bytes, the manifest says 2"),
    ],
)
def test_manifest_mismatch_by_name_and_size(sizes: dict[str, int], message: str | None) -> None:
    found = manifest_mismatch(MANIFEST, sizes)
    assert found == message if message is None else message in (found or "")


def test_verify_files_names_the_first_file_whose_bytes_differ() -> None:
    files = {"a": b"x", "b": b"yy"}
    manifest = [ManifestEntry(name, len(data), crc32c_hex(data)) for name, data in files.items()]
    verify_files("gs://b/v/1", manifest, lambda path: [files[path]])
    files["b"] = b"yz"
    with pytest.raises(VersionIntegrityError, match=r"gs://b/v/1/b does not match its manifest"):
        verify_files("gs://b/v/1", manifest, lambda path: [files[path][:1], files[path][1:]])
