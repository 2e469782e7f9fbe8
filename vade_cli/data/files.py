"""The user's own data: one `.npz`, `.npy` or `.csv` file named by `dataset.path`.

Every way such a file can be wrong ends in a one-line `DataError` that names the file and, where
it helps, the key, column or line, so a user can fix it without reading a traceback.
"""

from __future__ import annotations

import csv
import warnings
import zipfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from vade_cli.data import Dataset, register
from vade_cli.data._common import as_features, encode_labels, likelihood_of, require_file, user_path
from vade_cli.errors import DataError

SUFFIXES = (".npz", ".npy", ".csv")


@register("file")
def load_file(cfg: DictConfig) -> Dataset:
    """Features (and labels when the file has them) from `dataset.path`; scaling is left to `load()`."""
    path = user_path(cfg)
    if path is None:
        raise DataError("dataset=file needs dataset.path=/path/to/data.npz (or .npy, .csv)")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown file type '{path.suffix}'; use one of {', '.join(SUFFIXES)}")
    require_file(path, "file")
    likelihood = likelihood_of(cfg, "auto")
    reader = {".npz": _read_npz, ".npy": _read_npy, ".csv": _read_csv}[suffix]
    x, y, image_shape = reader(path, cfg)
    if y is not None and y.shape[0] != x.shape[0]:
        raise DataError(f"{path}: {y.shape[0]} labels for {x.shape[0]} samples; they must match")
    return Dataset(cfg.name, x, y, likelihood, image_shape)


Read = tuple[np.ndarray, np.ndarray | None, tuple[int, int] | None]  # features, labels, image shape


def _features(x: np.ndarray, where: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Rows of features; an [N, H, W] stack of images is flattened and remembers its (H, W)."""
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[0] > 0:
        return as_features(x.reshape(x.shape[0], -1), where), (int(x.shape[1]), int(x.shape[2]))
    return as_features(x, where), None


def _read_npz(path: Path, cfg: DictConfig) -> Read:
    """Key `x` holds the features, optional key `y` the labels."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if "x" not in keys:
                raise DataError(f"{path}: no array named 'x' (found {', '.join(keys) or 'none'}); "
                                "save it with np.savez(path, x=features, y=labels)")
            x = _load_member(npz, "x", path)
            y = _load_member(npz, "y", path) if "y" in keys else None
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:  # all mean "not an npz"
        raise DataError(f"{path}: not a NumPy .npz archive ({type(err).__name__}); "
                        "save it with np.savez(path, x=features, y=labels)") from None
    x, shape = _features(x, f"{path} 'x'")
    return x, None if y is None else encode_labels(y, f"{path} 'y'"), shape


def _load_member(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError:  # object arrays need pickle, which a data file should never require
        raise DataError(f"{path}: '{key}' holds Python objects; save a numeric (or string-label) array") from None


def _read_npy(path: Path, cfg: DictConfig) -> Read:
    """One array of features; labels need an .npz or a .csv label column."""
    with path.open("rb") as f:
        if f.read(6) != b"\x93NUMPY":  # without this check numpy tries to unpickle any other file
            raise DataError(f"{path} is not a NumPy .npy array file; save features with np.save(path, array)")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as err:
        what = "holds Python objects" if "allow_pickle" in str(err) else "is not a readable .npy array file"
        raise DataError(f"{path} {what}; save features with np.save(path, array)") from None
    except (OSError, EOFError) as err:  # truncated header, unreadable file
        raise DataError(f"{path} is not a NumPy .npy array file ({type(err).__name__})") from None
    if not isinstance(x, np.ndarray):
        raise DataError(f"{path} is not a NumPy .npy array file")
    x, shape = _features(x, str(path))
    return x, None, shape


def _read_csv(path: Path, cfg: DictConfig) -> Read:
    """Numeric columns, an optional header row, an optional label column (by name or 0-based index)."""
    delimiter = str(cfg.get("delimiter") or ",")
    first, second = _first_rows(path, delimiter)
    label = cfg.get("label_column")
    header = _is_header(first, second, label)
    names = [c.strip() for c in first] if header else [str(i) for i in range(len(first))]
    label_idx = None if label is None else _label_index(path, names, label, header)
    feature_idx = [i for i in range(len(names)) if i != label_idx]
    if not feature_idx:
        raise DataError(f"{path}: no feature columns left besides the label column")
    x, labels = _load_table(path, delimiter, 1 if header else 0, label_idx, names)
    y = None if labels is None else encode_labels(labels, f"{path} column '{names[label_idx]}'")
    return as_features(x, str(path)), y, None


def _first_rows(path: Path, delimiter: str) -> tuple[list[str], list[str] | None]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = csv.reader(f, delimiter=delimiter)
            first = next(rows, None)
            second = next(rows, None)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text CSV file (not UTF-8)") from None
    if not first:
        raise DataError(f"{path}: the first line is blank; expected a header or a row of numbers")
    return first, second


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _is_header(first: list[str], second: list[str] | None, label: object) -> bool:
    """A header names the label column, or puts text above numbers; label text alone is not a header."""
    if isinstance(label, str) and label in [c.strip() for c in first]:
        return True
    if second is None:
        return not any(_is_number(c) for c in first)
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second))


def _label_index(path: Path, names: list[str], label: object, header: bool) -> int:
    if isinstance(label, int) and not isinstance(label, bool):
        if -len(names) <= label < len(names):
            return label % len(names)
        raise DataError(f"{path}: dataset.label_column={label} is out of range; the file has {len(names)} columns")
    if str(label) in names and header:
        return names.index(str(label))
    have = f"columns: {', '.join(names)}" if header else "no header row, so give a 0-based column index"
    raise DataError(f"{path}: label column '{label}' not found ({have})")


def _load_table(
    path: Path, delimiter: str, skip: int, label_idx: int | None, names: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """One pass of numpy's fast parser over every column, so ragged rows are caught too.

    The label column goes through a converter that numbers each distinct text as it appears;
    when the parse fails, the first bad cell is found and named by `_explain_csv`.
    """
    seen: dict[str, int] = {}

    def code(cell: str) -> float:
        return float(seen.setdefault(cell.strip(), len(seen)))

    try:
        with warnings.catch_warnings():  # "input contained no data": as_features says so in one line
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, skiprows=skip, quotechar='"',
                               ndmin=2, encoding="utf-8", converters=None if label_idx is None else {label_idx: code})
    except ValueError:
        features = [i for i in range(len(names)) if i != label_idx]
        raise _explain_csv(path, delimiter, skip, features, names) from None
    if label_idx is None or table.shape[0] == 0:
        return table, None
    texts = np.array(list(seen))[table[:, label_idx].astype(np.int64)]
    numeric = all(_is_number(t) for t in seen)  # so labels 2 and 10 sort as numbers, not as text
    return np.delete(table, label_idx, axis=1), texts.astype(np.float64) if numeric else texts


def _explain_csv(path: Path, delimiter: str, skip: int, cols: list[int], names: list[str]) -> DataError:
    with path.open(newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter=delimiter), start=1):
            if line_no <= skip or not row:
                continue
            if len(row) != len(names):
                return DataError(f"{path}: line {line_no} has {len(row)} fields, expected {len(names)}")
            for i in cols:
                cell = row[i].strip()
                if not _is_number(cell):
                    what = "is empty" if not cell else f"is not a number ('{cell[:30]}')"
                    return DataError(
                        f"{path}: column '{names[i]}' {what} at line {line_no}; the features must be numeric "
                        "(drop or encode that column, or name it with dataset.label_column)"
                    )
    return DataError(f"{path}: could not read it as a table of numbers")
