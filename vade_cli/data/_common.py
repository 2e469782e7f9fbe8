"""Helpers shared by the file-backed loaders: split names, file lookup, label encoding, early checks.

The checks here run inside the loaders, before `load()` scales the data, because scaling an empty
array fails with a NumPy error and scaling a column that holds one NaN turns the whole column NaN;
the user should hear about the file as it is on disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from vade_cli.data import AUTO, LIKELIHOODS
from vade_cli.errors import DataError

SPLITS = ("all", "train", "test")


def split_parts(cfg: DictConfig, name: str) -> list[str]:
    """`dataset.split` as the parts to concatenate: all = train then test (the clustering convention)."""
    split = str(cfg.get("split") or "all")
    if split not in SPLITS:
        raise DataError(f"{name}: dataset.split must be one of {', '.join(SPLITS)}, got '{split}'")
    return ["train", "test"] if split == "all" else [split]


def user_path(cfg: DictConfig) -> Path | None:
    """`dataset.path` expanded, or None when the config leaves it unset."""
    path = cfg.get("path")
    return Path(str(path)).expanduser() if path else None


def first_existing(candidates: Iterable[Path]) -> Path | None:
    for path in candidates:
        if path.exists():
            return path
    return None


def shown(paths: Iterable[Path]) -> str:
    """Paths for a one-line message."""
    return ", ".join(str(p) for p in paths)


def require_file(path: Path, what: str) -> None:
    """Missing and empty files get their own message rather than a parser's traceback."""
    if not path.exists():
        raise DataError(f"{what}: file not found: {path}")
    if path.is_dir():
        raise DataError(f"{what}: {path} is a folder; expected a file")
    if path.stat().st_size == 0:
        raise DataError(f"{what}: {path} is empty (0 bytes)")


def encode_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Any integer, float or string labels -> int64 codes 0..C-1 in sorted label order."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one value per sample (1-D), got shape {y.shape}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"{where}: {int((~np.isfinite(y)).sum())} labels are NaN or inf")
    if y.dtype.kind not in "biufUS":
        raise DataError(f"{where}: labels must be numbers or strings, got dtype {y.dtype}")
    return np.unique(y, return_inverse=True)[1].reshape(-1).astype(np.int64)


def as_features(x: np.ndarray, where: str) -> np.ndarray:
    """Numeric [N, D] float32, rejecting empty and non-finite data while it is still as on disk."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: features must be numeric, got dtype {x.dtype}")
    if x.ndim != 2:
        raise DataError(f"{where}: features must be a 2-D array [samples, features], got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{where}: the data is empty (shape {x.shape})")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{where}: {rows.size} rows contain NaN or inf (first: row {rows[0]}); clean or drop them first"
        )
    return x


def likelihood_of(cfg: DictConfig, default: str) -> str:
    """`dataset.likelihood` when set, so e.g. har with scale=minmax may use a Bernoulli decoder;
    `auto` is decided from the values in `load()`."""
    likelihood = str(cfg.get("likelihood") or default)
    if likelihood not in (*LIKELIHOODS, AUTO):
        raise DataError(f"dataset.likelihood must be one of {', '.join(LIKELIHOODS)} or auto, got '{likelihood}'")
    return likelihood
