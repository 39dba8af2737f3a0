"""Export modes, their SavedModel tags, and the order in which they are written.

The names are the SavedModel tag constants (`train`, `eval`, `serve`); the Estimator
`ModeKeys.PREDICT` value `infer` is accepted as an alias of `serve`.
"""

from __future__ import annotations

from collections.abc import Sequence

TRAIN = "train"
EVAL = "eval"
SERVE = "serve"

# Estimator order: TRAIN, EVAL, PREDICT, whatever order the caller used.
MODE_ORDER = (TRAIN, EVAL, SERVE)

_ALIASES = {TRAIN: TRAIN, EVAL: EVAL, SERVE: SERVE, "infer": SERVE}

TRAIN_METHOD_NAME = "tensorflow/supervised/training"
EVAL_METHOD_NAME = "tensorflow/supervised/eval"


def normalize_modes(modes: Sequence[str]) -> tuple[str, ...]:
    """Canonical mode names, without duplicates, in MODE_ORDER; bad names raise ValueError."""
    if isinstance(modes, str):
        raise ValueError(f"modes must be a sequence of mode names, got the string {modes!r}")
    chosen = set()
    for mode in modes:
        canonical = _ALIASES.get(mode) if isinstance(mode, str) else None
        if canonical is None:
            valid = ", ".join(repr(name) for name in _ALIASES)
            raise ValueError(f"unknown export mode {mode!r}; valid modes are {valid}")
        chosen.add(canonical)
    if not chosen:
        raise ValueError("no export modes given; pass at least one of 'train', 'eval', 'serve'")
    return tuple(mode for mode in MODE_ORDER if mode in chosen)


def check_validated_modes(modes: Sequence[str], *, warmup_requests: bool) -> None:
    """ValueError naming `modes` when validating their export cannot work: validation calls
    the `serve` and `eval` signatures (a `train`-only export has none to call), and the
    warmup requests go to the `serve` signatures. Checked before anything is written."""
    chosen = normalize_modes(modes)
    if EVAL not in chosen and SERVE not in chosen:
        raise ValueError(
            f"validation calls the {SERVE!r} and {EVAL!r} signatures, and modes "
            f"{list(chosen)} write neither: add {SERVE!r} or {EVAL!r} to the modes, or "
            "switch validation off (validate=False, --no-validate)"
        )
    if warmup_requests and SERVE not in chosen:
        raise ValueError(
            f"warmup requests call the {SERVE!r} signatures, and modes {list(chosen)} write "
            f"none: add {SERVE!r} to the modes, or drop warmup_requests"
        )
