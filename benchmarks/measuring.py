"""Measuring sides of a benchmark in one process: interleaved rounds, medians, paired ratios.

Every action writes into a path it is given (absent before the call, removed after it, not
timed). One warm-up call of each action is not counted. Then each round runs every action
once, every other round in the reverse order, so that no side always goes first; a side
and its baseline sit next to each other in `actions`, so a paired ratio compares two
neighbouring measurements, which a shared machine's changing load disturbs much less than
it disturbs two medians taken over the whole run.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

Action = Callable[[Path], object]


@dataclass
class Rounds:
    """Wall-clock and CPU seconds (every thread of the process) of each action, per round."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str, *, cpu: bool = False) -> float:
        """The median seconds of one action."""
        return statistics.median((self.cpu if cpu else self.wall)[name])

    def paired(self, ours: str, theirs: str, *, cpu: bool = False) -> float:
        """The median over rounds of ours / theirs measured in the same round."""
        seconds = self.cpu if cpu else self.wall
        return paired_ratio(seconds[ours], seconds[theirs])


def paired_ratio(ours_seconds: list[float], their_seconds: list[float]) -> float:
    """The median over rounds of ours / theirs measured in the same round, one right after
    the other."""
    return statistics.median(a / b for a, b in zip(ours_seconds, their_seconds, strict=True))


def timed(action: Action, target: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of `action(target)`; `target` is removed afterwards."""
    start, start_cpu = time.perf_counter(), time.process_time()
    action(target)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    shutil.rmtree(target)
    return elapsed, cpu


def interleaved_rounds(actions: Mapping[str, Action], work: Path, runs: int) -> Rounds:
    """One uncounted warm-up call of each action, then `runs` interleaved rounds."""
    target = work / "round"
    for action in actions.values():
        timed(action, target)
    rounds = Rounds({name: [] for name in actions}, {name: [] for name in actions})
    for number in range(runs):
        ordered = list(actions.items())
        for name, action in ordered if number % 2 == 0 else reversed(ordered):
            seconds, cpu_seconds = timed(action, target)
            rounds.wall[name].append(seconds)
            rounds.cpu[name].append(cpu_seconds)
    return rounds
