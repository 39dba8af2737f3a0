"""The savedmodel package's public names resolve lazily from their modules, all of them."""

from __future__ import annotations

import importlib

import pytest

import airflow_tf_export.savedmodel as savedmodel
from airflow_tf_export.savedmodel.writer import write_saved_model
from airflow_tf_export.storage.base import WrittenModel


@pytest.mark.parametrize("name", savedmodel.__all__)
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    value = getattr(savedmodel, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(savedmodel)


def test_re_exports_are_the_objects_of_their_modules() -> None:
    from airflow_tf_export.savedmodel import WrittenModel as exported_model
    from airflow_tf_export.savedmodel import write_saved_model as exported_writer

    assert exported_writer is write_saved_model
    assert exported_model is WrittenModel


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    module = importlib.import_module("airflow_tf_export.savedmodel")
    with pytest.raises(AttributeError, match="'no_such_name'"):
        module.no_such_name  # noqa: B018
