"""table.png: a sweep table's rows as bars (VaDE ACC mean +- std, the init's ACC, published numbers).

Drawn after table.md and table.csv are on disk (`vade_cli.sweep`), by matplotlib's object API, so no
pyplot state is involved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vade_cli.figures import save_png

# Row fields that describe results, not the setting a row stands for.
_RESULT_FIELDS = {"status", "runs", "seeds", "n_samples", "n_clusters", "error", "label", "paper_name"}
_RESULT_SUFFIXES = ("_mean", "_std", "_min", "_max")


def _row_fraction(row: dict[str, Any], *keys: str) -> float | None:
    """The first of `keys` holding a finite number, as a fraction (published tables give percent)."""
    for key in keys:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) / 100 if value > 1.5 else float(value)
    return None


def _row_label(row: dict[str, Any]) -> str:
    """The dataset and whatever setting the sweep varied (e.g. train.lr=0.001), plus a failed status."""
    if row.get("label"):
        return str(row["label"])
    setting = [
        f"{k}={v}"
        for k, v in row.items()
        if k != "dataset"
        and k not in _RESULT_FIELDS
        and not k.endswith(_RESULT_SUFFIXES)
        and not k.startswith(("paper_", "published_", "vade_", "gmm_"))
        and v not in (None, "")
    ]
    label = " ".join([str(row.get("dataset") or "?"), *setting])
    status = row.get("status")
    return label + (f" ({status})" if status and status != "completed" else "")


def table_figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """A sweep table as bars: VaDE ACC mean +- std per row, published numbers as red diamonds."""
    rows = list(rows)
    labels = [_row_label(r) for r in rows]
    means = [_row_fraction(r, "vade_acc_mean", "acc_mean") for r in rows]
    stds = [_row_fraction(r, "vade_acc_std", "acc_std") or 0.0 for r in rows]
    gmm = [_row_fraction(r, "gmm_acc_mean") for r in rows]
    published = [_row_fraction(r, "published_acc", "paper_vade_acc") for r in rows]
    y = np.arange(len(rows))
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * max(len(rows), 1)))
    ax = fig.subplots()
    has_gmm = any(v is not None for v in gmm)
    height = 0.38 if has_gmm else 0.6
    offset = height / 2 if has_gmm else 0.0
    ax.barh(
        y - offset,
        [m or 0.0 for m in means],
        height,
        xerr=stds,
        color="tab:blue",
        capsize=3,
        label="VaDE ACC (mean +- std)",
    )
    if has_gmm:
        ax.barh(
            y + offset, [g or 0.0 for g in gmm], height, color="tab:gray", alpha=0.6, label="AE + prior init"
        )
    for i, m in enumerate(means):
        note = f"{m:.3f}" if m is not None else "no result"
        ax.text((m or 0.0) + stds[i] + 0.01, i - offset, note, va="center", fontsize=8)
    marked = [(i, p) for i, p in enumerate(published) if p is not None]
    if marked:
        ax.scatter(
            [p for _, p in marked],
            [i - offset for i, _ in marked],
            marker="D",
            color="tab:red",
            zorder=3,
            label="published",
        )
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("clustering accuracy (ACC)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    return save_png(fig, Path(path))
