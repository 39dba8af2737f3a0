"""What the eval-metrics sensor waits for, and which result ends the wait (pure decisions;
`events.eval_search` reads the event files and the exporter dir for them).

A wait names exactly one target:
- `checkpoint_path`: the result whose recorded `checkpoint_path` summary names that
  checkpoint. Paths match when their last segments (`model.ckpt-1200`) are equal: checkpoint
  names are unique within one model directory, and an evaluator records the path where the
  model dir was (another mount point, or before it was copied to GCS).
- `min_step`: the newest result with step >= min_step.
- `newer_than_exporter`: the newest result with a step above the highest global step that
  exporter's directory holds, committed or foreign (any result when it holds none yet). Its
  directory is `<model_dir>/export/<name>` unless `export_dir_base` names another.

A result qualifies only when it has at least one metric and every required metric (the
thresholded ones included): TF2 writes each scalar as its own event, so a step can be seen
half-written and must be waited on. Thresholds are judged afterwards, on the result found.

A wanted metric the newest evaluation lacks is waited for (a step is seen half-written, and
some evaluators add a metric in a later pass), with a hint naming the metrics it has; one it
has in another letter case is a misspelling that waiting cannot fix (`metric_name_error`).

The messages a waiting sensor logs and fails with are made here too, so every mode says
the same: what was searched, what was found, what is lacking.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_tf_export.core.checkpoints import checkpoint_name
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.names import validate_exporter_name

_BOUND_KEYS = ("min", "max")
_MAX_LISTED_NAMES = 20
"""Messages list at most this many metric names or directories (then "and N more")."""

EVENT_FILE_NAME_GLOB = "*.tfevents.*"
"""How TensorFlow names event files (`events.out.tfevents.<time>.<host>...`)."""


@dataclass(frozen=True)
class MetricBounds:
    """Inclusive limits a metric must stay within; None means unbounded on that side."""

    minimum: float | None = None
    maximum: float | None = None

    def admits(self, value: float) -> bool:
        """Whether `value` is within the bounds (a non-finite value never is: NaN and
        infinities are what a broken evaluation gives)."""
        if not math.isfinite(value):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum

    def describe(self) -> str:
        """`>= 0.8`, `<= 0.5` or `in [0.1, 0.5]`."""
        if self.maximum is None:
            return f">= {self.minimum}"
        if self.minimum is None:
            return f"<= {self.maximum}"
        return f"in [{self.minimum}, {self.maximum}]"


@dataclass(frozen=True)
class EvalWait:
    """A validated wait: one target, the metrics required, the thresholds to judge."""

    checkpoint_path: str | None = None
    min_step: int | None = None
    newer_than_exporter: str | None = None
    export_dir_base: str | None = None
    required_metrics: tuple[str, ...] = ()
    thresholds: Mapping[str, MetricBounds] = field(default_factory=dict)

    @property
    def wanted_metrics(self) -> frozenset[str]:
        """Metrics a result must have: the required ones and the thresholded ones."""
        return frozenset(self.required_metrics) | frozenset(self.thresholds)

    def describe_target(self) -> str:
        """The target in words, for logs and messages."""
        if self.checkpoint_path is not None:
            return f"checkpoint {self.checkpoint_path}"
        if self.min_step is not None:
            return f"global step >= {self.min_step}"
        return f"a step newer than the newest export of exporter {self.newer_than_exporter!r}"


def parse_eval_wait(
    *,
    checkpoint_path: object = None,
    min_step: object = None,
    newer_than_exporter: object = None,
    export_dir_base: object = None,
    required_metrics: object = (),
    thresholds: object = None,
) -> EvalWait:
    """Validate rendered sensor arguments; ValueError names the bad value and what is valid."""
    given = {
        name: value
        for name, value in (
            ("checkpoint_path", checkpoint_path),
            ("min_step", min_step),
            ("newer_than_exporter", newer_than_exporter),
        )
        if value is not None
    }
    if len(given) != 1:
        raise ValueError(
            "give exactly one target: checkpoint_path, min_step or newer_than_exporter; "
            f"got {given or 'none'}"
        )
    if checkpoint_path is not None and (
        not isinstance(checkpoint_path, str) or not checkpoint_path.strip()
    ):
        raise ValueError(f"checkpoint_path must be a non-empty string, got {checkpoint_path!r}")
    if export_dir_base is not None and (
        newer_than_exporter is None
        or not isinstance(export_dir_base, str)
        or not export_dir_base.strip()
    ):
        raise ValueError(
            "export_dir_base must be a non-empty string naming the exporter directory of "
            f"newer_than_exporter, and only goes with it; got {export_dir_base!r}"
        )
    return EvalWait(
        checkpoint_path=checkpoint_path,
        min_step=None if min_step is None else _parse_step(min_step),
        newer_than_exporter=(
            None if newer_than_exporter is None else validate_exporter_name(newer_than_exporter)
        ),
        export_dir_base=export_dir_base,
        required_metrics=parse_metric_names(required_metrics),
        thresholds=parse_thresholds(thresholds),
    )


def parse_thresholds(thresholds: object) -> dict[str, MetricBounds]:
    """`{"auc": {"min": 0.8}, "loss": {"max": 0.5}}` -> bounds; ValueError on anything else."""
    example = '{"auc": {"min": 0.8}, "loss": {"max": 0.5}}'
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise ValueError(f"thresholds must be a mapping like {example}, got {thresholds!r}")
    parsed = {}
    for metric, bounds in thresholds.items():
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"threshold metric names must be non-empty strings, got {metric!r}")
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - set(_BOUND_KEYS):
            raise ValueError(
                f"thresholds[{metric!r}] must be a mapping with 'min' and/or 'max', "
                f"got {bounds!r}; e.g. {example}"
            )
        limits = {key: _parse_bound(metric, key, bounds.get(key)) for key in _BOUND_KEYS}
        lower, upper = limits["min"], limits["max"]
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"thresholds[{metric!r}] has min {lower} > max {upper}")
        parsed[metric] = MetricBounds(lower, upper)
    return parsed


def threshold_misses(result: EvalResult, thresholds: Mapping[str, MetricBounds]) -> list[str]:
    """One message per metric outside its bounds (a missing metric misses too)."""
    misses = []
    for metric, bounds in sorted(thresholds.items()):
        value = result.metrics.get(metric)
        if value is None:
            misses.append(f"{metric} is missing (needs {bounds.describe()})")
        elif not math.isfinite(value):
            misses.append(f"{metric}={value} is not a finite number (needs {bounds.describe()})")
        elif not bounds.admits(value):
            misses.append(f"{metric}={value} is not {bounds.describe()}")
    return misses


def select_result(
    newest_first: Iterable[EvalResult], wait: EvalWait, exported_step: int | None = None
) -> EvalResult | None:
    """The newest result meeting the target with all wanted metrics, or None yet.

    `exported_step` is the highest global step the exporter holds, committed or foreign
    (`core.foreign.newest_exported_step`), when the target is `newer_than_exporter` (None:
    nothing exported yet).
    """
    wanted = wait.wanted_metrics
    for result in newest_first:
        if not result.metrics or not wanted.issubset(result.metrics):
            continue
        if _meets_target(result, wait, exported_step):
            return result
    return None


def lowest_useful_step(wait: EvalWait, exported_step: int | None = None) -> int | None:
    """The lowest step whose result could end `wait` (None: any step could); reading can
    skip every event below it."""
    if wait.min_step is not None:
        return wait.min_step
    if wait.newer_than_exporter is not None and exported_step is not None:
        return exported_step + 1
    return None


def settling_rule(
    wait: EvalWait, exported_step: int | None = None
) -> Callable[[EvalResult], bool] | None:
    """A test telling that a result makes every older one irrelevant to `wait`, or None.

    For a step target, a result that ends the wait keeps ending it whatever else is written
    at its step (metrics only accumulate), so no older step can be the answer. A checkpoint
    target has no such rule: a later rewrite of a step's `checkpoint_path` can undo a match.
    """
    if wait.checkpoint_path is not None:
        return None
    return lambda result: select_result([result], wait, exported_step) is not None


def why_not_found(newest_first: Iterable[EvalResult], wait: EvalWait) -> str:
    """What the newest result lacks, for the log of a sensor that keeps waiting."""
    newest = next(iter(newest_first), None)
    if newest is None:
        return f"no evaluation recorded yet; waiting for {wait.describe_target()}"
    seen = f"the newest evaluation (step {newest.step})"
    if wait.checkpoint_path is not None and newest.checkpoint_path is None:
        return (
            f"{seen} records no checkpoint_path: to wait for checkpoint {wait.checkpoint_path} "
            "the evaluator must write it as the text summary 'checkpoint_path' (as Estimator "
            "evaluations did), or the sensor must wait with min_step"
        )
    missing = missing_metrics([newest], wait)
    if missing is not None:
        return f"{missing.describe()}; waiting for {wait.describe_target()}"
    return f"{seen} does not match; waiting for {wait.describe_target()}"


@dataclass(frozen=True)
class MissingMetrics:
    """The wanted metrics the newest evaluation lacks, and the metrics it has."""

    step: int
    lacking: tuple[str, ...]
    present: tuple[str, ...]

    def misspelled(self) -> dict[str, str]:
        """Each lacking name the evaluation has in another letter case, with that spelling.

        Tags are case-sensitive and no evaluator writes both `mae` and `MAE`, so this is a
        misspelling in the sensor's arguments, never a metric still to come.
        """
        by_folded = {name.casefold(): name for name in self.present}
        return {
            name: by_folded[name.casefold()]
            for name in self.lacking
            if name.casefold() in by_folded
        }

    def suggestions(self, name: str) -> list[str]:
        """The present metrics `name` may mean: the one it is in another letter case; else
        up to three of the closest spellings (difflib, similarity >= 0.6) and of those with
        `name` as a `_`- or `/`-separated part (`epoch_mae`, `evaluation_mae_vs_iterations`
        for `mae`, as Keras's TensorBoard callback names them)."""
        misspelled = self.misspelled()
        if name in misspelled:
            return [misspelled[name]]
        by_folded = {present.casefold(): present for present in self.present}
        close = difflib.get_close_matches(name.casefold(), list(by_folded), n=3)
        parts = [
            folded
            for folded in by_folded
            if name.casefold() in re.split(r"[_/]", folded) and folded not in close
        ]
        return [by_folded[folded] for folded in [*close, *parts][:3]]

    def describe(self) -> str:
        """`the newest evaluation (step 200) lacks MAE; it has loss, mae (did you mean
        'mae'?)`, for the log of every poke that finds it so."""
        lacking = ", ".join(self.lacking)
        if not self.present:
            return f"the newest evaluation (step {self.step}) lacks {lacking}; it has no metrics"
        text = (
            f"the newest evaluation (step {self.step}) lacks {lacking}; "
            f"it has {_listed(self.present)}"
        )
        guesses = {name: found for name in self.lacking if (found := self.suggestions(name))}
        if not guesses:
            return text
        if len(self.lacking) == 1:
            return f"{text} (did you mean {_alternatives(guesses[self.lacking[0]])}?)"
        meant = "; ".join(f"{_alternatives(found)} for {name!r}" for name, found in guesses.items())
        return f"{text} (did you mean {meant}?)"


def missing_metrics(newest_first: Iterable[EvalResult], wait: EvalWait) -> MissingMetrics | None:
    """The wanted metrics the newest evaluation lacks (None: it lacks none, or there is no
    evaluation yet)."""
    newest = next(iter(newest_first), None)
    if newest is None:
        return None
    lacking = tuple(sorted(wait.wanted_metrics - set(newest.metrics)))
    if not lacking:
        return None
    return MissingMetrics(newest.step, lacking, tuple(sorted(newest.metrics)))


def metric_name_error(missing: MissingMetrics | None, wait: EvalWait) -> str | None:
    """Why the wait must fail now, when a wanted metric is misspelt (the evaluation has it in
    another letter case); None when nothing is misspelt."""
    if missing is None:
        return None
    misspelled = missing.misspelled()
    if not misspelled:
        return None
    mistakes = "; ".join(
        f"{'required_metrics' if name in wait.required_metrics else 'thresholds'} names "
        f"{name!r}, but the evaluation at step {missing.step} has {actual!r}"
        for name, actual in sorted(misspelled.items())
    )
    return (
        f"{mistakes}: metric names are case-sensitive, so waiting cannot make them match; "
        f"write them as the evaluation does (it has {_listed(missing.present)})"
    )


def nearby_hint(model_dir: str, found: Mapping[str, int] | None) -> str:
    """What lies near the pattern that matched nothing: `found` counts the event files in
    `model_dir` and in its direct subdirectories that have some (key "" for `model_dir`
    itself); None means `model_dir` does not exist."""
    if found is None:
        return f"The model_dir {model_dir} does not exist"
    if not found:
        return (
            f"No event files ({EVENT_FILE_NAME_GLOB}) in {model_dir} or its direct "
            "subdirectories either: has the evaluation run, and does it write under model_dir?"
        )
    listed = [
        f"{f'{directory}/' if directory else 'the model_dir itself'} "
        f"({count} file{'' if count == 1 else 's'})"
        for directory, count in sorted(found.items())
    ]
    patterns = [repr(suggested_pattern(directory)) for directory in sorted(found)]
    if len(patterns) == 1:
        advice = f"if the evaluation writes there, set event_file_pattern={patterns[0]}"
    else:
        advice = (
            f"set event_file_pattern to the one the evaluation writes: {_listed(patterns, ' or ')}"
        )
    return f"Event files elsewhere in {model_dir}: {_listed(listed)}; {advice}"


def suggested_pattern(directory: str) -> str:
    """The event_file_pattern reading the event files of `directory` (relative to model_dir,
    "" for model_dir itself), its glob characters escaped."""
    escaped = "".join(f"[{char}]" if char in "*?[" else char for char in directory)
    return f"{escaped}/{EVENT_FILE_NAME_GLOB}" if directory else EVENT_FILE_NAME_GLOB


def describe_search(
    pattern_uri: str,
    event_file_pattern: str,
    matched_files: int,
    reason: str,
    hint: str | None = None,
) -> str:
    """The line a waiting sensor logs: the files searched and what they hold; `hint` (from
    `nearby_hint`) is added when no file matched."""
    plural = "file matches" if matched_files == 1 else "files match"
    line = (
        f"{matched_files} event {plural} {pattern_uri} "
        f"(event_file_pattern={event_file_pattern!r}): {reason}"
    )
    if matched_files == 0 and hint:
        return f"{line}. {hint}"
    return line


def timeout_message(elapsed: float, timeout: float, last_seen: str) -> str:
    """The failure of a wait that reached its timeout, with what its last look found."""
    return (
        f"Sensor has timed out; run duration of {elapsed:.1f} seconds reached the timeout "
        f"of {timeout:g} seconds. Last look: {last_seen}"
    )


def _alternatives(names: list[str]) -> str:
    """`'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`."""
    quoted = [repr(name) for name in names]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def _listed(names: Iterable[str], separator: str = ", ") -> str:
    """At most `_MAX_LISTED_NAMES` names, then how many more."""
    names = list(names)
    shown = separator.join(names[:_MAX_LISTED_NAMES])
    more = len(names) - _MAX_LISTED_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def same_checkpoint(recorded: str, wanted: str) -> bool:
    """Whether two checkpoint paths name the same checkpoint of one model directory: the
    same name, wherever each path puts it (as every recorded path is read)."""
    return checkpoint_name(recorded) == checkpoint_name(wanted)


def _meets_target(result: EvalResult, wait: EvalWait, exported_step: int | None) -> bool:
    if wait.checkpoint_path is not None:
        return result.checkpoint_path is not None and same_checkpoint(
            result.checkpoint_path, wait.checkpoint_path
        )
    if wait.min_step is not None:
        return result.step >= wait.min_step
    return exported_step is None or result.step > exported_step


def _parse_step(value: object) -> int:
    """A non-negative step: an int, or a string of digits (a rendered template)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"min_step must be a non-negative integer, got {value!r}")


def parse_metric_names(names: object) -> tuple[str, ...]:
    """A list of non-empty metric names; ValueError on a string or anything else."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValueError(f"required_metrics must be a list of metric names, got {names!r}")
    parsed = tuple(names)
    bad = [name for name in parsed if not isinstance(name, str) or not name]
    if bad:
        raise ValueError(f"required_metrics must hold non-empty strings, got {bad!r}")
    return parsed


def _parse_bound(metric: str, key: str, value: Any) -> float | None:
    """A finite number, or a numeric string (what a rendered template gives)."""
    if value is None:
        return None
    number = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"thresholds[{metric!r}][{key!r}] must be a finite number, got {value!r}")
    return number
