"""`write_saved_model`: a model definition plus a checkpoint -> a SavedModel in a local dir.

The single entry point for exporting, whatever kind of model definition (ExportDefinition)
it is given. Every argument is checked before anything is written; if writing fails,
`export_dir` is left as it was found (absent or empty). Publishing the directory (local
rename or GCS upload) is the storage layer's job, so what was written is reported as the
storage layer's WrittenModel.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from airflow_tf_export.savedmodel.assets_extra import copy_assets_extra, plan_assets_extra
from airflow_tf_export.savedmodel.checkpoint_paths import require_checkpoint
from airflow_tf_export.savedmodel.definition import ExportDefinition, is_definition
from airflow_tf_export.savedmodel.modes import normalize_modes
from airflow_tf_export.storage.base import WrittenModel
from airflow_tf_export.storage.confinement import AllowedRoots


def write_saved_model(
    definition: ExportDefinition,
    checkpoint_path: str,
    export_dir: Path,
    *,
    modes: Sequence[str] = ("serve",),
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
    allowed_roots: AllowedRoots | None = None,
) -> WrittenModel:
    """Write one SavedModel with a MetaGraphDef per mode into `export_dir`.

    `definition` is a resolved model definition (a ModelDefinition, an estimator.Estimator).
    `modes` are "train", "eval", "serve" (or the Estimator name "infer"); the MetaGraphDefs
    are written in that order and share one `variables/`. `export_dir` must not exist or be
    an empty directory. `as_text` writes saved_model.pbtxt instead of saved_model.pb.
    `allowed_roots` (when set) confines the `assets_extra` sources (symbolic links resolved).
    """
    if not is_definition(definition):
        raise TypeError(
            f"definition is a {type(definition).__name__}; resolve it first with "
            "resolve_definition()"
        )
    chosen = normalize_modes(modes)
    definition.check_modes(chosen)
    assets = plan_assets_extra(assets_extra, allowed_roots)
    export_dir = Path(export_dir)
    existed = _require_empty(export_dir)
    require_checkpoint(checkpoint_path)
    try:
        written = definition.write(checkpoint_path, export_dir, chosen, as_text=as_text)
        copy_assets_extra(assets, export_dir)
    except BaseException:
        _discard(export_dir, existed)
        raise
    return written


def _require_empty(export_dir: Path) -> bool:
    """Whether `export_dir` already existed; raise unless it is absent or an empty directory."""
    if not export_dir.exists():
        return False
    if not export_dir.is_dir() or any(export_dir.iterdir()):
        raise ValueError(f"export_dir {export_dir} must not exist or be an empty directory")
    return True


def _discard(export_dir: Path, existed: bool) -> None:
    if not export_dir.exists():
        return
    if existed:
        for entry in export_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    else:
        shutil.rmtree(export_dir)
