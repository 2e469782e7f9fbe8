"""Datasets: a registry from config name to loader, each returning one validated in-memory `Dataset`.

Loaders live in their own modules and register themselves with `@register("name")`; `load(cfg)`
looks the name up, loads, scales, subsamples (`limit`) and validates, so every dataset reaches the
model in the same shape: x float32 [N, D], y int64 [N] or None.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from vade_cli.errors import DataError

LIKELIHOODS = ("bernoulli", "gaussian")
SCALINGS = ("none", "minmax", "max", "standard")
AUTO = "auto"


@dataclass(frozen=True)
class Dataset:
    """Features, optional labels, and how the decoder should model them."""

    name: str
    x: np.ndarray  # float32 [N, D]
    y: np.ndarray | None  # int64 [N] (labels for reporting only) or None
    likelihood: str  # "bernoulli" (x in [0,1]) or "gaussian"
    image_shape: tuple[int, int] | None = None  # (H, W) when rows are images
    scale: str = "none"  # the scaling applied on loading (one of SCALINGS)

    @property
    def n_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def fingerprint(self) -> str:
        """Digest of the features (not the name, not the labels): caches follow what training sees."""
        h = hashlib.sha256()
        h.update(str(self.x.shape).encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        return h.hexdigest()[:16]


Loader = Callable[[DictConfig], Dataset]
_LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn

    return wrap


def available() -> list[str]:
    return sorted(_LOADERS)


def default_root() -> Path:
    """Where dataset files are looked for unless `dataset.root` says otherwise."""
    if os.environ.get("VADE_DATA_DIR"):
        return Path(os.environ["VADE_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vade-cli" / "data"


def resolve_root(cfg: DictConfig) -> Path:
    root = cfg.get("root")
    return Path(str(root)).expanduser() if root else default_root()


def load(cfg: DictConfig) -> Dataset:
    """Load the dataset named by `cfg.name`, apply `scale` and `limit`, and validate it."""
    name = cfg.name
    if name not in _LOADERS:
        raise DataError(f"unknown dataset '{name}'; choose one of: {', '.join(available())}")
    ds = _LOADERS[name](cfg)
    validate_raw(ds)  # shape and finiteness first: scaling would smear one NaN over a whole column
    scale = str(cfg.get("scale") or "none")
    if scale == AUTO:
        scale = choose_scale(ds.x, ds.likelihood)
    ds = _apply_scale(ds, scale)
    if ds.likelihood == AUTO:  # on the scaled values, so a named scale decides what the decoder sees
        ds = replace(ds, likelihood=_fits_bernoulli(ds.x))
    limit = cfg.get("limit")
    if limit is not None:
        ds = stratified_subset(ds, int(limit), seed=int(cfg.get("limit_seed", 0)))
    validate(ds)
    return ds


# Integer images with at least this share of values at their range's two ends (background and full
# ink) are drawings, which VaDE's Bernoulli decoder fits; gray photographs have almost none there.
# Shares measured: MNIST .81, digits .58, Fashion-MNIST .51 against ORL .000 and JAFFE .001 faces,
# whose UMAP partitions were 28.25 / 28.25 (seeds 0/1) on x/255 under Bernoulli and 63.50 / 62.25
# standardised under a Gaussian (docs/generalization-notes.md).
INK_SHARE = 0.25


def choose_likelihood(x: np.ndarray) -> tuple[str, str]:
    """(likelihood, scale) for data nobody described: drawings get VaDE's Bernoulli decoder, the rest a Gaussian.

    Values already in [0,1] -> bernoulli as they are; non-negative integers up to 255 (pixels, counts
    of a bounded scale such as 0..16) with at least INK_SHARE of them at the range's ends -> bernoulli
    on x / max(x), one divisor for all features so relative intensities survive; anything else (gray
    photographs, negative, fractional, unbounded) -> gaussian on standardised features.
    """
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return "bernoulli", "none"
    pixels = lo >= 0.0 and hi <= 255.0 and bool(np.all(x == np.round(x)))
    if pixels and float(np.mean((x == lo) | (x == hi))) >= INK_SHARE:
        return "bernoulli", "max"
    return "gaussian", "standard"


def choose_scale(x: np.ndarray, likelihood: str) -> str:
    """`scale=auto`: what `choose_likelihood` would pick, or what a named likelihood needs."""
    if likelihood == AUTO:
        return choose_likelihood(x)[1]
    if likelihood == "gaussian":
        return "standard"
    lo, hi = float(x.min()), float(x.max())
    return "none" if lo >= 0.0 and hi <= 1.0 else "max" if lo >= 0.0 else "minmax"


def _fits_bernoulli(x: np.ndarray) -> str:
    return "bernoulli" if float(x.min()) >= 0.0 and float(x.max()) <= 1.0 else "gaussian"


def _apply_scale(ds: Dataset, scale: str) -> Dataset:
    if scale not in SCALINGS:
        raise DataError(f"dataset.scale must be one of {', '.join(SCALINGS)} or auto, got '{scale}'")
    x = ds.x.astype(np.float64)
    if scale == "max":
        x = x / max(float(np.abs(x).max()), 1e-12)
    elif scale == "minmax":
        lo, hi = x.min(axis=0), x.max(axis=0)
        x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    elif scale == "standard":
        sd = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    else:
        return replace(ds, scale=scale)
    return replace(ds, x=x.astype(np.float32), scale=scale)


def stratified_subset(ds: Dataset, limit: int, seed: int = 0) -> Dataset:
    """Keep `limit` rows, in class proportions when labels exist (for quick looks)."""
    if limit < 1:
        raise DataError(f"dataset.limit must be a positive number of samples, got {limit}")
    if limit >= ds.n_samples:
        return ds
    rng = np.random.default_rng(seed)
    idx = rng.choice(ds.n_samples, size=limit, replace=False)
    if ds.y is not None:
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(
                np.arange(ds.n_samples), train_size=limit, stratify=ds.y, random_state=seed
            )
        except ValueError:  # fewer rows than classes, or a class of one: keep the plain random subset
            pass
    idx = np.sort(idx)
    return replace(ds, x=ds.x[idx], y=None if ds.y is None else ds.y[idx])


def validate_raw(ds: Dataset) -> None:
    """Checks that must pass before any scaling: shape, size, dtype, finiteness, label count."""
    x = ds.x
    if x.ndim != 2:
        raise DataError(f"{ds.name}: features must be a 2-D array [samples, features], got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{ds.name}: the data is empty (shape {x.shape})")
    if x.shape[0] < 2:
        raise DataError(f"{ds.name}: only {x.shape[0]} sample; clustering needs at least 2")
    if x.dtype != np.float32:
        raise DataError(f"{ds.name}: features must be float32, got {x.dtype}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise DataError(f"{ds.name}: {bad} rows contain NaN or inf; clean or drop them first")
    if ds.y is not None:
        if ds.y.shape != (x.shape[0],):
            raise DataError(f"{ds.name}: {ds.y.shape[0] if ds.y.ndim else 0} labels for {x.shape[0]} samples; they must match")
        if ds.y.dtype != np.int64:
            raise DataError(f"{ds.name}: labels must be int64, got {ds.y.dtype}")


def validate(ds: Dataset) -> None:
    """Reject data the model cannot learn from, with a message naming the problem."""
    validate_raw(ds)
    x = ds.x
    if ds.likelihood not in LIKELIHOODS:
        raise DataError(f"{ds.name}: likelihood must be one of {', '.join(LIKELIHOODS)}, got '{ds.likelihood}'")
    if ds.likelihood == "bernoulli" and (x.min() < 0 or x.max() > 1):
        raise DataError(
            f"{ds.name}: a Bernoulli likelihood needs features in [0,1] (got [{x.min():.3g}, {x.max():.3g}]); "
            "set dataset.scale=minmax or dataset.likelihood=gaussian"
        )


# Loader modules register themselves on import.
from vade_cli.data import builtin, files, images, tables  # noqa: E402,F401
