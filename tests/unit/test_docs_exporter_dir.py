"""docs/exporter-dir.md stays true: its example prints what the page shows for the dir it
describes (a version of an earlier release, one of this release, a user's copy in `42/`),
and the names it documents are the ones the code uses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from airflow_tf_export.core.metadata import METADATA_CHECKSUM_PREFIX, ExportMetadata
from airflow_tf_export.core.ownership import CLAIM_PREFIX, DELETE_MARKER, STAGING_NAME_PREFIX
from airflow_tf_export.storage.base import EXPORTER_LOCK_NAME
from airflow_tf_export.storage.local import LocalStorage

PAGE = Path(__file__).resolve().parents[2] / "docs" / "exporter-dir.md"
DOC_URI = "/data/models/ctr/export/best"
NOW = 1_800_000_000


def _publish(uri: str, source: Path, step: int, now: int) -> ExportMetadata:
    (source / "variables").mkdir(parents=True)
    (source / "variables" / "variables.index").write_bytes(f"index {step}".encode())
    (source / "saved_model.pb").write_bytes(f"graph {step}".encode())
    template = ExportMetadata(
        exporter="best",
        strategy="best",
        version=0,
        checkpoint_path=f"/data/models/ctr/model.ckpt-{step}",
        global_step=step,
        created_at="2027-01-15T08:00:00Z",
    )
    return LocalStorage().publish_version(source, uri, template, now_seconds=now)


def test_the_example_prints_what_the_page_shows(tmp_path: Path) -> None:
    uri = str(tmp_path / "export" / "best")
    old = _publish(uri, tmp_path / "a", 100, NOW)
    new = _publish(uri, tmp_path / "b", 200, NOW + 60)
    old_dir = Path(uri, str(old.version))
    (checksum,) = old_dir.glob(f"{METADATA_CHECKSUM_PREFIX}*")
    checksum.unlink()  # as an earlier release published it
    (Path(uri) / "42").mkdir()
    (Path(uri) / "42" / "export_metadata.json").write_text(new.to_json())

    text = PAGE.read_text()
    (example,) = re.findall(r"```python\n(.*?)```", text, re.S)
    (shown,) = re.findall(r"it prints\n\n```text\n(.*?)```", text, re.S)
    out = subprocess.run(
        [sys.executable, "-c", example.replace(DOC_URI, uri)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.replace(uri, DOC_URI) == shown


def test_the_layout_names_the_code_uses() -> None:
    (layout,) = re.findall(r"```\nexport/<exporter>/\n(.*?)```", PAGE.read_text(), re.S)
    for name in (
        EXPORTER_LOCK_NAME,
        METADATA_CHECKSUM_PREFIX + "<64 hex>",
        STAGING_NAME_PREFIX + "<32 hex>/",
        CLAIM_PREFIX + "<version>",
        DELETE_MARKER,
    ):
        assert name in layout
