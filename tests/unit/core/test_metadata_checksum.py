"""The record's own checksum: the name of an empty sibling `export_metadata.json.sha256-<hex>`
matches the record's bytes; a record edited by hand no longer does; a record of an earlier
release (no sibling) passes unchecked."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.metadata import (
    METADATA_CHECKSUM_PREFIX,
    MetadataError,
    check_metadata_checksum,
    is_metadata_checksum_name,
    metadata_checksum_name,
)

from .factories import make_meta

SOURCE = "gs://b/m/export/best/1800000000/export_metadata.json"
RECORD = make_meta(1_800_000_000, step=5, metrics={"loss": 0.25}).to_json().encode()


def test_the_checksum_is_the_sha256_of_the_exact_bytes_in_a_sibling_name() -> None:
    name = metadata_checksum_name(RECORD)
    assert name == f"export_metadata.json.sha256-{hashlib.sha256(RECORD).hexdigest()}"
    assert is_metadata_checksum_name(name)
    assert check_metadata_checksum(RECORD, ["saved_model.pb", name], SOURCE) == name


def test_a_record_without_checksum_is_one_of_an_earlier_release() -> None:
    assert (
        check_metadata_checksum(RECORD, ["saved_model.pb", "export_metadata.json"], SOURCE) is None
    )


def test_a_hand_edited_loss_no_longer_matches() -> None:
    edited = json.loads(RECORD)
    edited["eval_result"]["metrics"]["loss"] = 0.01
    changed = json.dumps(edited, indent=2, sort_keys=True).encode()
    digest = hashlib.sha256(changed).hexdigest()
    recorded = hashlib.sha256(RECORD).hexdigest()
    with pytest.raises(MetadataError) as caught:
        check_metadata_checksum(changed, [metadata_checksum_name(RECORD)], SOURCE)
    assert str(caught.value) == (
        f"{SOURCE} does not match its checksum file: it has SHA-256 {digest}, the file records "
        f"SHA-256 {recorded}; the record was changed after it was published"
    )


def test_a_checksum_file_that_is_not_a_digest_or_several_of_them_are_errors() -> None:
    bogus = f"{METADATA_CHECKSUM_PREFIX}abc"
    with pytest.raises(MetadataError, match=f"the file records the name '{bogus}'"):
        check_metadata_checksum(RECORD, [bogus], SOURCE)
    with pytest.raises(MetadataError, match="has 2 checksum files"):
        check_metadata_checksum(RECORD, [metadata_checksum_name(RECORD), bogus], SOURCE)


@given(st.floats(0, 10), st.floats(0, 10))
def test_any_change_of_a_metric_is_caught(loss: float, edited_loss: float) -> None:
    original = make_meta(1_800_000_000, step=5, metrics={"loss": loss}).to_json().encode()
    edited = make_meta(1_800_000_000, step=5, metrics={"loss": edited_loss}).to_json().encode()
    sibling = metadata_checksum_name(original)
    assert check_metadata_checksum(original, [sibling], SOURCE) == sibling
    if edited != original:
        with pytest.raises(MetadataError, match="was changed after it was published"):
            check_metadata_checksum(edited, [sibling], SOURCE)
