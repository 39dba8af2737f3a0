"""`export_metadata.json`: the record that makes a version directory a committed version.

A version is committed when this file exists and its manifest matches the files beside it.
Best-state, retention, listing and idempotency all read only this record (there is no other
shared state), so its schema is the on-disk contract of the product.

The record's own checksum is the name of an empty sibling file,
`export_metadata.json.sha256-<SHA-256 of the record's bytes>`, written before the record (so
the record stays the commit point) and read from the directory listing a scan makes anyway:
a record edited by hand no longer matches it. Records written by earlier releases have no
such sibling; they count as committed, unchecked.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from airflow_tf_export.core.eval_result import EvalFacts, EvalResult
from airflow_tf_export.core.validation import ValidationRecord

METADATA_FILENAME = "export_metadata.json"
METADATA_CHECKSUM_PREFIX = f"{METADATA_FILENAME}.sha256-"
FORMAT = "airflow-tf-export/1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class MetadataError(ValueError):
    """`export_metadata.json` is missing a field, has a wrong type, is not JSON, or does not
    match its checksum."""


def metadata_checksum_name(record: bytes) -> str:
    """The name of the checksum sibling of a record with these exact bytes."""
    return f"{METADATA_CHECKSUM_PREFIX}{hashlib.sha256(record).hexdigest()}"


def is_metadata_checksum_name(name: str) -> bool:
    """Whether a file name is (or poses as) a record's checksum sibling."""
    return name.startswith(METADATA_CHECKSUM_PREFIX)


def check_metadata_checksum(record: bytes, names: Iterable[str], source: str) -> str | None:
    """The checksum sibling among `names` (the version dir's files) that matches `record`,
    or None when there is none (a record of an earlier release). MetadataError, naming
    `source`, when a checksum file does not match (the record was edited after publishing)
    or there are several."""
    checksums = sorted(n for n in names if is_metadata_checksum_name(n))
    if not checksums:
        return None
    if len(checksums) > 1:
        raise MetadataError(
            f"{source} has {len(checksums)} checksum files ({', '.join(checksums)}), expected one"
        )
    (found,) = checksums
    expected = metadata_checksum_name(record)
    if found != expected:
        digest = found[len(METADATA_CHECKSUM_PREFIX) :]
        recorded = f"SHA-256 {digest}" if _SHA256.fullmatch(digest) else f"the name {found!r}"
        raise MetadataError(
            f"{source} does not match its checksum file: it has SHA-256 "
            f"{expected[len(METADATA_CHECKSUM_PREFIX) :]}, the file records {recorded}; the "
            "record was changed after it was published"
        )
    return found


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a published version: relative path (with `/`), size and CRC32C (8 hex digits)."""

    path: str
    size: int
    crc32c: str


@dataclass(frozen=True)
class Lineage:
    """The Airflow task instance that published a version."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1


class VersionFacts(Protocol):
    """What decisions read of every committed version: an `ExportMetadata`, or a row of the
    exporter dir's index (`core.exporter_index.IndexedVersion`) not yet checked in full."""

    @property
    def version(self) -> int:
        """The version number."""
        ...

    @property
    def checkpoint_path(self) -> str:
        """The checkpoint the version was exported from."""
        ...

    @property
    def global_step(self) -> int:
        """The checkpoint's global step."""
        ...

    @property
    def eval_result(self) -> EvalFacts | None:
        """The eval result recorded with the version, if any."""
        ...


def same_facts(left: VersionFacts, right: VersionFacts) -> bool:
    """Whether two reads of a version agree on all that a decision reads of it: its number,
    checkpoint, global step, and its eval result's step and metrics (a NaN metric equals
    a NaN)."""
    if (left.version, left.checkpoint_path, left.global_step) != (
        right.version,
        right.checkpoint_path,
        right.global_step,
    ):
        return False
    found, other = left.eval_result, right.eval_result
    if found is None or other is None:
        return found is other
    return found.step == other.step and _same_metrics(found.metrics, other.metrics)


def _same_metrics(left: Mapping[str, float], right: Mapping[str, float]) -> bool:
    return left.keys() == right.keys() and all(
        left[k] == right[k] or (math.isnan(left[k]) and math.isnan(right[k])) for k in left
    )


@dataclass(frozen=True)
class ExportMetadata:
    """Everything known about one published version."""

    exporter: str
    strategy: str
    version: int
    checkpoint_path: str
    global_step: int
    created_at: str
    eval_result: EvalResult | None = None
    reason: str = ""
    tags: tuple[str, ...] = ("serve",)
    signature_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lineage: Lineage | None = None
    manifest: tuple[ManifestEntry, ...] = ()
    validation: ValidationRecord | None = None

    def with_publication(self, version: int, manifest: Sequence[ManifestEntry]) -> ExportMetadata:
        """The same record, completed with the version and manifest chosen at publish time."""
        return replace(
            self, version=version, manifest=tuple(sorted(manifest, key=lambda e: e.path))
        )

    def to_json(self) -> str:
        """Stable, human-readable JSON (sorted keys, indented)."""
        payload: dict[str, Any] = {
            "format": FORMAT,
            "exporter": self.exporter,
            "strategy": self.strategy,
            "version": self.version,
            "checkpoint_path": self.checkpoint_path,
            "global_step": self.global_step,
            "created_at": self.created_at,
            "eval_result": self.eval_result.to_dict() if self.eval_result else None,
            "reason": self.reason,
            "tags": list(self.tags),
            "signature_keys": {k: list(v) for k, v in sorted(self.signature_keys.items())},
            "lineage": None if self.lineage is None else vars(self.lineage).copy(),
            "manifest": [vars(e).copy() for e in self.manifest],
        }
        if self.validation is not None:
            payload["validation"] = self.validation.to_dict()
        return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = METADATA_FILENAME) -> ExportMetadata:
        """Parse and validate; MetadataError names `source` and the bad field."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MetadataError(f"{source} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise MetadataError(f"{source} must hold a JSON object, got {type(data).__name__}")
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise MetadataError(f"{source} is not valid export metadata: {err}") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> ExportMetadata:
        if data.get("format") != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
        eval_result = data.get("eval_result")
        lineage = data.get("lineage")
        validation = data.get("validation")
        return cls(
            exporter=_typed(data, "exporter", str),
            strategy=_typed(data, "strategy", str),
            version=_typed(data, "version", int),
            checkpoint_path=_typed(data, "checkpoint_path", str),
            global_step=_typed(data, "global_step", int),
            created_at=_typed(data, "created_at", str),
            eval_result=(
                None
                if eval_result is None
                else EvalResult.from_dict(_mapping(eval_result, "eval_result"))
            ),
            reason=str(data.get("reason", "")),
            tags=_strings(data.get("tags", ["serve"]), "tags"),
            signature_keys={
                str(tag): _strings(keys, f"signature_keys.{tag}")
                for tag, keys in _mapping(data.get("signature_keys", {}), "signature_keys").items()
            },
            lineage=None if lineage is None else Lineage(**_mapping(lineage, "lineage")),
            manifest=tuple(
                ManifestEntry(
                    path=_typed(e, "path", str),
                    size=_typed(e, "size", int),
                    crc32c=_typed(e, "crc32c", str),
                )
                for e in data["manifest"]
            ),
            validation=(
                None
                if validation is None
                else ValidationRecord.from_dict(_mapping(validation, "validation"))
            ),
        )


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise KeyError(f"missing field {key!r}")
    value = data[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise TypeError(f"field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"field {key!r} must be an object, got {value!r}")
    return value


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"field {key!r} must be a list of strings, got {value!r}")
    return tuple(value)
