"""Checkpoint names and the `checkpoint` state file, read and pruned without TensorFlow.

`tf.train.CheckpointManager` and the TF1 Saver write `<model_dir>/checkpoint`, a text-format
`CheckpointState` proto naming the latest checkpoint and the ones still kept. A checkpoint
`<series>-<step>` (`ckpt-1200`, `model.ckpt-1200`) is `<name>.index`,
`<name>.data-<shard>-of-<shards>` and, from the TF1 Saver, `<name>.meta`; it lives in the
model dir, or in a sub-directory of it (`CheckpointManager(checkpoint_name="ckpts/ckpt")`
records `ckpts/ckpt-1200`).

Where a recorded path puts its checkpoint is `checkpoint_location`: a location relative to
the model dir (`ckpt-1200`, `ckpts/ckpt-1200`), the one rule every reader uses.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass

STATE_FILENAME = "checkpoint"
# The file whose existence makes a TF checkpoint prefix a checkpoint.
INDEX_SUFFIX = ".index"
# The TF1 Saver's MetaGraphDef beside a checkpoint; restoring variables never reads it.
META_SUFFIX = ".meta"
# Keras weights files (`model.save_weights("ckpt-<step>.weights.h5")`) are single files.
KERAS_WEIGHTS_SUFFIX = ".weights.h5"

LATEST_FIELD = "model_checkpoint_path"
PATHS_FIELD = "all_model_checkpoint_paths"
TIMESTAMPS_FIELD = "all_model_checkpoint_timestamps"
PRESERVED_FIELD = "last_preserved_timestamp"
_STRING_FIELDS = (LATEST_FIELD, PATHS_FIELD)
_NUMBER_FIELDS = (TIMESTAMPS_FIELD, PRESERVED_FIELD)

_STEP_SUFFIX = re.compile(r"-(\d+)$")
# The files of a TF checkpoint: its index, its data shards, and the TF1 Saver's MetaGraph.
_CHECKPOINT_FILE = re.compile(r"^(.+-\d+)\.(?:index|meta|data-\d+-of-\d+)$")

# The text-proto tokens a state file holds. Numbers before names, so `-inf` and `inf` are
# numbers; a string cannot span lines.
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?
                        |(?i:inf(?:inity)?|nan)\b))
    | (?P<name>[A-Za-z_]\w*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<punct>[:,;{}\[\]<>])
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))")
_SIMPLE_ESCAPES = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
    "?": b"?",
}


class CheckpointStateError(ValueError):
    """The `checkpoint` state file cannot be parsed."""


@dataclass(frozen=True)
class CheckpointState:
    """The parsed `checkpoint` file: the latest checkpoint and the kept ones, as recorded
    (relative or absolute), and `model_dir`, the directory holding the file ("" when
    unknown), which `location` resolves them in."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: tuple[str, ...]
    model_dir: str = ""

    def location(self, recorded: str) -> str | None:
        """Where in the model dir `recorded` puts its checkpoint (`checkpoint_location`)."""
        return checkpoint_location(recorded, self.model_dir)

    @property
    def series(self) -> tuple[str, ...]:
        """The series its entries are of (their locations without `-<step>`: `model.ckpt`,
        `ckpts/ckpt`), sorted."""
        located = (
            self.location(p) for p in (self.model_checkpoint_path, *self.all_model_checkpoint_paths)
        )
        named = (checkpoint_series(loc) for loc in located if loc is not None)
        return tuple(sorted({s for s in named if s is not None}))

    @property
    def directories(self) -> tuple[str, ...]:
        """The sub-directories of the model dir its series live in (`ckpts`), sorted."""
        return tuple(sorted({s.rpartition("/")[0] for s in self.series} - {""}))


@dataclass(frozen=True)
class _Field:
    """One `key: value` field: the value unescaped when it is a string, as written when a
    number or a name; `start`/`end` delimit it in the text (with a `,` or `;` after it)."""

    key: str
    value: str
    start: int
    end: int


def parse_checkpoint_state(
    text: str, source: str = STATE_FILENAME, *, model_dir: str = ""
) -> CheckpointState:
    """Parse the text proto (fields in any layout, one per line or all on one line; unknown
    scalar fields are skipped); paths are returned as recorded, `model_dir` is kept to
    resolve them. CheckpointStateError names `source` and what is wrong."""
    latest: str | None = None
    kept: list[str] = []
    for field in _fields(text, source):
        if field.key == LATEST_FIELD:
            if latest is not None:
                raise CheckpointStateError(f"{source} names {LATEST_FIELD} more than once")
            latest = field.value
        elif field.key == PATHS_FIELD:
            kept.append(field.value)
    if not latest:
        raise CheckpointStateError(f"{source} names no {LATEST_FIELD}")
    if latest not in kept:
        kept.append(latest)
    return CheckpointState(latest, tuple(kept), model_dir)


