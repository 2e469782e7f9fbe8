"""Pictures of a finished run: figures/*.png, then report.md (`report_md`) linking them.

Every figure is drawn independently and written atomically; one that fails is named in a warning
and in report.md, and the others (and report.json, already on disk) are untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig

from vade_cli import checkpoint, metrics, report, report_md

matplotlib.use("Agg")  # files only: no display, safe in sweeps and on headless machines
import matplotlib.pyplot as plt

DPI = 110
MAP_POINTS = 5000  # latent map subsample: PCA is instant, t-SNE is not
SAMPLES_SHOWN = 8  # decoded samples per cluster in figures/samples.png (and as many real members)
MAX_GRID_COLUMNS = 32  # task=sample: wider grids are cut here (samples.npz keeps them all)
MARKERS = "os^vDPX*<>"  # one per true class, up to ten


def save_png(fig: Figure, path: Path) -> Path:
    """Render to memory first, so a half-written PNG never replaces a good one."""
    buf = BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    checkpoint.atomic_write_bytes(path, buf.getvalue())
    return Path(path)


# ----------------------------------------------------------------------------------------- helpers


def cluster_colors(n_clusters: int) -> np.ndarray:
    """Distinct colours for up to 20 clusters, an evenly spaced colour wheel beyond."""
    if n_clusters <= 10:
        return plt.get_cmap("tab10")(np.arange(n_clusters))
    if n_clusters <= 20:
        return plt.get_cmap("tab20")(np.arange(n_clusters))
    return plt.get_cmap("hsv")(np.linspace(0, 1, n_clusters, endpoint=False))


def matched_order(
    y: np.ndarray | None, pred: np.ndarray, n_clusters: int
) -> tuple[list[int], dict[int, int]]:
    """Clusters sorted by the class Hungarian matching gives them (unmatched last), and that matching.

    A cluster matched to a class it holds no member of is left unmatched: naming that class would mislead.
    """
    if y is None:
        return list(range(n_clusters)), {}
    table = metrics.contingency(y, pred)
    matching = {c: k for c, k in metrics.best_matching(y, pred).items() if table[c, k] > 0}
    order = sorted(range(n_clusters), key=lambda c: (matching.get(c, math.inf), c))
    return order, matching


def mosaic(images: np.ndarray, gap: int = 1) -> np.ndarray:
    """[rows, cols, H, W] -> one 2-D array with `gap` NaN pixels between tiles (NaN draws blank)."""
    rows, cols, h, w = images.shape
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(cols):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[r, c]
    return canvas


def image_range(x: np.ndarray, likelihood: str) -> tuple[float, float]:
    """Pixel range to display: [0,1] for Bernoulli pixels, the data's robust range otherwise."""
    if likelihood == "bernoulli":
        return 0.0, 1.0
    lo, hi = np.percentile(x, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def image_grid_figure(
    blocks: list[tuple[str, np.ndarray]], row_labels: list[str], vrange: tuple[float, float]
) -> Figure:
    """Side-by-side blocks of [rows, cols, H, W] images (a titled panel each), rows labelled on the left."""
    rows, _, h, w = blocks[0][1].shape
    widths = [b.shape[1] for _, b in blocks]
    tile = 0.55 if max(h, w) <= 16 else 0.75  # inches per image
    fig, axes = plt.subplots(
        1,
        len(blocks),
        figsize=(tile * sum(widths) + 0.3 * len(blocks), tile * rows + 0.5),
        gridspec_kw={"width_ratios": widths, "wspace": 0.06},
        squeeze=False,
    )
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    for i, (ax, (title, images)) in enumerate(zip(axes[0], blocks)):
        ax.imshow(mosaic(images), cmap=cmap, vmin=vrange[0], vmax=vrange[1], interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([(h + 1) * r + (h - 1) / 2 for r in range(rows)] if i == 0 else [])
        if i == 0:
            ax.set_yticklabels(row_labels, fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    return fig


def save_sample_grid(
    path: Path,
    samples: np.ndarray,
    clusters: np.ndarray,
    image_shape: tuple[int, int],
    weights: np.ndarray,
    likelihood: str,
) -> Path:
    """task=sample's picture: one row of decoded draws per cluster, labelled with pi_c."""
    n_clusters = len(weights)
    per_row = np.bincount(clusters, minlength=n_clusters).max()
    cols = int(min(per_row, MAX_GRID_COLUMNS))
    grid = np.stack([samples[clusters == c][:cols].reshape(-1, *image_shape) for c in range(n_clusters)])
    labels = [f"cluster {c}  $\\pi$={weights[c]:.2f}" for c in range(n_clusters)]
    title = f"decoded from z ~ N($\\mu_c$, $\\sigma^2_c$), {cols} per cluster"
    fig = image_grid_figure([(title, grid)], labels, image_range(samples, likelihood))
    return save_png(fig, path)


# ----------------------------------------------------------------------------------------- figures


class RunView:
    """What the figures share, computed once: latent means, weights, labels, the matching."""

    def __init__(self, run_dir: Path, model: Any, dataset: Any, x: torch.Tensor, pred: np.ndarray,
                 result: dict[str, Any], cfg: DictConfig):  # fmt: skip
        self.run_dir, self.model, self.dataset, self.result, self.cfg = Path(run_dir), model, dataset, result, cfg
        self.x = x
        self.pred = np.asarray(pred, dtype=np.int64)
        self.y = dataset.y
        self.seed = int(cfg.seed)
        self.n_clusters = int(model.prior.n_clusters)
        model.eval()
        self.latent = model.latent_means(x).float().cpu().numpy()
        self.weights = model.prior.log_pi().exp().detach().float().cpu().numpy()
        self.prior_mu = model.prior.mu.detach().float().cpu().numpy()
        self.order, self.matching = matched_order(self.y, self.pred, self.n_clusters)

    def row_label(self, c: int) -> str:
        label = f"cluster {c}  $\\pi$={self.weights[c]:.2f}"
        return label + (f"  ~ class {self.matching[c]}" if c in self.matching else "")


def nearest_members(latent: np.ndarray, pred: np.ndarray, center: np.ndarray, c: int, n: int) -> np.ndarray:
    """The n points whose latent means lie closest to `center`, among those predicted in c if any."""
    candidates = np.flatnonzero(pred == c)
    if len(candidates) == 0:
        candidates = np.arange(len(latent))
    dist = np.linalg.norm(latent[candidates] - center, axis=1)
    return candidates[np.argsort(dist, kind="stable")[:n]]


def draw_samples(view: RunView, path: Path) -> Path | None:
    """Generated images per cluster beside the real members nearest that cluster's mean."""
    shape = view.dataset.image_shape
    if shape is None:
        return None
    n = SAMPLES_SHOWN
    generator = torch.Generator(device=view.model.prior.mu.device).manual_seed(view.seed)
    decoded, clusters = view.model.sample(n, generator)
    decoded, clusters = decoded.float().cpu().numpy(), clusters.cpu().numpy()
    x = view.dataset.x
    blank = np.full(shape, np.nan)
    generated, members = [], []
    for c in view.order:
        generated.append(decoded[clusters == c].reshape(n, *shape))
        near = nearest_members(view.latent, view.pred, view.prior_mu[c], c, n)
        tiles = [x[i].reshape(shape) for i in near] + [blank] * (n - len(near))
        members.append(np.stack(tiles))
    blocks = [
        ("decoded from z ~ N($\\mu_c$, $\\sigma^2_c$)", np.stack(generated)),
        ("real members nearest $\\mu_c$", np.stack(members)),
    ]
    fig = image_grid_figure(
        blocks, [view.row_label(c) for c in view.order], image_range(x, view.dataset.likelihood)
    )
    return save_png(fig, path)


def draw_confusion(view: RunView, path: Path) -> Path | None:
    """Clusters (rows, reordered to their matched class) against true classes; shading = row share."""
    if view.y is None:
        return None
    table = metrics.contingency(view.y, view.pred)
    full = np.zeros((view.n_clusters, table.shape[1]), dtype=np.int64)
    full[: table.shape[0]] = table  # trailing empty clusters have no row in the contingency table
    counts = full[view.order]
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n_rows, n_cols = counts.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * n_cols, 1.0 + 0.42 * n_rows))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    if n_rows * n_cols <= 900:
        for (r, c), count in np.ndenumerate(counts):
            ax.text(
                c,
                r,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share[r, c] > 0.5 else "black",
            )
    ax.set_xticks(range(n_cols))
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels([f"c{c}" for c in view.order])
    ax.set_xlabel("true class")
    ax.set_ylabel("cluster (ordered by matched class)")
    ax.set_title(f"confusion after Hungarian matching, ACC {metrics.cluster_acc(view.y, view.pred):.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the cluster")
    return save_png(fig, path)


def _with_zero_axis(points: np.ndarray) -> np.ndarray:
    """A 1-D latent space drawn on a line: nothing to project."""
    return np.column_stack([points[:, 0], np.zeros(len(points))])


def project_2d(
    points: np.ndarray, method: str, seed: int, centers: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D map of the latent means: PCA (linear, fast) or t-SNE (local structure, slow).

    PCA also places `centers` (the prior's mu_c) on the map; t-SNE cannot place points it was not fit on.
    """
    if points.shape[1] == 1:
        return _with_zero_axis(points), None if centers is None else _with_zero_axis(centers)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, len(points) - 1) / 3))
        return TSNE(2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(points), None
    from sklearn.decomposition import PCA

    pca = PCA(2, random_state=seed).fit(points)
    return pca.transform(points), None if centers is None else pca.transform(centers)


def draw_latent(view: RunView, path: Path) -> Path | None:
    """Latent means coloured by cluster; the true class as marker shape when there are at most ten."""
    method = str(view.cfg.report.get("latent_map", "pca") or "pca").lower()
    idx = metrics.subsample(len(view.latent), MAP_POINTS, view.seed)
    xy, centers = project_2d(view.latent[idx], method, view.seed, view.prior_mu)
    pred = view.pred[idx]
    colors = cluster_colors(view.n_clusters)
    y = view.y[idx] if view.y is not None else None
    use_markers = y is not None and int(y.max()) < len(MARKERS)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    groups = [(int(k), y == k) for k in np.unique(y)] if use_markers else [(None, np.ones(len(xy), bool))]
    for label, mask in groups:
        marker = MARKERS[label] if label is not None else "o"
        ax.scatter(
            xy[mask, 0], xy[mask, 1], c=colors[pred[mask]], marker=marker, s=14, alpha=0.7, linewidths=0
        )
    if centers is not None:
        ax.scatter(
            centers[:, 0], centers[:, 1], c=colors, marker="X", s=140, edgecolors="black", linewidths=1.2
        )
    _latent_legends(ax, colors, view.n_clusters, [k for k, _ in groups] if use_markers else [])
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    note = f"{len(idx)} of {len(view.latent)} points" if len(idx) < len(view.latent) else f"{len(idx)} points"
    how = "colour = cluster, marker = true class" if use_markers else "colour = cluster"
    how += "; X = prior mean $\\mu_c$" if centers is not None else ""
    ax.set_title(f"latent means ({method.upper()}), {note}; {how}", fontsize=10)
    return save_png(fig, path)



def _side_legend(ax, handles, title: str, loc: str, y: float):
    """A small legend outside the axes' right edge, at height `y` (0 bottom, 1 top)."""
    return ax.legend(handles=handles, title=title, fontsize=7, title_fontsize=8, loc=loc, bbox_to_anchor=(1.01, y))

def _latent_legends(ax: Any, colors: np.ndarray, n_clusters: int, classes: list[int]) -> None:
    from matplotlib.lines import Line2D

    if n_clusters <= 20:
        handles = [
            Line2D([], [], ls="", marker="o", color=colors[c], label=f"c{c}") for c in range(n_clusters)
        ]
        ax.add_artist(_side_legend(ax, handles, "cluster", "upper left", 1.0))
    if classes:
        handles = [Line2D([], [], ls="", marker=MARKERS[k], color="0.3", label=str(k)) for k in classes]
        _side_legend(ax, handles, "class", "lower left", 0.0)


def curve_panels(records: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, list, list]]]]:
    """(panel title, [(series name, epochs, values)]) for every term the log holds."""
    pre = [r for r in records if r.get("phase") == "pretrain"]
    train = [r for r in records if r.get("phase") == "train"]

    def series(rows: list[dict[str, Any]], key: str) -> list[tuple[str, list, list]]:
        rows = [r for r in rows if r.get(key) is not None]
        return [(key, [r["epoch"] for r in rows], [r[key] for r in rows])] if rows else []

    panels = [
        ("pretraining: reconstruction loss", series(pre, "loss")),
        ("VaDE: -ELBO (loss)", series(train, "loss")),
        ("reconstruction -log p(x|z)", series(train, "recon")),
        ("KL(q(z|x) || p(z|c))", series(train, "kl_z")),
        ("KL(q(c|x) || p(c))", series(train, "kl_c")),
        ("label-free: cluster movement", series(train, "max_q") + series(train, "changed")
         + series(train, "smallest_cluster")),
        ("VaDE: ACC / NMI (per epoch)", series(train, "acc") + series(train, "nmi")),
    ]
    return [(title, lines) for title, lines in panels if lines]


