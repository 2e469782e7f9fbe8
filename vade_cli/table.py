"""Sweep aggregation (placeholder until the sweeps issue lands)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback

LAST_SWEEP_FAILURES = 0


class SweepTableCallback(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        return None
