"""Real-valued benchmarks of the VaDE paper: UCI HAR (561 sensor features) and Reuters-10K (tf-idf).

Both are read from the files their usual sources distribute, never downloaded: UCI's unzipped
"UCI HAR Dataset" folder, and DEC's `reutersidf10k.npy` or VaDE's `reuters10k.mat`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from vade_cli.data import Dataset, register, resolve_root
from vade_cli.data._common import (
    as_features,
    encode_labels,
    first_existing,
    likelihood_of,
    require_file,
    shown,
    split_parts,
    user_path,
)
from vade_cli.data.safe_npy import load_arrays
from vade_cli.errors import DataError

HAR_FOLDERS = ("UCI HAR Dataset", "har", "har/UCI HAR Dataset")
HAR_CLASSES = 6


@register("har")
def load_har(cfg: DictConfig) -> Dataset:
    """10,299 windows x 561 features, 6 activities (labels 1..6 on disk become 0..5)."""
    folder = _find_har(cfg)
    xs, ys = zip(*(_read_har_part(folder, part) for part in split_parts(cfg, "har")))
    widths = {x.shape[1] for x in xs}
    if len(widths) > 1:
        raise DataError(f"har: train and test in {folder} have different feature counts {sorted(widths)}")
    x = as_features(np.concatenate(xs), f"har ({folder})")
    return Dataset(cfg.name, x, np.concatenate(ys), likelihood_of(cfg, "gaussian"))


def _find_har(cfg: DictConfig) -> Path:
    path = user_path(cfg)
    if path is not None:
        if not path.is_dir():
            raise DataError(f"har: dataset.path={path} is not a folder; point it at the unzipped 'UCI HAR Dataset'")
        return path
    root = resolve_root(cfg)
    candidates = [root / name for name in HAR_FOLDERS]
    found = first_existing(c for c in candidates if c.is_dir())
    if found is None:
        raise DataError(
            f"har: the UCI HAR folder was not found (looked for {shown(candidates)}); unzip UCI's "
            "'UCI HAR Dataset.zip' into one of them, or set dataset.path=/path/to/'UCI HAR Dataset'"
        )
    return found


def _read_har_part(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    x_path, y_path = folder / part / f"X_{part}.txt", folder / part / f"y_{part}.txt"
    for p in (x_path, y_path):
        if not p.is_file():
            raise DataError(f"har: {folder} is missing {part}/{p.name}; unzip the full 'UCI HAR Dataset' there")
    x, y = _read_numbers(x_path, 2), _read_numbers(y_path, 1)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"har: {x_path.name} has {x.shape[0]} rows but {y_path.name} has {y.shape[0]} labels")
    if not np.isin(y, np.arange(1, HAR_CLASSES + 1)).all():
        raise DataError(f"har: {y_path} must hold activity ids 1..{HAR_CLASSES}, found {np.unique(y)[:10]}")
    return x, y.astype(np.int64) - 1


def _read_numbers(path: Path, ndmin: int) -> np.ndarray:
    """Whitespace-separated numbers, one row per line, as UCI ships them."""
    require_file(path, "har")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=ndmin)
    except ValueError as err:
        raise DataError(f"har: {path} is not a table of numbers ({str(err).splitlines()[0]})") from None
    if ndmin == 1 and values.ndim != 1:
        raise DataError(f"har: {path} must hold one label per line, got {values.shape[1]} columns")
    return values


REUTERS_FILES = ("reutersidf10k.npy", "reuters10k.mat")


@register("reuters10k")
def load_reuters10k(cfg: DictConfig) -> Dataset:
    """10,000 news stories x 2,000 tf-idf terms, 4 topics, as DEC and VaDE distributed them."""
    path = _find_reuters(cfg)
    x, y = _read_reuters_mat(path) if path.suffix == ".mat" else _read_reuters_npy(path)
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x)
    x = as_features(x, f"reuters10k ({path})")
    y = encode_labels(np.asarray(y), f"reuters10k ({path})")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"reuters10k: {path} has {x.shape[0]} rows but {y.shape[0]} labels")
    return Dataset(cfg.name, x, y, likelihood_of(cfg, "gaussian"))


def _find_reuters(cfg: DictConfig) -> Path:
    path = user_path(cfg)
    folders = [path] if path is not None and path.is_dir() else []
    if path is not None and not folders:
        require_file(path, "reuters10k")
        return path
    if not folders:
        root = resolve_root(cfg)
        folders = [root / "reuters10k", root]
    candidates = [folder / name for folder in folders for name in REUTERS_FILES]
    found = first_existing(candidates)
    if found is None:
        raise DataError(
            f"reuters10k: no Reuters-10K file found (looked for {shown(candidates)}); copy DEC's "
            "reutersidf10k.npy or VaDE's reuters10k.mat there, or set dataset.path=FILE"
        )
    require_file(found, "reuters10k")
    return found


def _read_reuters_npy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """DEC saved a pickled dict with np.save; it is unpickled with only NumPy's array machinery allowed."""
    obj = load_arrays(path, "reuters10k")
    if not isinstance(obj, dict) or "data" not in obj or "label" not in obj:
        keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else f"an array of shape {np.shape(obj)}"
        raise DataError(f"reuters10k: {path} must hold a dict with 'data' and 'label' (DEC's format), found {keys}")
    return obj["data"], obj["label"]


def _read_reuters_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """VaDE's MATLAB file: 'X' [N, 2000] and 'Y' [N, 1] or [1, N]."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path)
    except (MatReadError, ValueError, TypeError, OSError) as err:
        raise DataError(f"reuters10k: {path} is not a readable MATLAB .mat file ({type(err).__name__})") from None
    if "X" not in mat or "Y" not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DataError(f"reuters10k: {path} must hold variables 'X' and 'Y' (VaDE's format), found {keys}")
    return mat["X"], np.asarray(mat["Y"]).reshape(-1)
