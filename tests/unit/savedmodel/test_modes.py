"""Mode names: canonical order, the Estimator alias `infer`, and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.savedmodel.modes import MODE_ORDER, normalize_modes


@given(st.lists(st.sampled_from(["train", "eval", "serve", "infer"]), min_size=1, max_size=6))
def test_modes_come_out_once_each_in_estimator_order(modes: list[str]) -> None:
    normalized = normalize_modes(modes)
    expected = {"serve" if mode == "infer" else mode for mode in modes}
    assert set(normalized) == expected
    assert list(normalized) == [mode for mode in MODE_ORDER if mode in expected]


def test_infer_is_serve() -> None:
    assert normalize_modes(["infer", "train"]) == ("train", "serve")


@pytest.mark.parametrize("bad", ["predict", "TRAIN", "", None])
def test_unknown_modes_are_named(bad: object) -> None:
    with pytest.raises(ValueError, match=f"unknown export mode {bad!r}"):
        normalize_modes(["serve", bad])  # type: ignore[list-item]


def test_a_bare_string_and_no_modes_are_rejected() -> None:
    with pytest.raises(ValueError, match="got the string 'serve'"):
        normalize_modes("serve")
    with pytest.raises(ValueError, match="no export modes"):
        normalize_modes([])
