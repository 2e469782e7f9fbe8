"""report.md: a finished run's key numbers and its figures, as Markdown that reads on its own.

Rendered from the run's report and what `figures.RunView` computed once (latent means, predictions,
mixture weights); `figures.write_all` writes it after drawing the figures, so it can link the ones
drawn and name the ones that failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vade_cli import checkpoint
from vade_cli.metrics import SILHOUETTE_POINTS, silhouette
from vade_cli.text import decimal

FIGURE_CAPTIONS = {
    "samples.png": "Each row is one cluster: images decoded from z ~ N(mu_c, sigma2_c) on the left, the real "
    "samples whose latent means lie nearest mu_c on the right.",
    "confusion.png": "Clusters (rows, ordered by the class Hungarian matching assigns them) against true "
    "classes; "
    "numbers are counts, shading is each cluster's share.",
    "latent.png": "The encoder's latent means in two dimensions, coloured by predicted cluster.",
    "curves.png": "Training curves from metrics.jsonl: the terms of the negative ELBO per epoch; label-free "
    "signs of movement (mean max q(c|x), share of points that changed cluster, smallest cluster's share); "
    "and the scores when labels exist.",
}

# Under the time table of a resumed run: which session each number counts.
RESUMED_NOTES = {
    "train": "Resumed during VaDE training: pretrain and prior init are an earlier session's; VaDE training "
    "and total count this session only.",
    "pretrain": "Resumed during pretraining: pretrain counts the epochs left after the resume, and total "
    "this session only.",
}


class RunSummary(Protocol):
    """What report.md reads of a finished run (`figures.RunView` has it)."""

    result: dict[str, Any]  # report.json's content
    latent: np.ndarray  # [N,J] latent means
    pred: np.ndarray  # [N] predicted clusters
    weights: np.ndarray  # [K] mixture weights pi_c
    seed: int
    n_clusters: int


def write(run_dir: Path, view: RunSummary, figures: list[Path], failed: dict[str, str]) -> Path:
    """report.md in `run_dir`, atomically."""
    path = Path(run_dir) / checkpoint.REPORT_MD
    checkpoint.atomic_write_text(path, report_markdown(view, figures, failed))
    return path


def report_markdown(view: RunSummary, figures: list[Path], failed: dict[str, str]) -> str:
    """The run's key numbers and figures, as Markdown that needs nothing else to be read."""
    r = view.result
    ds = r.get("dataset", {})
    lines = [f"# VaDE on {ds.get('name', '?')} (K={r.get('n_clusters')}, seed {r.get('seed')})", ""]
    lines += [
        f"- data: {ds.get('n_samples')} samples x {ds.get('n_features')} features, "
        f"{ds.get('likelihood')} likelihood"
        + (f", images {ds['image_shape'][0]}x{ds['image_shape'][1]}" if ds.get("image_shape") else ""),
        f"- device: {r.get('device')}; VaDE epochs: {r.get('epochs')}"
        + ("; autoencoder reused from the cache" if r.get("pretrain_cache_hit") else ""),
        f"- run folder: `{r.get('run_dir')}`",
        "",
    ]
    lines += _scores_section(view) + _timing_section(r) + _figures_section(figures, failed)
    return "\n".join(lines) + "\n"


def _scores_section(view: RunSummary) -> list[str]:
    r = view.result
    out = ["## Scores", ""]
    m = r.get("metrics", {})
    if m.get("final"):
        out += ["| stage | ACC | NMI | ARI |", "|---|---:|---:|---:|"]
        for label, key in (("AE + prior init", "gmm_init"), ("VaDE", "final")):
            s = m.get(key) or {}
            out.append(f"| {label} | {decimal(s.get('acc'))} | {decimal(s.get('nmi'))} | {decimal(s.get('ari'))} |")
        out.append("")
    else:
        out += [
            (
                "This dataset has no labels, so ACC, NMI and ARI cannot be computed (they need labels). "
                "What can be said without them:"
            ),
            "",
        ]
    sil = silhouette(view.latent, view.pred, view.seed)
    out += [
        f"- final ELBO: {decimal(r.get('final_elbo'), 2)} (per sample)",
        (
            f"- silhouette of the latent means: {decimal(sil)} (on up to {SILHOUETTE_POINTS} points; -1..1, "
            "higher is better separated)"
            if sil is not None
            else "- silhouette of the latent means: undefined (all points fall into one cluster)"
        ),
        "",
    ]
    sizes = r.get("cluster_sizes") or np.bincount(view.pred, minlength=view.n_clusters).tolist()
    out += [
        "| cluster | " + " | ".join(str(c) for c in range(len(sizes))) + " |",
        "|---|" + "---:|" * len(sizes),
        "| size | " + " | ".join(str(s) for s in sizes) + " |",
        "| pi_c | " + " | ".join(f"{w:.3f}" for w in view.weights) + " |",
        "",
    ]
    return out


def _timing_section(r: dict[str, Any]) -> list[str]:
    t = r.get("timings") or {}
    return [
        "## Time (seconds)",
        "",
        "| pretrain | prior init | VaDE training | total |",
        "|---:|---:|---:|---:|",
        (
            f"| {decimal(t.get('pretrain_s'), 1)} | {decimal(t.get('gmm_s'), 1)} | {decimal(t.get('train_s'), 1)} "
            f"| {decimal(t.get('total_s'), 1)} |"
        ),
        "",
        *([RESUMED_NOTES[t["resumed_in"]], ""] if t.get("resumed_in") in RESUMED_NOTES else []),
    ]


def _figures_section(figures: list[Path], failed: dict[str, str]) -> list[str]:
    out = ["## Figures", ""]
    for path in figures:
        out += [
            f"### {path.stem}",
            "",
            f"![{path.stem}]({checkpoint.FIGURES_DIR}/{path.name})",
            "",
            FIGURE_CAPTIONS.get(path.name, ""),
            "",
        ]
    if failed:
        out += ["Not drawn: " + "; ".join(f"{name} ({why})" for name, why in failed.items()), ""]
    return out
