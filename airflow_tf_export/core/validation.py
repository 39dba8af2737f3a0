"""Validation of a staged export: the pure decisions over what its signatures answered.

A version is validated before it is published: a fresh process loads it as a server does and
calls every serving signature (and `eval`, for multi-mode exports) on warmup examples
(savedmodel/validation.py). What that process reports for each output, its dtype, shape,
count of NaN/Inf values, range and digest, is judged here: against the dtype and shape the
signature declares, the batch of examples it was given, and the user's thresholds. The
outcome is recorded in `export_metadata.json` as a ValidationRecord.

Warmup examples are plain feature dicts (name -> list of values, one per element); they are
checked here against the serving input's feature spec, and generated from it when the user
gave none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
EXAMPLE_SOURCES = ("generated", "file", "definition")
GENERATED_EXAMPLES = 2


class ValidationError(ValueError):
    """The staged export failed validation (it is not published); the message names the
    signature and the output, or the feature of a bad example."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the serving input: dtype name and shape without the batch dimension."""

    dtype: str
    shape: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        """Values per example."""
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Range:
    """Bounds every (finite) value of an output must lie in; None leaves a side open."""

    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        for bound in (self.min, self.max):
            if bound is not None and (
                isinstance(bound, bool)
                or not isinstance(bound, int | float)
                or not math.isfinite(bound)
            ):
                raise ValueError(f"threshold bound {bound!r} must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"threshold min {self.min} is above max {self.max}")


@dataclass(frozen=True)
class Thresholds:
    """User bounds on validation outputs, keyed `"<signature>/<output>"` or `"<output>"`
    (every signature's output of that name); `allow_nonfinite` lists outputs, keyed alike,
    that may hold NaN or Inf."""

    ranges: Mapping[str, Range] = field(default_factory=dict)
    allow_nonfinite: frozenset[str] = frozenset()

    def range_of(self, signature: str, output: str) -> Range | None:
        return self.ranges.get(f"{signature}/{output}", self.ranges.get(output))

    def allows_nonfinite(self, signature: str, output: str) -> bool:
        return f"{signature}/{output}" in self.allow_nonfinite or output in self.allow_nonfinite

    def unmatched_ranges(self, outputs: Iterable[tuple[str, str]]) -> str | None:
        """Why some key of `ranges` names no output among `outputs` ((signature, output)
        pairs), or None: a misspelt key would leave the bound it asks for unchecked. (A key
        of `allow_nonfinite` that names none loosens nothing, e.g. "eval/loss" in an export
        without the eval signature.)"""
        pairs = sorted(set(outputs))
        names = {f"{sig}/{out}" for sig, out in pairs} | {out for _sig, out in pairs}
        unknown = sorted(set(self.ranges) - names)
        if not unknown:
            return None
        valid = [f"{sig}/{out}" for sig, out in pairs]
        return (
            f"validation_thresholds['outputs'] names {unknown}, which no signature output "
            f"has, so its bounds would go unchecked; the outputs are {valid} (key "
            "'<signature>/<output>' or '<output>')"
        )


def parse_thresholds(value: object) -> Thresholds:
    """Thresholds from `{"outputs": {"serving_default/scores": {"min": 0, "max": 1}},
    "allow_nonfinite": ["eval/loss"]}` (both keys optional); ValueError names what is wrong."""
    if value is None:
        return Thresholds()
    if isinstance(value, Thresholds):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"validation_thresholds must be a dict, got {value!r}")
    unknown = sorted(set(value) - {"outputs", "allow_nonfinite"})
    if unknown:
        raise ValueError(
            f"validation_thresholds has unknown keys {unknown}; use 'outputs' and 'allow_nonfinite'"
        )
    outputs = value.get("outputs", {})
    if not isinstance(outputs, Mapping):
        raise ValueError(f"validation_thresholds['outputs'] must be a dict, got {outputs!r}")
    ranges = {}
    for key, bounds in outputs.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"validation_thresholds output key {key!r} must be a name")
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - {"min", "max"}:
            raise ValueError(
                f"validation_thresholds['outputs'][{key!r}] must be a dict of 'min' and/or "
                f"'max', got {bounds!r}"
            )
        try:
            ranges[key] = Range(bounds.get("min"), bounds.get("max"))
        except ValueError as err:
            raise ValueError(f"validation_thresholds['outputs'][{key!r}]: {err}") from None
    allowed = value.get("allow_nonfinite", [])
    if not isinstance(allowed, list | tuple | set | frozenset) or not all(
        isinstance(a, str) and a for a in allowed
    ):
        raise ValueError(
            f"validation_thresholds['allow_nonfinite'] must be a list of output names, got "
            f"{allowed!r}"
        )
    return Thresholds(ranges, frozenset(allowed))


