"""The result of one evaluation: what the sensor returns and what strategies compare."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class EvalFacts(Protocol):
    """What comparators rank an eval result by: the step it was computed at and its metrics
    (an `EvalResult`, or an exporter dir index row's eval result, see
    `core.exporter_index`)."""

    @property
    def step(self) -> int:
        """The global step the metrics were computed at."""
        ...

    @property
    def metrics(self) -> Mapping[str, float]:
        """The metrics by name."""
        ...


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation of one checkpoint.

    `step` is the global step the metrics were computed at; `checkpoint_path` is the
    checkpoint the evaluator read when it recorded one; `source` names where the result
    came from (an event file URI, an XCom, a metadata file).
    """

    step: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    checkpoint_path: str | None = None
    wall_time: float | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN and infinities become strings so JSON stays strict; a wall
        time that is not a finite number, which only a damaged event file gives, is written
        as unknown: no decision reads it)."""
        wall_time = self.wall_time
        return {
            "step": self.step,
            "metrics": {k: _json_float(v) for k, v in sorted(self.metrics.items())},
            "checkpoint_path": self.checkpoint_path,
            "wall_time": wall_time if wall_time is None or math.isfinite(wall_time) else None,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        """Inverse of `to_dict`; also accepts an Estimator-style flat dict with `global_step`."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an eval result must be a mapping, got {data!r}")
        if "metrics" in data:
            step = data.get("step")
            metrics = data["metrics"]
        else:
            step = data.get("global_step")
            metrics = {k: v for k, v in data.items() if k != "global_step"}
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(
                f"eval result needs an integer 'step' (or 'global_step'), "
                f"got {step!r} in {dict(data)!r}"
            )
        if not isinstance(metrics, Mapping):
            raise ValueError(f"eval result 'metrics' must be a mapping, got {metrics!r}")
        for key in ("checkpoint_path", "source"):
            if not isinstance(data.get(key), str | None):
                raise ValueError(
                    f"eval result {key!r} must be a string or null, got {data.get(key)!r}"
                )
        wall_time = data.get("wall_time")
        if wall_time is not None and not _is_number(wall_time):
            raise ValueError(
                f"eval result 'wall_time' must be a number (seconds) or null, got {wall_time!r}"
            )
        return cls(
            step=step,
            metrics={str(k): _parse_float(k, v) for k, v in metrics.items()},
            checkpoint_path=data.get("checkpoint_path"),
            wall_time=wall_time,
            source=data.get("source"),
        )


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_float(key: object, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"metric {key!r} must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"metric {key!r} must be a number, got {value!r}") from None
