"""table.png: a sweep table's rows as bars, each row the pipeline's three ACCs (partition, init, VaDE).

Drawn after table.md and table.csv are on disk (`vade_cli.sweeps.table.write`), by matplotlib's
object API, so no pyplot state is involved. It reads rows as `vade_cli.sweeps.table.aggregate`
makes them and imports nothing of the table's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vade_cli.figures import save_png

# (row field, legend, colour), top to bottom within a row: the pipeline's order.
BARS = (
    ("partition_acc", "partition of the AE's latent means", "tab:orange"),
    ("gmm_acc", "AE + prior init", "tab:gray"),
    ("acc", "VaDE (mean ± std over seeds)", "tab:blue"),
)


def _fraction(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def row_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    """The dataset and the swept setting that tell the row apart (e.g. 'digits train.lr=0.001'), plus a
    status other than completed: what the table's first columns hold, nothing else."""
    setting = [f"{k}={row[k]}" for k in keys if row.get(k) not in (None, "")]
    label = " ".join([str(row.get("dataset") or "?"), *setting])
    status = row.get("status")
    return label + (f" ({status})" if status and status != "completed" else "")


def table_figure(rows: list[dict[str, Any]], keys: Sequence[str], path: Path) -> Path:
    """One group of bars per table row: the partition's, the init's and VaDE's ACC (means over seeds)."""
    y = np.arange(len(rows))
    fig = Figure(figsize=(7.5, 1.3 + 0.6 * max(len(rows), 1)))
    ax = fig.subplots()
    height = 0.8 / len(BARS)
    for i, (field, legend, color) in enumerate(BARS):
        means = [_fraction(r, f"{field}_mean") for r in rows]
        stds = [_fraction(r, f"{field}_std") or 0.0 for r in rows] if field == "acc" else None
        offset = (i - (len(BARS) - 1) / 2) * height
        ax.barh(y + offset, [m or 0.0 for m in means], height, xerr=stds, color=color, capsize=3, label=legend,
                alpha=1.0 if field == "acc" else 0.6)  # VaDE's bar, the result, the strongest
        for j, m in enumerate(means):
            if m is not None:
                ax.text(m + (stds[j] if stds else 0.0) + 0.01, j + offset, f"{m:.3f}", va="center", fontsize=7)
            elif field == "acc":
                ax.text(0.01, j + offset, "no result", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([row_label(r, keys) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("clustering accuracy (ACC)")
    ax.grid(axis="x", alpha=0.3)
    # Above the bars: below them it would sit on the x-axis label whatever the figure's height.
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(BARS), frameon=False)
    return save_png(fig, Path(path))