def prune_checkpoint_state(text: str, drop: Collection[str], source: str = STATE_FILENAME) -> str:
    """The state file `text` without the `all_model_checkpoint_paths` entries recorded as
    one of `drop` (the paths as the file records them), nor their
    `all_model_checkpoint_timestamps` (TF keeps one per path, in the same order). Everything
    else stays as written: the latest checkpoint (never dropped), the path style (relative or
    absolute), `last_preserved_timestamp`, unknown fields and the layout.

    CheckpointStateError when the file cannot be parsed, or holds timestamps that are not one
    per path (then which timestamp belongs to which path is unknown).
    """
    latest = parse_checkpoint_state(text, source).model_checkpoint_path
    fields = _fields(text, source)
    paths = [f for f in fields if f.key == PATHS_FIELD]
    stamps = [f for f in fields if f.key == TIMESTAMPS_FIELD]
    if stamps and len(stamps) != len(paths):
        raise CheckpointStateError(
            f"{source} holds {len(stamps)} {TIMESTAMPS_FIELD} for {len(paths)} "
            f"{PATHS_FIELD}; TensorFlow writes one per path"
        )
    doomed = set(drop) - {latest}
    removed = [
        field
        for index, path in enumerate(paths)
        if path.value in doomed
        for field in (path, *([stamps[index]] if stamps else []))
    ]
    return _without(text, removed, source) if removed else text


def _without(text: str, removed: Collection[_Field], source: str) -> str:
    """`text` without the `removed` fields. A run of removed fields goes with the whitespace
    up to what follows it, or, at the end of the file, with the whitespace before it: one
    field per line loses its line, fields on one line stay separated as the others are,
    comments stay."""
    comment_ends = {
        at + len(token) for kind, token, at in _tokens(text, source) if kind == "comment"
    }
    kept, at = [], 0
    for first, last in _runs(sorted(removed, key=lambda f: f.start), text):
        following = _next_nonspace(text, last.end)
        if following < len(text):
            start, end = first.start, following
        else:
            previous = len(text[: first.start].rstrip())
            start = previous + 1 if previous in comment_ends else previous
            end = last.end
        kept.append(text[at:start])
        at = end
    kept.append(text[at:])
    return "".join(kept)


def _runs(removed: list[_Field], text: str) -> list[tuple[_Field, _Field]]:
    """The removed fields grouped into runs with only whitespace between them: (first, last)."""
    runs: list[tuple[_Field, _Field]] = []
    for field in removed:
        if runs and _next_nonspace(text, runs[-1][1].end) == field.start:
            runs[-1] = (runs[-1][0], field)
        else:
            runs.append((field, field))
    return runs


def _next_nonspace(text: str, offset: int) -> int:
    """The offset of the first character from `offset` on that is not whitespace."""
    return len(text) - len(text[offset:].lstrip())


def _fields(text: str, source: str) -> list[_Field]:
    """Every `key: value` field of the text proto, strings unescaped and decoded."""
    tokens = [t for t in _tokens(text, source) if t[0] != "comment"]
    fields = []
    at = 0
    while at < len(tokens):
        kind, token, start = tokens[at]
        if kind != "name":
            raise _syntax(text, source, start, f"expected a field name, got {token!r}")
        key = token
        at += 1
        if at < len(tokens) and tokens[at][1] == ":":
            at += 1
        elif at == len(tokens) or tokens[at][1] not in ("{", "<"):
            got = "the end of the file" if at == len(tokens) else repr(tokens[at][1])
            raise _syntax(text, source, start, f"expected ':' after {key!r}, got {got}")
        if at == len(tokens):
            raise _syntax(text, source, start, f"{key!r} has no value")
        kind, token, value_start = tokens[at]
        if kind == "string":
            parts = []
            while at < len(tokens) and tokens[at][0] == "string":
                parts.append(_unquote(text, source, tokens[at][2], tokens[at][1]))
                at += 1
            value, is_string = "".join(parts), True
        elif kind in ("number", "name"):
            value, is_string = token, False
            at += 1
        else:
            raise _syntax(
                text,
                source,
                value_start,
                f"{key!r} has no scalar value ({token!r}): a checkpoint state file holds "
                "one quoted string or number per field",
            )
        if key in _STRING_FIELDS and not is_string:
            raise _syntax(text, source, value_start, f"{key} must be a quoted string, got {value}")
        if key in _NUMBER_FIELDS and kind != "number":
            raise _syntax(text, source, value_start, f"{key} must be a number, got {token}")
        end = tokens[at - 1][2] + len(tokens[at - 1][1])
        if at < len(tokens) and tokens[at][1] in (",", ";"):
            end = tokens[at][2] + 1
            at += 1
        fields.append(_Field(key, value, start, end))
    return fields


