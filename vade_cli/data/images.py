"""Image benchmarks: MNIST and Fashion-MNIST (through torchvision, offline first) and USPS (HDF5).

Pixels become rows in [0,1] so the Bernoulli decoder of the VaDE paper applies unchanged.
Nothing here reaches the network unless the files are absent and `dataset.download` is true.
"""

from __future__ import annotations

import contextlib
import gzip
import io
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from vade_cli.data import Dataset, register, resolve_root
from vade_cli.data._common import (
    as_features,
    first_existing,
    likelihood_of,
    require_file,
    shown,
    split_parts,
    user_path,
)
from vade_cli.errors import DataError

IDX_PREFIX = {"train": "train", "test": "t10k"}
IDX_MAGIC = {"images": 2051, "labels": 2049}  # uint8 data, 3 or 1 dimensions
# What torchvision raises for absent, partial or corrupt files and for a failed download (URLError is
# an OSError; its idx parser asserts).
TORCHVISION_ERRORS = (RuntimeError, OSError, EOFError, AssertionError, ValueError, TypeError)


def idx_names(part: str) -> tuple[str, str]:
    """The official file names (without .gz) of one split, images first."""
    stem = IDX_PREFIX[part]
    return f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte"


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Parse one idx file (.gz or plain) ourselves: Debian's copies differ from torchvision's md5 list."""
    require_file(path, kind)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable gzip file ({err}); replace it with a fresh copy") from None
    ndim = 3 if kind == "images" else 1
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != IDX_MAGIC[kind]:
        raise DataError(f"{path}: not an idx {kind} file (magic {magic}, expected {IDX_MAGIC[kind]})")
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise DataError(f"{path}: truncated or padded idx file (header says {dims}, {len(raw) - header} bytes)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_idx_pair(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split from a folder holding the files, gzipped or not."""
    images, labels = (_idx_file(folder, stem) for stem in idx_names(part))
    x, y = read_idx(images, "images"), read_idx(labels, "labels")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{folder}: {x.shape[0]} {part} images but {y.shape[0]} labels; the files do not match")
    return x, y


def _idx_file(folder: Path, stem: str) -> Path:
    plain = folder / stem
    return plain if plain.is_file() else folder / f"{stem}.gz"


def has_idx_files(folder: Path, parts: list[str]) -> bool:
    """Every file of the splits is there, as .gz or already extracted."""
    stems = [s for part in parts for s in idx_names(part)]
    return all((folder / s).is_file() or (folder / f"{s}.gz").is_file() for s in stems)


