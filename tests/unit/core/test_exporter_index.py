"""The exporter dir's index file: rows round-trip; a damaged or foreign file is never used."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_tf_export.core.exporter_index import (
    IndexedVersion,
    decode_index,
    encode_index,
)
from airflow_tf_export.core.metadata import ExportMetadata, ManifestEntry, same_facts

from .factories import BASE_VERSION, make_meta

rows = st.dictionaries(
    st.integers(1, 2**63 - 1),
    st.tuples(
        st.text(min_size=1, max_size=20),
        st.none() | st.dictionaries(st.text(max_size=5), st.floats() | st.sampled_from([math.nan])),
        st.integers(0, 2**40),
        st.text(min_size=1, max_size=30),
    ),
    max_size=20,
)


def _indexed(drawn: dict[int, tuple[str, object, int, str]]) -> dict[int, IndexedVersion]:
    return {
        v: IndexedVersion.of(stamp, make_meta(v, step=step, metrics=found, checkpoint_path=path))  # type: ignore[arg-type]
        for v, (stamp, found, step, path) in drawn.items()
    }


def _same(left: dict[str, IndexedVersion] | None, right: dict[int, IndexedVersion]) -> bool:
    """Equal, NaN metrics included (NaN != NaN): the same names, stamps and summaries (the
    encoding is canonical: metrics sorted)."""
    return (
        left is not None
        and left.keys() == {str(v) for v in right}
        and encode_index(left.values()) == encode_index(right.values())
    )


@settings(max_examples=200, deadline=None)
@given(rows)
def test_rows_round_trip(drawn: dict[int, tuple[str, object, int, str]]) -> None:
    indexed = _indexed(drawn)
    assert _same(decode_index(encode_index(indexed.values())), indexed)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_a_decoded_row_reads_as_the_record_it_was_made_of(
    drawn: dict[int, tuple[str, object, int, str]],
) -> None:
    """What decisions and retention read of a row (its facts, eval result, summary) is what
    the record held, NaN metrics included."""
    records = {
        v: make_meta(
            v,
            step=step,
            metrics=found,  # type: ignore[arg-type]
            checkpoint_path=path,
            created_at=f"t{v}",
            exporter=f"e{v}",
        )
        for v, (_stamp, found, step, path) in drawn.items()
    }
    records = {
        v: m
        if m.eval_result is None
        else replace(m, eval_result=replace(m.eval_result, wall_time=v / 2, source=f"s{v}"))
        for v, m in records.items()
    }
    decoded = decode_index(
        encode_index(IndexedVersion.of(drawn[v][0], m) for v, m in records.items())
    )
    assert decoded is not None
    for version, (stamp, _found, _step, _path) in drawn.items():
        row = decoded[str(version)]
        meta = records[version]
        assert (row.version, row.stamp) == (version, stamp)
        assert (row.checkpoint_path, row.global_step) == (meta.checkpoint_path, meta.global_step)
        summary = row.summary
        assert same_facts(row, meta) and same_facts(summary, meta)
        kept = ("exporter", "strategy", "version", "checkpoint_path", "global_step", "created_at")
        assert all(getattr(summary, name) == getattr(meta, name) for name in kept)
        assert encode_index([IndexedVersion.of(stamp, summary)]) == encode_index([row])
        if meta.eval_result is None:
            assert row.eval_result is None and summary.eval_result is None
        else:
            assert row.eval_result is not None and summary.eval_result is not None
            assert summary.eval_result.to_dict() == meta.eval_result.to_dict()
            assert row.eval_result.step == meta.eval_result.step


@settings(max_examples=200, deadline=None)
@given(rows, st.data())
def test_any_changed_byte_makes_the_index_unusable(
    drawn: dict[int, tuple[str, object, int, str]], data: st.DataObject
) -> None:
    encoded = bytearray(encode_index(_indexed(drawn).values()))
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[at]))
    assert decode_index(bytes(encoded)) is None
    assert decode_index(bytes(encoded[: data.draw(st.integers(0, len(encoded) - 1))])) is None


def test_a_file_that_is_not_an_index_is_not_used() -> None:
    for data in (b"", b"{}", b"not json", b'{"format": "airflow-tf-export-index/2"}'):
        assert decode_index(data) is None


@pytest.mark.parametrize(
    "body",
    [
        b'[[1,"stamp","e","s","/ckpt",true,"2026-01-01T00:00:00Z",null]]',
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z"]]',
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z",[5,{"loss":"low"},null,null,null]]]',
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z",[5,{"loss":[1]},null,null,null]]]',
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z",[5.0,{},null,null,null]]]',
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z",[5,[],null,null,null]]]',
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z",[5,{}]]]',
        b'[{"version":1}]',
    ],
)
def test_rows_of_the_wrong_shape_are_not_used_even_with_a_matching_digest(body: bytes) -> None:
    digest = hashlib.sha256(body).hexdigest()
    head = f'{{"format": "airflow-tf-export-index/1", "sha256": "{digest}", "rows": '.encode()
    good = (
        b'[[1,"stamp","e","s","/ckpt",5,"2026-01-01T00:00:00Z",[5,{"loss":"NaN"},null,null,null]]]'
    )
    good_head = head.replace(digest.encode(), hashlib.sha256(good).hexdigest().encode())
    assert decode_index(good_head + good + b"}\n") is not None
    assert decode_index(head + body + b"}\n") is None


def test_the_summary_keeps_what_decisions_and_retention_read() -> None:
    full = ExportMetadata(
        **{
            **vars(make_meta(BASE_VERSION, step=7, metrics={"loss": 0.5})),
            "reason": "why",
            "manifest": (ManifestEntry("saved_model.pb", 3, "00000000"),),
        }
    )
    summary = IndexedVersion.of("stamp", full).summary
    kept = ("exporter", "strategy", "version", "checkpoint_path", "global_step", "created_at")
    assert all(getattr(summary, name) == getattr(full, name) for name in kept)
    assert summary.eval_result == full.eval_result
    assert (summary.manifest, summary.reason) == ((), "")