@dataclass(frozen=True)
class OutputReport:
    """What one output of one signature call was, as the validating process reports it:
    dtype and shape declared by the signature (None: unknown dimension) and actual, the
    count of NaN/Inf values, the finite range (numeric outputs) and a digest of the values."""

    dtype: str
    shape: tuple[int, ...]
    declared_dtype: str
    declared_shape: tuple[int | None, ...] | None
    nonfinite: int = 0
    min: float | None = None
    max: float | None = None
    digest: str = ""


def judge_output(
    signature: str,
    output: str,
    report: OutputReport,
    batch_size: int,
    thresholds: Thresholds,
) -> str | None:
    """Why this output fails validation, naming the signature and output, or None.

    It fails when its dtype differs from the declared one, its shape does not fit the
    declared shape (a leading unknown dimension must be the batch size), it holds NaN/Inf
    where the thresholds do not allow it, or a value lies outside the user's range.
    """
    where = f"signature {signature!r} output {output!r}"
    if report.dtype != report.declared_dtype:
        return f"{where} has dtype {report.dtype}, the signature declares {report.declared_dtype}"
    declared = report.declared_shape
    if declared is not None:
        expected = tuple(
            batch_size if size is None and i == 0 else size for i, size in enumerate(declared)
        )
        fits = len(expected) == len(report.shape) and all(
            e is None or e == a for e, a in zip(expected, report.shape, strict=True)
        )
        if not fits:
            shown = tuple("?" if e is None else e for e in expected)
            return (
                f"{where} has shape {list(report.shape)}, expected {list(shown)} for a batch "
                f"of {batch_size} examples (declared {_shape_text(declared)})"
            )
    if report.nonfinite and not thresholds.allows_nonfinite(signature, output):
        return (
            f"{where} holds {report.nonfinite} NaN/Inf values; allow them with "
            f"validation_thresholds={{'allow_nonfinite': ['{signature}/{output}']}}"
        )
    bounds = thresholds.range_of(signature, output)
    if bounds is not None:
        if report.min is None or report.max is None:
            return f"{where} has no finite numeric values to check against {_range_text(bounds)}"
        if (bounds.min is not None and report.min < bounds.min) or (
            bounds.max is not None and report.max > bounds.max
        ):
            return (
                f"{where} has values in [{report.min}, {report.max}], outside the threshold "
                f"{_range_text(bounds)}"
            )
    return None


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("None" if s is None else str(s) for s in shape) + "]"


def _range_text(bounds: Range) -> str:
    low = "-inf" if bounds.min is None else str(bounds.min)
    high = "inf" if bounds.max is None else str(bounds.max)
    return f"[{low}, {high}]"


def check_examples(
    examples: Sequence[Mapping[str, Sequence[Any]]],
    spec: Mapping[str, FeatureSpec],
    source: str,
) -> None:
    """ValidationError naming the example, the feature and the expected dtype/shape unless
    every example has every feature of `spec` with values of its dtype and size."""
    if not examples:
        raise ValidationError(f"warmup examples from {source}: there are none")
    for index, example in enumerate(examples):
        missing = sorted(set(spec) - set(example))
        if missing:
            name = missing[0]
            raise ValidationError(
                f"warmup example {index} from {source} lacks feature {name!r}; the serving "
                f"input expects {_expected(spec[name])}"
            )
        for name, feature in spec.items():
            values = list(example[name])
            if len(values) != feature.size or not all(_fits(v, feature.dtype) for v in values):
                raise ValidationError(
                    f"warmup example {index} from {source}: feature {name!r} is "
                    f"{_described(values)}; the serving input expects {_expected(feature)}"
                )


