"""`assets_extra`: files copied into `<export>/assets.extra/`, checked before anything is written.

Keys are destinations relative to `assets.extra/` (they may contain sub-directories); values
are the local source files. A destination that is empty, absolute or contains `..` would
escape or clobber the SavedModel, so it is rejected, as is a source that is not a file.

A source that is a symbolic link is copied as the file it resolves to (Kubernetes mounts
ConfigMaps and Secrets as links); the copy is a regular file, the version holds no link. With
allowed roots set, the resolved file must lie under one of them: a link cannot smuggle
`/etc/shadow` into a published model.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from airflow_tf_export.storage.confinement import AllowedRoots

ASSETS_EXTRA_DIRECTORY = "assets.extra"


@dataclass(frozen=True)
class ExtraAsset:
    """One checked copy: source file (symbolic links resolved) -> destination relative to
    `assets.extra/`."""

    destination: PurePosixPath
    source: Path


def plan_assets_extra(
    assets_extra: Mapping[str, str] | None, allowed_roots: AllowedRoots | None = None
) -> tuple[ExtraAsset, ...]:
    """Check every destination and source; ValueError names the first bad entry, and
    `allowed_roots` (when set) refuses a source whose file lies outside them."""
    if assets_extra is None:
        return ()
    if not isinstance(assets_extra, Mapping):
        raise ValueError(
            f"assets_extra must be a mapping of destination to source, got {assets_extra!r}"
        )
    planned: dict[PurePosixPath, ExtraAsset] = {}
    for destination, source in assets_extra.items():
        relative = _destination(destination)
        if relative in planned:
            raise ValueError(
                f"assets_extra destination {destination!r} names the same file as another entry"
            )
        if not isinstance(source, str | Path) or not str(source):
            raise ValueError(
                f"assets_extra source for {destination!r} must be a local file path, got {source!r}"
            )
        planned[relative] = ExtraAsset(relative, _source(destination, source, allowed_roots))
    for relative in planned:
        for parent in relative.parents:
            if parent in planned:
                raise ValueError(
                    f"assets_extra destination {str(parent)!r} is a file, but "
                    f"{str(relative)!r} needs it to be a directory"
                )
    return tuple(planned.values())


def copy_assets_extra(assets: tuple[ExtraAsset, ...], export_dir: Path) -> None:
    """Copy the planned files under `export_dir/assets.extra/`."""
    for asset in assets:
        target = export_dir / ASSETS_EXTRA_DIRECTORY / asset.destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset.source, target)


def _source(destination: str, source: str | Path, allowed_roots: AllowedRoots | None) -> Path:
    """The file `source` resolves to, checked against the allowed roots first (so nothing
    outside them is even looked at)."""
    path = Path(source)
    if allowed_roots is not None:
        allowed_roots.check_local_file(path, f"copy into assets.extra/{destination}")
    if path.is_symlink() and not path.exists():
        raise ValueError(
            f"assets_extra source {str(source)!r} for {destination!r} is a symbolic link that "
            "does not resolve to a file (dangling, or a loop)"
        )
    if not path.is_file():
        raise ValueError(
            f"assets_extra source {str(source)!r} for {destination!r} is not an existing local "
            "file (copy gs:// files to local disk first)"
        )
    return Path(os.path.realpath(path))


def _destination(destination: object) -> PurePosixPath:
    if not isinstance(destination, str):
        raise ValueError(
            f"assets_extra destination {destination!r} must be a path string relative to "
            f"{ASSETS_EXTRA_DIRECTORY}/"
        )
    if not destination.strip():
        raise ValueError(f"assets_extra destination {destination!r} is empty")
    path = PurePosixPath(destination)
    if path.is_absolute() or PureWindowsPath(destination).is_absolute():
        raise ValueError(
            f"assets_extra destination {destination!r} is absolute; give a path relative "
            f"to {ASSETS_EXTRA_DIRECTORY}/"
        )
    if ".." in path.parts or "\\" in destination:
        raise ValueError(
            f"assets_extra destination {destination!r} contains '..' or a backslash; it must "
            f"stay inside {ASSETS_EXTRA_DIRECTORY}/"
        )
    if destination.endswith("/") or path.name in ("", "."):
        raise ValueError(f"assets_extra destination {destination!r} does not name a file")
    return path
