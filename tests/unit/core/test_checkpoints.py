"""The `checkpoint` state file and checkpoint names, parsed without TensorFlow: text-proto
fields in any layout (tests/integration/storage/test_checkpoint_state_tf.py checks what
TensorFlow itself writes and reads), and where a recorded path puts its checkpoint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.checkpoints import (
    CheckpointState,
    CheckpointStateError,
    checkpoint_location,
    checkpoint_prefix,
    checkpoint_series,
    checkpoint_step,
    parse_checkpoint_state,
    prune_checkpoint_state,
)

TF_WRITTEN = """model_checkpoint_path: "ckpt-30"
all_model_checkpoint_paths: "ckpt-10"
all_model_checkpoint_paths: "ckpt-20"
all_model_checkpoint_paths: "ckpt-30"
all_model_checkpoint_timestamps: 1795200000.123
all_model_checkpoint_timestamps: 1795200001.5
all_model_checkpoint_timestamps: 1795200002.25
last_preserved_timestamp: 1795199999.0
"""


def test_parse_a_state_file_as_tf_writes_it() -> None:
    assert parse_checkpoint_state(TF_WRITTEN) == CheckpointState(
        model_checkpoint_path="ckpt-30",
        all_model_checkpoint_paths=("ckpt-10", "ckpt-20", "ckpt-30"),
    )


def test_latest_is_added_to_the_kept_list_and_blank_lines_are_ignored() -> None:
    state = parse_checkpoint_state('\nmodel_checkpoint_path: "gs://b/m/model.ckpt-5"\n\n')
    assert state.all_model_checkpoint_paths == ("gs://b/m/model.ckpt-5",)


def test_escapes_are_undone() -> None:
    state = parse_checkpoint_state('model_checkpoint_path: "dir \\"a\\"\\\\ckpt-1"')
    assert state.model_checkpoint_path == 'dir "a"\\ckpt-1'


@given(
    st.lists(
        st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1),
        min_size=1,
        max_size=5,
    )
)
def test_round_trip_of_quoted_paths(paths: list[str]) -> None:
    def quote(path: str) -> str:
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'

    text = f"model_checkpoint_path: {quote(paths[-1])}\n" + "".join(
        f"all_model_checkpoint_paths: {quote(p)}\n" for p in paths
    )
    state = parse_checkpoint_state(text)
    assert state.model_checkpoint_path == paths[-1]
    assert state.all_model_checkpoint_paths == tuple(paths)


def test_a_state_file_on_one_line_parses_as_on_many() -> None:
    """A valid text proto TensorFlow reads: fields separated by spaces, not lines."""
    one_line = " ".join(TF_WRITTEN.splitlines())
    assert parse_checkpoint_state(one_line) == parse_checkpoint_state(TF_WRITTEN)


def test_octal_hex_and_c_escapes_single_quotes_and_adjacent_strings() -> None:
    state = parse_checkpoint_state(
        'model_checkpoint_path: "mod\\303\\250le-3"\n'
        'all_model_checkpoint_paths: \'mod\\xc3\\xa8le-2\' "\\t\\n\\\'\\"" "-1"\n'
    )
    assert state.model_checkpoint_path == "modèle-3"
    assert state.all_model_checkpoint_paths == ("modèle-2\t\n'\"-1", "modèle-3")


def test_unknown_scalar_fields_comments_and_separators_are_tolerated() -> None:
    text = (
        "# written by hand\n"
        'model_checkpoint_path: "ckpt-2", all_model_checkpoint_paths: "ckpt-1";\n'
        "last_preserved_timestamp: -inf future_flag: true future_count: 0x1F "
        "future_name: 'x'  # trailing comment\n"
    )
    assert parse_checkpoint_state(text) == CheckpointState("ckpt-2", ("ckpt-1", "ckpt-2"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "run/checkpoint names no model_checkpoint_path"),
        ('all_model_checkpoint_paths: "ckpt-1"', "run/checkpoint names no model_checkpoint_path"),
        ('model_checkpoint_path: ""', "run/checkpoint names no model_checkpoint_path"),
        (
            'model_checkpoint_path: "ckpt-1"\ngarbage here',
            "run/checkpoint line 2: expected ':' after 'garbage', got 'here'",
        ),
        (
            "model_checkpoint_path: ckpt-1",
            "run/checkpoint line 1: model_checkpoint_path must be a quoted string, got ckpt",
        ),
        (
            'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_timestamps: "1.5"',
            "run/checkpoint line 2: all_model_checkpoint_timestamps must be a number, got",
        ),
        (
            'model_checkpoint_path: "ckpt-1" model_checkpoint_path: "ckpt-2"',
            "run/checkpoint names model_checkpoint_path more than once",
        ),
        ('model_checkpoint_path: "ckpt-1', "run/checkpoint line 1: unexpected unterminated string"),
        ('model_checkpoint_path: "ckpt-1"\n@', "run/checkpoint line 2: unexpected character '@'"),
        ('model_checkpoint_path: "ckpt\\q-1"', "line 1: unknown escape \\q in"),
        ('model_checkpoint_path: "ckpt\\777-1"', "line 1: octal escape \\777 is not a byte"),
        ('model_checkpoint_path: "ckpt\\377-1"', 'line 1: "ckpt\\377-1" is not UTF-8 text'),
        ('model_checkpoint_path: "ckpt-1"\nextra { a: 1 }', "line 2: 'extra' has no scalar"),
        ('model_checkpoint_path: "ckpt-1" extra: ["a"]', "line 1: 'extra' has no scalar"),
        ('model_checkpoint_path: "ckpt-1" extra:', "line 1: 'extra' has no value"),
        ('"ckpt-1"', "line 1: expected a field name, got '\"ckpt-1\"'"),
    ],
)
def test_bad_state_files_name_the_source_and_line(text: str, message: str) -> None:
    with pytest.raises(CheckpointStateError) as caught:
        parse_checkpoint_state(text, source="run/checkpoint")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


# A valid state file as a list of (key, value as written) fields, and the ways text-proto
# fields may be laid out between and after them.
FIELDS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "all_model_checkpoint_paths",
                "all_model_checkpoint_timestamps",
                "last_preserved_timestamp",
                "future_field",
            ]
        ),
        st.sampled_from(['"ckpt-1"', '"/old/run/ckpt-2"', "'ckpts/ckpt-3'", "1.5", "-2e+09"]),
    ),
    max_size=8,
)
GAPS = st.sampled_from([" ", "\n", "\t", "\r\n", "  \n\n  ", " # note\n", "\n# note\n"])


def layout(fields: list[tuple[str, str]], gaps: list[str], separators: list[str]) -> str:
    return "".join(
        f"{key}:{gaps[i % len(gaps)] if i % 3 else ' '}{value}{separators[i % len(separators)]}"
        f"{gaps[(i + 1) % len(gaps)]}"
        for i, (key, value) in enumerate(fields)
    )


def canonical(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Numbers for timestamp fields, strings for paths, as TensorFlow writes them."""
    numeric = {"all_model_checkpoint_timestamps", "last_preserved_timestamp"}
    return [
        (key, value)
        for key, value in fields
        if (key in numeric) == (value[0] not in "\"'") or key == "future_field"
    ]