def _torchvision(cls: str, root: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's own loader, imported only when used, its download chatter kept off our stdout."""
    import torchvision.datasets

    with contextlib.redirect_stdout(io.StringIO()):
        ds = getattr(torchvision.datasets, cls)(str(root), train=part == "train", download=download)
    return ds.data.numpy(), ds.targets.numpy()


def _missing(title: str, raw: Path, parts: list[str], download: bool, reason: str = "") -> DataError:
    files = ", ".join(f"{s}.gz" for part in parts for s in idx_names(part))
    how = (
        "with a network, dataset.download=true fetches them"
        if not download
        else f"dataset.download=true could not fetch them ({reason or 'no network?'})"
    )
    return DataError(
        f"{title}: files not found in {raw}: copy {files} into that folder "
        f"or set dataset.root to a folder that holds {raw.parent.name}/raw/; {how}"
    )


def _short(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"[:200]


def load_idx_benchmark(cfg: DictConfig, cls: str, title: str, fallbacks: list[Path]) -> Dataset:
    """Look in torchvision's folder, then the fallback folders, and only then download.

    `cls` names the torchvision class. All four files already in `<root>/<cls>/raw` go through
    torchvision; if it refuses them (download off and not yet extracted, or an md5 that differs
    and no network) the same files are parsed directly, as are the files of just the split asked for.
    """
    root = resolve_root(cfg)
    raw = root / cls / "raw"  # torchvision's folder: <root>/<class name>/raw
    parts = split_parts(cfg, title)
    download = bool(cfg.get("download", True))
    if has_idx_files(raw, ["train", "test"]):  # torchvision wants all four before it will read any
        pairs = [_tv_or_direct(cls, root, raw, part, download) for part in parts]
    elif has_idx_files(raw, parts):
        pairs = [read_idx_pair(raw, part) for part in parts]
    elif (folder := next((f for f in fallbacks if has_idx_files(f, parts)), None)) is not None:
        pairs = [read_idx_pair(folder, part) for part in parts]
    elif download:
        pairs = [_download(cls, root, raw, part, parts, title) for part in parts]
    else:
        raise _missing(title, raw, parts, download)
    shapes = {p[0].shape[1:] for p in pairs}
    if shapes != {(28, 28)}:
        raise DataError(f"{title}: images must be 28x28, the files hold {sorted(shapes)}; are they {title}?")
    x = np.concatenate([p[0] for p in pairs]).reshape(-1, 28 * 28)
    y = np.concatenate([p[1] for p in pairs]).astype(np.int64)
    x = (x / np.float32(255.0)).astype(np.float32)
    return Dataset(cfg.name, x, y, likelihood_of(cfg, "bernoulli"), (28, 28))


def _tv_or_direct(cls: str, root: Path, raw: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _torchvision(cls, root, part, download)
    except TORCHVISION_ERRORS:
        return read_idx_pair(raw, part)


def _download(
    cls: str, root: Path, raw: Path, part: str, parts: list[str], title: str
) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _torchvision(cls, root, part, download=True)
    except TORCHVISION_ERRORS as err:  # no network, a mirror down, a proxy: all end in the same advice
        raise _missing(title, raw, parts, True, _short(err)) from None


@register("mnist")
def load_mnist(cfg: DictConfig) -> Dataset:
    """70,000 (train+test) 28x28 digits from torchvision's `<root>/MNIST/raw/` (or a flat `<root>/mnist/`)."""
    return load_idx_benchmark(cfg, "MNIST", "MNIST", [resolve_root(cfg) / "mnist"])


# Debian's `apt-get install dataset-fashion-mnist` puts the same pixels here (other gzip headers, so
# other md5s than torchvision expects); it is read directly, after dataset.root and before any download.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@register("fashion_mnist")
def load_fashion_mnist(cfg: DictConfig) -> Dataset:
    """70,000 28x28 clothing images; Debian's `dataset-fashion-mnist` folder is tried before the network."""
    fallbacks = [resolve_root(cfg) / "fashion-mnist", DEBIAN_FASHION_MNIST]
    return load_idx_benchmark(cfg, "FashionMNIST", "Fashion-MNIST", fallbacks)


USPS_NAMES = ("usps.h5", "usps/usps.h5")


@register("usps")
def load_usps(cfg: DictConfig) -> Dataset:
    """9,298 16x16 digits (7,291 train + 2,007 test) from the widely shared `usps.h5`, already in [0,1]."""
    path = _find_usps(cfg)
    parts = split_parts(cfg, "usps")
    xs, ys = zip(*(_read_usps_part(path, part) for part in parts))
    x = as_features(np.concatenate(xs), str(path))
    return Dataset(cfg.name, x, np.concatenate(ys).astype(np.int64), likelihood_of(cfg, "bernoulli"), (16, 16))


def _find_usps(cfg: DictConfig) -> Path:
    path = user_path(cfg)
    if path is not None:
        if path.is_dir():
            path = first_existing(path / n for n in USPS_NAMES) or path / "usps.h5"
        require_file(path, "usps")
        return path
    root = resolve_root(cfg)
    candidates = [root / n for n in USPS_NAMES]
    found = first_existing(candidates)
    if found is None:
        raise DataError(
            f"usps: usps.h5 not found (looked for {shown(candidates)}); put it there, "
            "or set dataset.root=FOLDER or dataset.path=/path/to/usps.h5"
        )
    require_file(found, "usps")
    return found


def _read_usps_part(path: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f"{part}/data" not in f or f"{part}/target" not in f:
                raise DataError(
                    f"usps: {path} has no '{part}/data' and '{part}/target' datasets "
                    f"(top-level keys: {', '.join(f.keys()) or 'none'}); expected the usps.h5 layout"
                )
            x, y = np.asarray(f[f"{part}/data"]), np.asarray(f[f"{part}/target"])
    except OSError as err:
        raise DataError(f"usps: {path} is not a readable HDF5 file ({_short(err)})") from None
    if x.ndim != 2 or x.shape[1] != 256 or y.shape != (x.shape[0],):
        raise DataError(f"usps: {path} '{part}' has data {x.shape} and target {y.shape}; expected [n, 256] and [n]")
    return x, y