def _expected(feature: FeatureSpec) -> str:
    return f"dtype {feature.dtype} with shape {list(feature.shape)} ({feature.size} values)"


def _described(values: Sequence[Any]) -> str:
    kinds = sorted({type(v).__name__ for v in values}) or ["no values"]
    return f"{len(values)} values of {'/'.join(kinds)}"


def _fits(value: object, dtype: str) -> bool:
    if dtype == "string":
        return isinstance(value, bytes | str)
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if dtype in INT_DTYPES:
        return isinstance(value, int)
    if dtype in FLOAT_DTYPES:
        return isinstance(value, int | float)
    return False


def generated_examples(
    spec: Mapping[str, FeatureSpec], count: int = GENERATED_EXAMPLES
) -> list[dict[str, list[Any]]]:
    """`count` deterministic examples with values of each feature's dtype and size: integers
    0 and 1 alternating (valid class ids, so a generated label fits any classifier),
    alternating booleans, floats 1.0, 2.0, ..., strings `b"<feature>-<i>"`."""
    examples = []
    for i in range(count):
        example: dict[str, list[Any]] = {}
        for name, feature in spec.items():
            example[name] = [_generated(feature.dtype, name, i + j) for j in range(feature.size)]
        examples.append(example)
    return examples


def _generated(dtype: str, name: str, n: int) -> Any:
    if dtype == "string":
        return f"{name}-{n}".encode()
    if dtype == "bool":
        return n % 2 == 1
    if dtype in FLOAT_DTYPES:
        return float(n + 1)
    return n % 2


@dataclass(frozen=True)
class SignatureRecord:
    """One signature checked: its tag set, key, and its outputs (name -> report)."""

    tag: str
    key: str
    outputs: Mapping[str, OutputReport]


@dataclass(frozen=True)
class ValidationRecord:
    """What validation checked, for `export_metadata.json`: how many examples, where they
    came from (generated, file, definition), the signatures called with their outputs'
    dtypes, shapes and digests, and the TF Serving warmup file written (or None)."""

    examples: int
    source: str
    signatures: tuple[SignatureRecord, ...]
    warmup_requests: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "source": self.source,
            "warmup_requests": self.warmup_requests,
            "signatures": [
                {
                    "tag": s.tag,
                    "key": s.key,
                    "outputs": {
                        name: {"dtype": o.dtype, "shape": list(o.shape), "digest": o.digest}
                        for name, o in sorted(s.outputs.items())
                    },
                }
                for s in self.signatures
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationRecord:
        """Parse a recorded dict (KeyError/TypeError/ValueError on a bad one)."""
        examples = data["examples"]
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
            raise ValueError(f"validation.examples must be a positive int, got {examples!r}")
        source = data["source"]
        if source not in EXAMPLE_SOURCES:
            raise ValueError(f"validation.source must be one of {EXAMPLE_SOURCES}, got {source!r}")
        warmup = data.get("warmup_requests")
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int)):
            raise ValueError(f"validation.warmup_requests must be an int, got {warmup!r}")
        signatures = []
        for s in data["signatures"]:
            outputs = {}
            for name, o in s["outputs"].items():
                shape = tuple(o["shape"])
                if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
                    raise ValueError(f"validation output {name!r} shape must hold ints")
                outputs[str(name)] = OutputReport(
                    dtype=str(o["dtype"]),
                    shape=shape,
                    declared_dtype=str(o["dtype"]),
                    declared_shape=None,
                    digest=str(o["digest"]),
                )
            signatures.append(SignatureRecord(str(s["tag"]), str(s["key"]), outputs))
        return cls(examples, source, tuple(signatures), warmup)