@given(
    FIELDS,
    st.lists(GAPS, min_size=1, max_size=4),
    st.lists(st.sampled_from(["", ",", ";"]), min_size=1),
    st.sets(st.sampled_from(["ckpt-1", "/old/run/ckpt-2", "ckpts/ckpt-3", "ckpt-9"])),
)
def test_any_layout_of_a_valid_file_parses_and_prunes_the_same(
    fields: list[tuple[str, str]], gaps: list[str], separators: list[str], drop: set[str]
) -> None:
    valid = [("model_checkpoint_path", '"ckpt-9"'), *canonical(fields)]
    one_per_line = "".join(f"{key}: {value}\n" for key, value in valid)
    laid_out = layout(valid, gaps, separators)
    parsed = parse_checkpoint_state(one_per_line)
    assert parse_checkpoint_state(laid_out) == parsed
    paths = [key for key, _ in valid].count("all_model_checkpoint_paths")
    stamps = [key for key, _ in valid].count("all_model_checkpoint_timestamps")
    if stamps not in (0, paths):
        with pytest.raises(CheckpointStateError, match="TensorFlow writes one per path"):
            prune_checkpoint_state(laid_out, drop)
        return
    pruned = prune_checkpoint_state(laid_out, drop)
    expected = prune_checkpoint_state(one_per_line, drop)
    assert parse_checkpoint_state(pruned) == parse_checkpoint_state(expected)
    for key in ("all_model_checkpoint_timestamps", "last_preserved_timestamp", "future_field"):
        assert pruned.count(key) == expected.count(key)


