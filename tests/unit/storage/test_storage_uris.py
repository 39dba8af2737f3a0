"""URI parsing: what is accepted, how it is normalised, and errors that name the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.names import validate_exporter_name
from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.storage.uris import StorageUri, exporter_uri, parse_pattern, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/model/export/", StorageUri("file", "", "/data/model/export")),
        ("/data//model/./export", StorageUri("file", "", "/data/model/export")),
        ("file:///data/model", StorageUri("file", "", "/data/model")),
        ("file://localhost/data/model", StorageUri("file", "", "/data/model")),
        ("gs://my-bucket", StorageUri("gs", "my-bucket", "")),
        ("gs://my-bucket/", StorageUri("gs", "my-bucket", "")),
        ("gs://my-bucket/model//export/", StorageUri("gs", "my-bucket", "model/export")),
    ],
)
def test_valid_uris_are_normalised(uri: str, expected: StorageUri) -> None:
    assert parse_uri(uri) == expected


def test_str_gives_back_a_canonical_uri() -> None:
    assert str(parse_uri("gs://b-1/a/b/")) == "gs://b-1/a/b"
    assert str(parse_uri("gs://b-1")) == "gs://b-1"
    assert str(parse_uri("file:///x/y")) == "/x/y"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://", r"'gs://' names no bucket"),
        ("gs:///model", r"'gs:///model' names no bucket"),
        ("gs://Bad_Bucket!/m", r"invalid bucket name 'Bad_Bucket!'"),
        ("gs://b-1/a/../b", r"must not contain '\.' or '\.\.'"),
        ("model/export", r"relative local path 'model/export' is not allowed"),
        ("./export", r"relative local path '\./export'"),
        ("s3://bucket/model", r"unsupported URI scheme 's3'"),
        ("file://host/data", r"must be file:///absolute/path"),
        ("", r"non-empty string"),
        ("/data/\x00x", r"NUL"),
    ],
)
def test_bad_uris_raise_value_error_naming_them(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_uri(uri)


def test_storage_for_picks_the_local_backend_without_importing_gcs() -> None:
    assert isinstance(storage_for("/tmp/model"), LocalStorage)
    assert isinstance(storage_for("file:///tmp/model"), LocalStorage)
    with pytest.raises(ValueError, match="names no bucket"):
        storage_for("gs://")


def test_a_backend_refuses_the_other_scheme() -> None:
    with pytest.raises(ValueError, match="local storage cannot handle the GCS URI"):
        LocalStorage().list_dir("gs://bucket/x")


# ---- '#' and '?': a fragment or a query names no directory -----------------------------


@pytest.mark.parametrize(
    ("uri", "mark", "meant"),
    [
        ("gs://bkt/models/run#2", "#", "gs://bkt/models/run"),
        ("gs://bkt/models/run#3", "#", "gs://bkt/models/run"),
        ("gs://bkt/models/run?generation=3", "?", "gs://bkt/models/run"),
        ("gs://bkt#x/models", "#", "gs://bkt"),
        ("gs://bkt/models/a?b#c", "?", "gs://bkt/models/a"),
        ("file:///data/run#A", "#", "file:///data/run"),
        ("file:///data/run?x=1", "?", "file:///data/run"),
        ("file://localhost/data/run#A", "#", "file://localhost/data/run"),
    ],
)
def test_a_uri_with_a_fragment_or_query_is_refused_naming_it(
    uri: str, mark: str, meant: str
) -> None:
    with pytest.raises(ValueError) as raised:
        parse_uri(uri)
    message = str(raised.value)
    part = "fragment" if mark == "#" else "query"
    assert f"{uri!r} contains {mark!r}, which starts a URI {part}" in message
    assert f"would name {meant!r}" in message


def test_the_gcs_error_says_how_to_name_such_a_directory() -> None:
    with pytest.raises(ValueError, match=r"use a prefix without '#' and '\?'"):
        parse_uri("gs://bkt/models/run#2")


def test_the_file_uri_error_points_at_the_plain_path() -> None:
    with pytest.raises(ValueError, match=r"give its plain absolute path '/data/run#A' instead"):
        parse_uri("file:///data/run#A")


def test_a_plain_absolute_path_is_literal_hash_and_question_mark_included(
    tmp_path: Path,
) -> None:
    """'#' and '?' are ordinary characters of a POSIX file name: a plain path keeps them and
    names exactly that directory, not its truncated sibling."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "other").write_bytes(b"wrong dir")
    odd = tmp_path / "run#A?x=1"
    odd.mkdir()
    (odd / "mine").write_bytes(b"right dir")
    assert parse_uri(str(odd)) == StorageUri("file", "", str(odd))
    storage = storage_for(str(odd))
    assert [e.name for e in storage.list_dir(str(odd))] == ["mine"]
    assert storage.glob(storage.join(str(odd), "m?n*")) == [str(odd / "mine")]


def test_a_glob_pattern_keeps_its_question_marks() -> None:
    assert parse_pattern("gs://b-1/m/eval/*.tfevents.?") == StorageUri(
        "gs", "b-1", "m/eval/*.tfevents.?"
    )
    assert parse_pattern("file:///m/eval/?.v2") == StorageUri("file", "", "/m/eval/?.v2")
    joined = GcsStorage(client=None).join("gs://b-1/m", "eval/events.?")
    assert joined == "gs://b-1/m/eval/events.?"
    with pytest.raises(ValueError, match="contains '#'"):
        GcsStorage(client=None).join("gs://b-1/m#2", "eval")


def test_an_exporter_name_cannot_hide_a_fragment_in_its_uri() -> None:
    """`best#2` would have published into `gs://b/m/export/best`, the dir of exporter `best`."""
    with pytest.raises(ValueError, match=r"invalid exporter name 'best#2': '#' and '\?'"):
        validate_exporter_name("best#2")
    with pytest.raises(ValueError, match="contains '#'"):
        exporter_uri("gs://bkt/m", "best", "gs://bkt/m/export/best#2")


_SEGMENT = st.text(alphabet="ab-_.#?%", min_size=1, max_size=5).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(_SEGMENT, min_size=1, max_size=4), st.lists(_SEGMENT, min_size=1, max_size=4))
def test_accepted_uris_never_collide(first: list[str], second: list[str]) -> None:
    """Two accepted gs:// or file:// URIs name the same directory only when their segments
    are the same; a URI with '#' or '?' is refused, never cut short."""
    for prefix in ("gs://bkt/", "file:///"):
        parsed = []
        for segments in (first, second):
            uri = prefix + "/".join(segments)
            if "#" in uri or "?" in uri:
                with pytest.raises(ValueError, match="which starts a URI"):
                    parse_uri(uri)
                continue
            parsed.append(parse_uri(uri))
            assert parse_uri(str(parsed[-1])) == parsed[-1]
        if len(parsed) == 2:
            assert (parsed[0] == parsed[1]) == (first == second)


@given(st.lists(_SEGMENT, min_size=1, max_size=4))
def test_plain_paths_are_taken_literally(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert parse_uri(path) == StorageUri("file", "", path)
