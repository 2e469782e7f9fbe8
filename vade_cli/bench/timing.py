"""Timing: contenders warmed up, then timed in turn, repeat by repeat."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Contender:
    """One timed piece of work; `warm_up` runs the same code paths on less work, untimed."""

    name: str
    run: Callable[[], object]
    warm_up: Callable[[], object]
    samples: int  # samples processed by one `run`
    precision: str = "fp32"  # "fp32" or "bf16": what the networks' matmuls ran in
    seconds: list[float] = field(default_factory=list)

    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def samples_per_s(self) -> float:
        return self.samples / self.median_s()


class Clock:
    """Wall time of a region with the device queue drained on both sides (CUDA work is asynchronous)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object]) -> float:
        self._sync()
        start = time.perf_counter()
        fn()
        self._sync()
        return time.perf_counter() - start


def measure(contenders: list[Contender], repeats: int, clock: Clock) -> None:
    """Warm every contender up, then time them in turn, repeat by repeat (noise hits all alike).

    Odd repeats run the contenders in reverse order, so whatever the first (or last) place costs,
    such as the page cache still flushing a checkpoint the one before wrote, falls on each in turn.
    """
    for c in contenders:
        c.warm_up()
    for r in range(repeats):
        for c in contenders if r % 2 == 0 else reversed(contenders):
            c.seconds.append(clock.time(c.run))
