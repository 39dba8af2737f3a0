"""SavedModel-shaped directories of plain files (no TensorFlow): what storage tests publish.

The layout is a real SavedModel's: `saved_model.pb`, sharded `variables/`, `assets/` and
`assets.extra/`. Contents differ per step so a version can be traced to its checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.storage import Storage, WrittenModel

VARIABLE_SHARDS = 12
NOW = 1_800_000_000


def model_file_names(shards: int = VARIABLE_SHARDS) -> list[str]:
    """Relative paths of the files `write_model_files` writes (saved_model.pb last)."""
    names = ["variables/variables.index"]
    names += [f"variables/variables.data-{i:05d}-of-{shards:05d}" for i in range(shards)]
    names += [f"assets/vocab-{i}.txt" for i in range(4)]
    names += ["assets.extra/tf_serving_warmup_requests", "fingerprint.pb", "saved_model.pb"]
    return names


def variable_file_names(shards: int = VARIABLE_SHARDS) -> list[str]:
    """The files a `saved_model.pb` needs beside it to load."""
    return [n for n in model_file_names(shards) if n.startswith("variables/")]


def write_model_files(
    directory: Path,
    step: int,
    *,
    shards: int = VARIABLE_SHARDS,
    delay_seconds: float = 0.0,
) -> WrittenModel:
    """Write a SavedModel-shaped tree for `step` (sleeping `delay_seconds` after each file,
    to widen the window a crash test can hit); return what a SavedModel writer returns."""
    for index, name in enumerate(model_file_names(shards)):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{name} of step {step}\n".encode() * (1 + index * 37))
        if delay_seconds:
            time.sleep(delay_seconds)
    return WrittenModel(tags=("serve",), signature_keys={"serve": ("serving_default",)})


def template(step: int, exporter: str = "latest") -> ExportMetadata:
    """Metadata as a caller hands it to publish_version (version and manifest filled there)."""
    return ExportMetadata(
        exporter=exporter,
        strategy="latest",
        version=0,
        checkpoint_path=f"/model/ckpt-{step}",
        global_step=step,
        created_at="2027-01-15T08:00:00Z",
    )


@dataclass(frozen=True)
class Backend:
    """A storage backend and a fresh, not yet existing root directory URI in it."""

    name: str
    storage: Storage
    root: str

    def uri(self, *parts: str) -> str:
        """A URI below the root."""
        return self.storage.join(self.root, *parts)

    def publish(self, exporter_uri: str, step: int, now: int = NOW) -> ExportMetadata:
        """Write a SavedModel-shaped tree for `step` and publish it."""
        with self.storage.staging_dir(exporter_uri) as staging:
            write_model_files(staging, step)
            return self.storage.publish_version(
                staging, exporter_uri, template(step), now_seconds=now
            )
