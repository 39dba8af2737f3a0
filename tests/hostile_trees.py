"""Hostile entries for the symbolic-link tests: link loops, dangling links and links that
lead out of a directory, planted in real directories; and a watchdog, since the failure
these tests guard against is a walk that never ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Far above anything a listing of these small trees takes, even on a loaded machine: not a
# timing target, only a bound that turns a hang into a failure.
HANG_SECONDS = 120.0


@dataclass(frozen=True)
class Planted:
    """The names planted in one directory, by kind."""

    doubling_dir: str  # a foreign dir holding two links to `.`
    loop: str  # a link to itself
    dangling: str  # a link to nothing
    outside: str  # a link to a directory outside
    loop_named_version: str  # integer-named link to itself
    dangling_named_version: str  # integer-named link to nothing
    outside_named_version: str  # integer-named link to a directory outside

    @property
    def integer_links(self) -> list[int]:
        """The integer-named links, sorted."""
        names = (self.loop_named_version, self.dangling_named_version, self.outside_named_version)
        return sorted(int(name) for name in names)


def plant_hostile_links(directory: Path, outside: Path) -> Planted:
    """Plant every kind of hostile link in `directory` (created if needed); `outside` is a
    directory elsewhere that the links lead to (its content must never change)."""
    directory.mkdir(parents=True, exist_ok=True)
    planted = Planted(
        doubling_dir="foreign-tree",
        loop="loop",
        dangling="dangling",
        outside="outside",
        loop_named_version="1000000001",
        dangling_named_version="1000000002",
        outside_named_version="1000000003",
    )
    doubling = directory / planted.doubling_dir
    doubling.mkdir()
    (doubling / "a").symlink_to(".")
    (doubling / "b").symlink_to(".")
    for name in (planted.loop, planted.loop_named_version):
        (directory / name).symlink_to(name)
    for name in (planted.dangling, planted.dangling_named_version):
        (directory / name).symlink_to(directory / "nothing-here")
    for name in (planted.outside, planted.outside_named_version):
        (directory / name).symlink_to(outside)
    return planted


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every regular file below `directory` (relative name -> content), links not followed."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def finishes(call: Callable[[], T], seconds: float = HANG_SECONDS) -> T:
    """`call()`'s result, or its exception re-raised; AssertionError when it is still running
    after `seconds` (the thread is left behind as a daemon)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a walk that never ends?"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