@pytest.mark.parametrize(
    ("prefix", "step"),
    [
        ("ckpt-1200", 1200),
        ("/m/model.ckpt-7", 7),
        ("gs://b/m/ckpt-3/", 3),
        ("ckpt-12-34", 34),
        ("ckpt", None),
        ("ckpt-", None),
        ("ckpt-1/other", None),
        ("ckpt-1.index", None),
    ],
)
def test_checkpoint_step(prefix: str, step: int | None) -> None:
    assert checkpoint_step(prefix) == step


@pytest.mark.parametrize(
    ("filename", "prefix"),
    [
        ("ckpt-5.index", "ckpt-5"),
        ("ckpt-5.data-00000-of-00001", "ckpt-5"),
        ("model.ckpt-100.data-00001-of-00002", "model.ckpt-100"),
        ("model.ckpt-100.meta", "model.ckpt-100"),
        ("model.ckpt-100.meta.tmp5f2c", None),
        ("ckpt-5.index.bak", None),
        ("ckpt-5.data-00000", None),
        ("ckpt-5.weights.h5", None),
        ("checkpoint", None),
        ("ckpt.index", None),
        ("events.out.tfevents.1.host", None),
    ],
)
def test_checkpoint_prefix(filename: str, prefix: str | None) -> None:
    assert checkpoint_prefix(filename) == prefix


@given(st.integers(0, 10**12), st.sampled_from(["ckpt", "model.ckpt", "ckpts/ckpt"]))
def test_step_and_prefix_agree(step: int, stem: str) -> None:
    prefix = f"{stem}-{step}"
    assert checkpoint_step(prefix) == step
    assert checkpoint_prefix(f"{prefix}.index") == prefix
    assert checkpoint_prefix(f"{prefix}.data-00000-of-00001") == prefix
    assert checkpoint_prefix(f"{prefix}.meta") == prefix
    assert checkpoint_series(prefix) == stem


@pytest.mark.parametrize(
    ("location", "series"),
    [
        ("model.ckpt-150", "model.ckpt"),
        ("ckpts/ckpt-3", "ckpts/ckpt"),
        ("a/b/pretrained-1", "a/b/pretrained"),
        ("ckpt-12-34", "ckpt-12"),
        ("final", None),
        ("-5", None),
        ("ckpts/-5", None),
        ("ckpt-5.weights.h5", None),
    ],
)
def test_checkpoint_series(location: str, series: str | None) -> None:
    assert checkpoint_series(location) == series


def test_state_series_are_those_its_entries_resolve_to() -> None:
    state = parse_checkpoint_state(
        'model_checkpoint_path: "/r/model.ckpt-3"\n'
        'all_model_checkpoint_paths: "warm-1"\n'
        'all_model_checkpoint_paths: "ckpts/ckpt-2"\n'
        'all_model_checkpoint_paths: "/m/sub/ckpt-2"\n'
        'all_model_checkpoint_paths: "final"\n',
        model_dir="/m",
    )
    assert state.series == ("ckpts/ckpt", "model.ckpt", "sub/ckpt", "warm")
    assert state.directories == ("ckpts", "sub")


@pytest.mark.parametrize(
    ("recorded", "model_dir", "location"),
    [
        ("ckpt-5", "", "ckpt-5"),
        ("ckpts/ckpt-5", "", "ckpts/ckpt-5"),
        ("./ckpts//./ckpt-5/", "/m", "ckpts/ckpt-5"),
        ("ckpts/../ckpt-5", "/m", "ckpt-5"),
        ("/m/ckpts/ckpt-5", "/m/", "ckpts/ckpt-5"),
        ("/m/ckpts/ckpt-5", "", "ckpt-5"),
        ("gs://b/m/ckpts/ckpt-5", "gs://b/m", "ckpts/ckpt-5"),
        ("gs://b/m2/ckpts/ckpt-5", "gs://b/m", "ckpt-5"),
        ("/old/m/ckpts/ckpt-5", "gs://b/m", "ckpt-5"),
        ("../other/ckpt-5", "/m", "ckpt-5"),
        ("ckpts/../../other/ckpt-5", "/m", "ckpt-5"),
        ("/m/../other/ckpt-5", "/m", "ckpt-5"),
        ("", "/m", None),
        ("..", "/m", None),
        ("/old/..", "/m", None),
    ],
)
def test_checkpoint_location(recorded: str, model_dir: str, location: str | None) -> None:
    assert checkpoint_location(recorded, model_dir) == location


