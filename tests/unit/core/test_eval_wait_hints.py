"""What a waiting sensor tells its user: missing metrics and the names meant, misspellings
that end the wait, where event files are, the log line and the timeout message."""

from __future__ import annotations

import fnmatch

from hypothesis import assume, given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import (
    EVENT_FILE_NAME_GLOB,
    MissingMetrics,
    describe_search,
    metric_name_error,
    missing_metrics,
    nearby_hint,
    parse_eval_wait,
    suggested_pattern,
    timeout_message,
    why_not_found,
)

TAGS = st.text(st.sampled_from("abcxyzABC_/0"), min_size=1, max_size=8)


def test_the_newest_evaluation_s_missing_metrics_and_what_it_has() -> None:
    wait = parse_eval_wait(min_step=1, required_metrics=["MAE"], thresholds={"auc": {"min": 0}})
    newest_first = [EvalResult(200, {"mae": 0.5, "loss": 1.0}), EvalResult(100, {"MAE": 1.0})]
    assert missing_metrics(newest_first, wait) == MissingMetrics(
        200, ("MAE", "auc"), ("loss", "mae")
    )
    assert missing_metrics([], wait) is None
    assert missing_metrics([EvalResult(5, {"MAE": 1.0, "auc": 0.5})], wait) is None


def test_the_log_says_which_metrics_exist_and_which_one_is_meant() -> None:
    wait = parse_eval_wait(min_step=300, required_metrics=["MAE"])
    assert why_not_found([EvalResult(200, {"loss": 1.0, "mae": 0.5})], wait) == (
        "the newest evaluation (step 200) lacks MAE; it has loss, mae (did you mean 'mae'?); "
        "waiting for global step >= 300"
    )
    keras_callback = MissingMetrics(
        2, ("mae",), ("epoch_loss", "epoch_mae", "evaluation_mae_vs_iterations")
    )
    assert keras_callback.describe().endswith(
        "(did you mean 'epoch_mae' or 'evaluation_mae_vs_iterations'?)"
    )
    several = MissingMetrics(7, ("AUC", "recall"), ("auc", "loss", "precision"))
    assert several.describe() == (
        "the newest evaluation (step 7) lacks AUC, recall; it has auc, loss, precision "
        "(did you mean 'auc' for 'AUC'?)"
    )
    assert MissingMetrics(7, ("auc",), ()).describe() == (
        "the newest evaluation (step 7) lacks auc; it has no metrics"
    )
    assert MissingMetrics(7, ("f1",), ("loss",)).describe() == (
        "the newest evaluation (step 7) lacks f1; it has loss"
    )


def test_close_spellings_are_suggested() -> None:
    missing = MissingMetrics(1, ("acuracy", "val_los"), ("accuracy", "loss", "val_loss"))
    assert missing.suggestions("acuracy") == ["accuracy"]
    assert missing.suggestions("val_los")[0] == "val_loss"
    assert missing.suggestions("recall") == []


def test_many_metrics_are_listed_up_to_twenty() -> None:
    present = tuple(f"metric_{n:02d}" for n in range(25))
    text = MissingMetrics(1, ("auc",), present).describe()
    assert "metric_19 and 5 more" in text and "metric_20" not in text


@given(st.lists(TAGS, min_size=1, max_size=6, unique=True), st.data())
def test_a_metric_present_in_another_case_is_a_misspelling(
    present: list[str], data: st.DataObject
) -> None:
    meant = data.draw(st.sampled_from(present))
    wanted = meant.swapcase()
    assume(wanted != meant and wanted not in present)
    assume(sum(name.casefold() == meant.casefold() for name in present) == 1)
    as_threshold = data.draw(st.booleans())
    wait = parse_eval_wait(
        min_step=1,
        required_metrics=[] if as_threshold else [wanted],
        thresholds={wanted: {"min": 0}} if as_threshold else None,
    )
    missing = missing_metrics([EvalResult(9, dict.fromkeys(present, 1.0))], wait)
    assert missing is not None and missing.misspelled() == {wanted: meant}
    assert missing.suggestions(wanted) == [meant]
    error = metric_name_error(missing, wait)
    argument = "thresholds" if as_threshold else "required_metrics"
    assert error is not None
    assert error.startswith(
        f"{argument} names {wanted!r}, but the evaluation at step 9 has {meant!r}"
    )
    assert "case-sensitive" in error


@given(st.lists(TAGS, max_size=6, unique=True), TAGS)
def test_a_metric_absent_in_every_case_is_waited_for(present: list[str], wanted: str) -> None:
    assume(all(name.casefold() != wanted.casefold() for name in present))
    wait = parse_eval_wait(min_step=1, required_metrics=[wanted])
    missing = missing_metrics([EvalResult(9, dict.fromkeys(present, 1.0))], wait)
    assert missing is not None and missing.lacking == (wanted,)
    assert metric_name_error(missing, wait) is None
    assert metric_name_error(None, wait) is None


def test_nearby_hint_names_the_directories_and_the_pattern_to_set() -> None:
    assert nearby_hint("/m", {"validation": 1}) == (
        "Event files elsewhere in /m: validation/ (1 file); if the evaluation writes there, "
        "set event_file_pattern='validation/*.tfevents.*'"
    )
    assert nearby_hint("/m", {"": 3, "train": 2, "validation": 2}) == (
        "Event files elsewhere in /m: the model_dir itself (3 files), train/ (2 files), "
        "validation/ (2 files); set event_file_pattern to the one the evaluation writes: "
        "'*.tfevents.*' or 'train/*.tfevents.*' or 'validation/*.tfevents.*'"
    )
    assert nearby_hint("gs://b/m", {}).startswith(
        "No event files (*.tfevents.*) in gs://b/m or its direct subdirectories either"
    )
    assert nearby_hint("/m", None) == "The model_dir /m does not exist"


@given(st.text(st.characters(blacklist_characters="/\x00"), min_size=1, max_size=12))
def test_the_suggested_pattern_matches_the_directory_s_event_files(directory: str) -> None:
    pattern = suggested_pattern(directory)
    assert fnmatch.fnmatchcase(f"{directory}/events.out.tfevents.17.host.v2", pattern)
    assert not fnmatch.fnmatchcase(f"{directory}x/events.out.tfevents.17.host.v2", pattern)
    assert not fnmatch.fnmatchcase(f"{directory}/checkpoint", pattern)
    assert fnmatch.fnmatchcase("events.out.tfevents.17.host", suggested_pattern(""))
    assert suggested_pattern("") == EVENT_FILE_NAME_GLOB


def test_describe_search_names_the_pattern_and_hints_only_when_nothing_matched() -> None:
    assert describe_search(
        "/m/eval/*.tfevents.*", "eval/*.tfevents.*", 0, "no evaluation", "H"
    ) == (
        "0 event files match /m/eval/*.tfevents.* (event_file_pattern='eval/*.tfevents.*'): "
        "no evaluation. H"
    )
    assert describe_search("/m/e/*", "e/*", 1, "waiting", "H") == (
        "1 event file matches /m/e/* (event_file_pattern='e/*'): waiting"
    )
    assert describe_search("/m/e/*", "e/*", 2, "waiting").startswith("2 event files match")


def test_timeout_message_says_how_long_and_what_was_last_seen() -> None:
    assert timeout_message(8.04, 8, "0 event files match /m/eval/*") == (
        "Sensor has timed out; run duration of 8.0 seconds reached the timeout of 8 seconds. "
        "Last look: 0 event files match /m/eval/*"
    )
