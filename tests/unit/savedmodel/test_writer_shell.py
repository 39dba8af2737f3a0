"""write_saved_model's shell around any ExportDefinition: it checks the shared arguments,
hands the normalised modes to the definition, copies assets_extra and leaves export_dir as
it found it when the definition's write fails. The definition here is a plain Python one
that writes files (no TensorFlow: the shell is the same for every kind)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from airflow_tf_export.savedmodel.definition import ExportDefinition, resolve_definition
from airflow_tf_export.savedmodel.errors import DefinitionError
from airflow_tf_export.savedmodel.writer import write_saved_model
from airflow_tf_export.storage.base import WrittenModel


class FileDefinition:
    """Writes `saved_model.pb` and `variables/`; fails after writing when told to."""

    keras_weights = False

    def __init__(self, *, fail: bool = False, refuse: str | None = None) -> None:
        self.fail = fail
        self.refuse = refuse
        self.calls: list[tuple[str, ...]] = []

    def check_modes(self, modes: Iterable[str]) -> None:
        if self.refuse in modes:
            raise DefinitionError(f"cannot export mode {self.refuse!r}")

    def write(
        self, checkpoint_path: str, export_dir: Path, modes: tuple[str, ...], *, as_text: bool
    ) -> WrittenModel:
        self.calls.append(modes)
        (export_dir / "variables").mkdir(parents=True, exist_ok=True)
        (export_dir / ("saved_model.pbtxt" if as_text else "saved_model.pb")).write_text("x")
        if self.fail:
            raise RuntimeError("write failed")
        return WrittenModel(tags=modes, checkpoint_path=checkpoint_path, global_step=7)


@pytest.fixture
def checkpoint(tmp_path: Path) -> str:
    (tmp_path / "model.ckpt-7.index").write_bytes(b"")
    return str(tmp_path / "model.ckpt-7")


def test_a_plain_object_with_the_protocol_is_a_definition() -> None:
    definition = FileDefinition()
    assert isinstance(definition, ExportDefinition)
    assert resolve_definition(definition) is definition
    with pytest.raises(TypeError, match="resolve it first"):
        write_saved_model(FileDefinition, "ckpt", Path("unused"))  # type: ignore[arg-type]


def test_modes_are_normalised_and_assets_extra_copied(checkpoint: str, tmp_path: Path) -> None:
    extra = tmp_path / "vocab.txt"
    extra.write_text("a\nb\n")
    definition = FileDefinition()
    export_dir = tmp_path / "export"
    written = write_saved_model(
        definition,
        checkpoint,
        export_dir,
        modes=["infer", "train", "serve"],
        assets_extra={"sub/vocab.txt": str(extra)},
        as_text=True,
    )
    assert definition.calls == [("train", "serve")]
    assert written.tags == ("train", "serve")
    assert (export_dir / "assets.extra" / "sub" / "vocab.txt").read_text() == "a\nb\n"
    assert (export_dir / "saved_model.pbtxt").exists()


@pytest.mark.parametrize("existed", [False, True])
def test_a_failing_write_leaves_export_dir_as_it_was(
    checkpoint: str, tmp_path: Path, existed: bool
) -> None:
    export_dir = tmp_path / "export"
    if existed:
        export_dir.mkdir()
    with pytest.raises(RuntimeError, match="write failed"):
        write_saved_model(FileDefinition(fail=True), checkpoint, export_dir)
    assert export_dir.exists() == existed
    if existed:
        assert list(export_dir.iterdir()) == []


def test_bad_shared_arguments_are_refused_before_the_definition_writes(
    checkpoint: str, tmp_path: Path
) -> None:
    definition = FileDefinition(refuse="eval")
    with pytest.raises(DefinitionError, match="cannot export mode 'eval'"):
        write_saved_model(definition, checkpoint, tmp_path / "a", modes=("eval",))
    with pytest.raises(ValueError, match="unknown export mode 'predict'"):
        write_saved_model(definition, checkpoint, tmp_path / "b", modes=("predict",))
    with pytest.raises(ValueError, match=r"assets_extra destination '\.\./x'"):
        write_saved_model(definition, checkpoint, tmp_path / "c", assets_extra={"../x": checkpoint})
    with pytest.raises(ValueError, match="no checkpoint at"):
        write_saved_model(definition, str(tmp_path / "missing"), tmp_path / "d")
    assert definition.calls == []
    assert not any((tmp_path / name).exists() for name in "abcd")