@given(
    st.lists(st.sampled_from(["ckpts", "a", ".", "..", "b.c"]), max_size=4),
    st.sampled_from(["", "/m", "gs://b/m"]),
)
def test_a_location_is_inside_the_model_dir(parts: list[str], model_dir: str) -> None:
    recorded = "/".join([*parts, "ckpt-5"])
    location = checkpoint_location(recorded, model_dir)
    assert location is not None
    assert not location.startswith("/") and ".." not in location.split("/")
    assert location.endswith("ckpt-5")


def test_pruning_a_tf_written_state_file() -> None:
    text = (
        'model_checkpoint_path: "/abs/run/ckpt-30"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-10"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-20"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-30"\n'
        "all_model_checkpoint_timestamps: 1795200000.1\n"
        "all_model_checkpoint_timestamps: 1795200001.2\n"
        "all_model_checkpoint_timestamps: 1795200002.3\n"
        "last_preserved_timestamp: 1795199999.0\n"
    )
    drop = ["/abs/run/ckpt-20", "/abs/run/ckpt-30", "/abs/run/ckpt-99", "ckpt-10"]
    assert prune_checkpoint_state(text, drop) == (
        'model_checkpoint_path: "/abs/run/ckpt-30"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-10"\n'
        'all_model_checkpoint_paths: "/abs/run/ckpt-30"\n'
        "all_model_checkpoint_timestamps: 1795200000.1\n"
        "all_model_checkpoint_timestamps: 1795200002.3\n"
        "last_preserved_timestamp: 1795199999.0\n"
    )
    assert prune_checkpoint_state(text, []) == text
    assert prune_checkpoint_state(text, ["/abs/run/ckpt-30"]) == text


def test_timestamps_that_are_not_one_per_path_cannot_be_pruned() -> None:
    two_for_three = TF_WRITTEN.replace("all_model_checkpoint_timestamps: 1795200002.25\n", "")
    with pytest.raises(CheckpointStateError) as caught:
        prune_checkpoint_state(two_for_three, ["ckpt-10"], source="run/checkpoint")
    assert str(caught.value) == (
        "run/checkpoint holds 2 all_model_checkpoint_timestamps for 3 "
        "all_model_checkpoint_paths; TensorFlow writes one per path"
    )


@given(
    st.lists(st.integers(0, 100), min_size=1, max_size=8, unique=True),
    st.sets(st.integers(0, 100)),
    st.booleans(),
    st.sampled_from(["", "/abs/run/", "gs://b/run/"]),
)
def test_pruning_lists_exactly_the_rest_with_their_own_timestamps(
    steps: list[int], drop: set[int], stamped: bool, directory: str
) -> None:
    text = f'model_checkpoint_path: "{directory}ckpt-{steps[-1]}"\n'
    text += "".join(f'all_model_checkpoint_paths: "{directory}ckpt-{s}"\n' for s in steps)
    if stamped:
        text += "".join(f"all_model_checkpoint_timestamps: {s}.5\n" for s in steps)
    pruned = prune_checkpoint_state(text, [f"{directory}ckpt-{s}" for s in drop])
    rest = [s for s in steps if s not in drop or s == steps[-1]]
    state = parse_checkpoint_state(pruned)
    assert state.model_checkpoint_path == f"{directory}ckpt-{steps[-1]}"
    assert state.all_model_checkpoint_paths == tuple(f"{directory}ckpt-{s}" for s in rest)
    stamps = [line.split(": ")[1] for line in pruned.splitlines() if "timestamps" in line]
    assert stamps == ([f"{s}.5" for s in rest] if stamped else [])


def test_pruning_a_one_line_state_file_keeps_it_on_one_line() -> None:
    text = (
        'model_checkpoint_path: "ckpt-2" all_model_checkpoint_paths: "ckpt-1", '
        'all_model_checkpoint_paths: "ckpt-2" all_model_checkpoint_timestamps: 1.5 '
        "all_model_checkpoint_timestamps: 2.5\n"
    )
    assert prune_checkpoint_state(text, ["ckpt-1"]) == (
        'model_checkpoint_path: "ckpt-2" all_model_checkpoint_paths: "ckpt-2" '
        "all_model_checkpoint_timestamps: 2.5\n"
    )
