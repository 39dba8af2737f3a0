"""Name-based checkpoint matching: properties of compare_variables and unsaved_variables."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.variable_match import (
    StoredVariable,
    compare_variables,
    unsaved_variables,
)

names = st.text(alphabet="abc/_", min_size=1, max_size=6)
variables = st.builds(
    StoredVariable,
    shape=st.lists(st.integers(1, 4), max_size=3).map(tuple),
    dtype=st.sampled_from(["float32", "int64"]),
)
tables = st.dictionaries(names, variables, max_size=6)


@given(tables, st.lists(tables, max_size=3))
def test_each_wanted_name_is_missing_mismatched_or_fits_and_unused_ones_are_unexpected(
    stored: dict[str, StoredVariable], graphs: list[dict[str, StoredVariable]]
) -> None:
    result = compare_variables(stored, graphs)
    wanted = {name for graph in graphs for name in graph}
    missing = {entry.split(" ")[0] for entry in result.missing}
    mismatched = {entry.split(":")[0] for entry in result.mismatched}
    unexpected = {entry.split(" ")[0] for entry in result.unexpected}
    assert missing == wanted - set(stored)
    assert mismatched <= wanted & set(stored)
    assert unexpected == set(stored) - wanted
    for graph in graphs:
        for name, variable in graph.items():
            if name in stored and name not in mismatched:
                assert stored[name] == variable
    assert result.fails == bool(missing or mismatched)


@given(tables)
def test_a_checkpoint_matches_the_graphs_made_of_its_own_variables(
    stored: dict[str, StoredVariable],
) -> None:
    subset = dict(list(stored.items())[: len(stored) // 2])
    result = compare_variables(stored, [stored, subset])
    assert (result.missing, result.mismatched, result.fails) == ((), (), False)


def test_extra_checkpoint_variables_alone_are_no_failure_but_are_listed() -> None:
    stored = {
        "w": StoredVariable((6, 4), "float32"),
        "w/Adam": StoredVariable((6, 4), "float32"),
    }
    result = compare_variables(stored, [{"w": StoredVariable((6, 4), "float32")}])
    assert not result.fails
    assert result.unexpected == ("w/Adam float32 [6, 4]",)


def test_mismatches_name_both_sides_and_unknown_graph_dimensions_fit() -> None:
    stored = {"w": StoredVariable((6, 4), "float32"), "b": StoredVariable((4,), "float32")}
    graph = {
        "w": StoredVariable((6, None), "float32"),
        "b": StoredVariable((4,), "float64"),
        "c": StoredVariable((), "int64"),
    }
    result = compare_variables(stored, [graph])
    assert result.missing == ("c int64 []",)
    assert result.mismatched == ("b: checkpoint float32 [4], graph float64 [4]",)
    assert result.unexpected == ()


def test_a_name_missing_from_several_graphs_is_listed_once() -> None:
    graph = {"w": StoredVariable((1,), "float32")}
    assert compare_variables({}, [graph, graph]).missing == ("w float32 [1]",)


@given(st.lists(st.tuples(names, tables), max_size=4))
def test_unsaved_variables_are_those_later_graphs_have_and_the_first_lacks(
    graphs: list[tuple[str, dict[str, StoredVariable]]],
) -> None:
    lacking = unsaved_variables(graphs)
    if not graphs:
        assert lacking == {}
        return
    first = set(graphs[0][1])
    expected: dict[str, tuple[str, ...]] = {}
    for mode, graph in graphs[1:]:
        expected[mode] = tuple(sorted(set(graph) - first))
    assert lacking == {mode: names for mode, names in expected.items() if names}