def draw_curves(view: RunView, path: Path) -> Path | None:
    """Training curves from metrics.jsonl: each ELBO term on its own scale, scores when labelled."""
    panels = curve_panels(report.read_metrics_log(view.run_dir))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (title, lines) in zip(axes.flat, panels):
        for name, epochs, values in lines:
            ax.plot(epochs, values, marker="." if len(epochs) <= 30 else None, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if title.startswith(("VaDE: ACC", "label-free")):
            ax.set_ylim(0, 1)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_png(fig, path)


# ----------------------------------------------------------------------------------------- entry points

DRAWERS: dict[str, Callable[[RunView, Path], Path | None]] = {
    "samples.png": draw_samples,
    "confusion.png": draw_confusion,
    "latent.png": draw_latent,
    "curves.png": draw_curves,
}


def write_all(view: RunView) -> list[Path]:
    """Draw every figure that applies, then report.md; a failing figure is warned about and skipped."""
    written: list[Path] = []
    failed: dict[str, str] = {}
    for name, draw in DRAWERS.items():
        try:
            path = draw(view, view.run_dir / checkpoint.FIGURES_DIR / name)
        except Exception as exc:  # noqa: BLE001  (one broken figure must not cost the others)
            failed[name] = f"{type(exc).__name__}: {exc}"
            report.console.print(
                f"[yellow]warning:[/] figure {name} skipped: {failed[name]}", highlight=False, soft_wrap=True
            )
            plt.close("all")
            continue
        if path is not None:
            written.append(path)
    return [*written, report_md.write(view.run_dir, view, written, failed)]