def _tokens(text: str, source: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) of every token (comments included) but whitespace."""
    tokens = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            what = "unterminated string" if text[at] in "\"'" else f"character {text[at]!r}"
            raise _syntax(text, source, at, f"unexpected {what}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group(), at))
        at = match.end()
    return tokens


def _unquote(text: str, source: str, offset: int, literal: str) -> str:
    """A quoted string's value: C escapes (`\\n`, `\\"`, octal `\\303`, hex `\\xc3`) undone
    to bytes, decoded as UTF-8."""
    body = literal[1:-1]
    data = bytearray()
    at = 0
    for match in _ESCAPE.finditer(body):
        data += body[at : match.start()].encode("utf-8")
        octal, hexadecimal, simple = match.groups()
        if octal is not None and int(octal, 8) > 0xFF:
            raise _syntax(text, source, offset, f"octal escape \\{octal} is not a byte")
        if octal is not None or hexadecimal is not None:
            data.append(int(octal, 8) if octal is not None else int(hexadecimal, 16))
        elif simple in _SIMPLE_ESCAPES:
            data += _SIMPLE_ESCAPES[simple]
        else:
            raise _syntax(text, source, offset, f"unknown escape \\{simple} in {literal}")
        at = match.end()
    data += body[at:].encode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _syntax(text, source, offset, f"{literal} is not UTF-8 text") from None


def _syntax(text: str, source: str, offset: int, message: str) -> CheckpointStateError:
    """A CheckpointStateError naming the source and the line of `offset`."""
    line = text.count("\n", 0, offset) + 1
    return CheckpointStateError(f"{source} line {line}: {message}")


def checkpoint_location(recorded: str, model_dir: str = "") -> str | None:
    """Where in the model dir a recorded checkpoint path puts the checkpoint, relative to
    the model dir (`ckpt-5`, `ckpts/ckpt-5`); None when it names no checkpoint file.

    - A relative path inside the model dir is used as written (`ckpts/ckpt-5`,
      `./ckpt-5` -> `ckpt-5`), as TensorFlow resolves it; so is an absolute path or URI under
      `model_dir` (`<model_dir>/ckpts/ckpt-5` -> `ckpts/ckpt-5`).
    - Any other path (absolute elsewhere: the model dir was copied since; or a relative one
      leaving the model dir, `../other/ckpt-5`) names the checkpoint by its name, directly
      in the model dir: `ckpt-5`. The recorded location itself is never used.
    """
    path = recorded.rstrip("/")
    base = model_dir.rstrip("/")
    inside: str | None = path
    if path.startswith("/") or "://" in path:
        inside = path[len(base) + 1 :] if base and path.startswith(base + "/") else None
    if inside is not None:
        normal = posixpath.normpath(inside)
        if normal not in (".", "..") and not normal.startswith(("../", "/")):
            return normal
    name = checkpoint_name(path)
    return None if name in ("", ".", "..") else name


def checkpoint_name(path: str) -> str:
    """The last segment of a checkpoint's path or URI (`gs://b/run/ckpt-1` -> `ckpt-1`)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def checkpoint_step(prefix: str) -> int | None:
    """The number a checkpoint prefix ends with (`ckpt-1200`, `model.ckpt-1200`), or None."""
    match = _STEP_SUFFIX.search(checkpoint_name(prefix))
    return int(match.group(1)) if match else None


def is_keras_weights(path: str) -> bool:
    """Whether `path` names a Keras weights file (`<name>.weights.h5`), not a TF prefix."""
    return path.rstrip("/").endswith(KERAS_WEIGHTS_SUFFIX)


def keras_weights_step(path: str) -> int | None:
    """The number before `.weights.h5` (`ckpt-1200.weights.h5` -> 1200), or None when the
    name is not `<name>-<step>.weights.h5`."""
    if not is_keras_weights(path):
        return None
    return checkpoint_step(path.rstrip("/")[: -len(KERAS_WEIGHTS_SUFFIX)])


def step_in_name(path: str) -> int | None:
    """The global step a checkpoint is named for: `ckpt-1200` or `ckpt-1200.weights.h5`."""
    return keras_weights_step(path) if is_keras_weights(path) else checkpoint_step(path)


def checkpoint_prefix(filename: str) -> str | None:
    """The checkpoint a file of a model dir belongs to (`model.ckpt-100.meta` ->
    `model.ckpt-100`): its `.index`, `.data-<shard>-of-<shards>` or `.meta` file; else None."""
    match = _CHECKPOINT_FILE.match(filename)
    return match.group(1) if match else None


def checkpoint_series(location: str) -> str | None:
    """The series a checkpoint belongs to: its location in the model dir without `-<step>`
    (`model.ckpt-7` -> `model.ckpt`, `ckpts/ckpt-7` -> `ckpts/ckpt`), or None when its name
    does not end with a step."""
    parent, _, name = location.rstrip("/").rpartition("/")
    match = _STEP_SUFFIX.search(name)
    if match is None or match.start() == 0:
        return None
    return f"{parent}/{name[: match.start()]}" if parent else name[: match.start()]
