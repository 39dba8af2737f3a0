"""export_metadata.json: stable round trips and clear errors naming the source and the field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import (
    FORMAT,
    ExportMetadata,
    Lineage,
    ManifestEntry,
    MetadataError,
)

from .factories import BASE_VERSION, make_meta

texts = st.text(max_size=12)
manifest_entries = st.builds(
    ManifestEntry,
    path=st.from_regex(r"[a-z]{1,5}(/[a-z.]{1,5}){0,2}", fullmatch=True),
    size=st.integers(0, 2**40),
    crc32c=st.from_regex(r"[0-9a-f]{8}", fullmatch=True),
)
finite_results = st.builds(
    EvalResult,
    step=st.integers(0, 10**9),
    metrics=st.dictionaries(st.sampled_from(["loss", "auc", "accuracy"]), st.floats(-1e6, 1e6)),
)
records = st.builds(
    ExportMetadata,
    exporter=texts,
    strategy=st.sampled_from(["final", "latest", "best"]),
    version=st.integers(1, 10**11),
    checkpoint_path=texts,
    global_step=st.integers(0, 10**12),
    created_at=st.just("2026-11-20T12:00:00Z"),
    eval_result=st.one_of(st.none(), finite_results),
    reason=texts,
    tags=st.lists(texts, max_size=3).map(tuple),
    signature_keys=st.dictionaries(texts, st.lists(texts, max_size=2).map(tuple), max_size=2),
    lineage=st.one_of(
        st.none(), st.builds(Lineage, texts, texts, texts, st.integers(1, 9), st.integers(-1, 9))
    ),
    manifest=st.lists(manifest_entries, max_size=4, unique_by=lambda e: e.path).map(
        lambda entries: tuple(sorted(entries, key=lambda e: e.path))
    ),
)


@given(records)
def test_round_trip(record: ExportMetadata) -> None:
    text = record.to_json()
    assert ExportMetadata.from_json(text) == record
    assert ExportMetadata.from_json(text.encode()) == record
    assert ExportMetadata.from_json(text).to_json() == text


def test_non_finite_metrics_survive_the_strict_json() -> None:
    record = make_meta(BASE_VERSION, step=3, metrics={"loss": math.nan, "auc": math.inf})
    back = ExportMetadata.from_json(record.to_json())
    assert back.eval_result is not None
    assert math.isnan(back.eval_result.metrics["loss"])
    assert back.eval_result.metrics["auc"] == math.inf


def test_with_publication_sets_the_version_and_sorts_the_manifest() -> None:
    entries = [
        ManifestEntry("variables/x", 2, "0000000b"),
        ManifestEntry("saved_model.pb", 1, "0000000a"),
    ]
    published = make_meta(0, step=1).with_publication(BASE_VERSION, entries)
    assert published.version == BASE_VERSION
    assert [e.path for e in published.manifest] == ["saved_model.pb", "variables/x"]


def _payload(**changes: Any) -> str:
    data = json.loads(make_meta(BASE_VERSION, step=5, metrics={"loss": 0.5}).to_json())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not _DROP})


_DROP = object()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "v/export_metadata.json is not valid JSON"),
        (b"\xff\xfe", "v/export_metadata.json is not valid JSON"),
        ("[1, 2]", "v/export_metadata.json must hold a JSON object, got list"),
        (_payload(format="other/9"), "format must be 'airflow-tf-export/1', got 'other/9'"),
        (_payload(format=_DROP), "format must be 'airflow-tf-export/1', got None"),
        (_payload(version=_DROP), "missing field 'version'"),
        (_payload(version="17"), "field 'version' must be int, got '17'"),
        (_payload(version=True), "field 'version' must be int, got True"),
        (_payload(global_step=1.5), "field 'global_step' must be int, got 1.5"),
        (_payload(exporter=None), "field 'exporter' must be str, got None"),
        (_payload(manifest=_DROP), "not valid export metadata"),
        (
            _payload(manifest=[{"path": "a", "size": "1", "crc32c": "0"}]),
            "field 'size' must be int",
        ),
        (_payload(eval_result={"metrics": {}}), "eval result needs an integer 'step'"),
        (_payload(lineage={"dag_id": "d"}), "not valid export metadata"),
        (_payload(lineage="d"), "field 'lineage' must be an object, got 'd'"),
        (_payload(eval_result="0.3"), "field 'eval_result' must be an object, got '0.3'"),
        (_payload(eval_result=[1]), "field 'eval_result' must be an object, got [1]"),
        (_payload(signature_keys=[]), "field 'signature_keys' must be an object, got []"),
        (
            _payload(signature_keys={"serve": 5}),
            "field 'signature_keys.serve' must be a list of strings, got 5",
        ),
        (
            _payload(signature_keys={"serve": "serving_default"}),
            "field 'signature_keys.serve' must be a list of strings",
        ),
        (_payload(tags="serve"), "field 'tags' must be a list of strings, got 'serve'"),
    ],
)
def test_bad_metadata_names_the_source_and_the_problem(text: str | bytes, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        ExportMetadata.from_json(text, source="v/export_metadata.json")
    assert str(caught.value).startswith("v/export_metadata.json ")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_the_format_marker_is_written() -> None:
    assert json.loads(make_meta(BASE_VERSION).to_json())["format"] == FORMAT


def test_the_validation_record_round_trips_and_the_checksum_covers_it() -> None:
    from dataclasses import replace

    from airflow_tf_export.core.metadata import check_metadata_checksum, metadata_checksum_name
    from airflow_tf_export.core.validation import (
        OutputReport,
        SignatureRecord,
        ValidationRecord,
    )

    output = OutputReport("float32", (2,), "float32", (None,), digest="sha256:01")
    record = ValidationRecord(2, "generated", (SignatureRecord("serve", "predict", {"p": output}),))
    meta = replace(make_meta(BASE_VERSION), validation=record)
    text = meta.to_json()
    assert json.loads(text)["validation"]["signatures"][0]["outputs"]["p"]["shape"] == [2]
    assert ExportMetadata.from_json(text).to_json() == text
    edited = text.replace('"examples": 2', '"examples": 3').encode()
    with pytest.raises(MetadataError, match="does not match its checksum file"):
        check_metadata_checksum(edited, [metadata_checksum_name(text.encode())], "v/1")
    assert "validation" not in json.loads(make_meta(BASE_VERSION).to_json())
    bad = json.loads(text)
    bad["validation"]["source"] = "guessed"
    with pytest.raises(MetadataError, match=r"validation\.source"):
        ExportMetadata.from_json(json.dumps(bad))
