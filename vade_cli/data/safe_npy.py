"""Reading a .npy file that holds a pickled dict of arrays (DEC's reutersidf10k.npy) without trusting it.

`np.load(..., allow_pickle=True)` unpickles whatever the file names, and a pickle can name any
function: loading a hostile file runs its code. Here the .npy header is read with NumPy's own
functions and the pickle after it goes through an unpickler that resolves only what a dict of
arrays needs (NumPy's array reconstruction and dtype); any other name is refused before it is
imported or called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vade_cli.errors import DataError

# (module, name) pairs a pickled dict of NumPy arrays refers to: NumPy 2 writes numpy._core, NumPy 1
# and Python 2 (DEC's era) wrote numpy.core. Protocol-2 pickles from Python 3 store bytes through
# _codecs.encode (str -> bytes, no code of the file's choosing).
ALLOWED = frozenset(
    {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)

HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class ArraysOnly(Exception):
    """The pickle named something other than NumPy's array machinery."""


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, numbers, strings and NumPy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise ArraysOnly(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise ArraysOnly(f"persistent id {pid!r}")


def load_arrays(path: Path, what: str) -> Any:
    """The object in `path`: a plain .npy's array, or the unpickled dict of arrays (0-d object arrays unwrapped).

    Raises a one-line DataError, prefixed with `what`, when the file is no .npy file or its pickle
    holds objects other than arrays.
    """
    try:
        with open(path, "rb") as fp:
            return _read(fp)
    except ArraysOnly as refused:
        raise DataError(
            f"{what}: {path} holds objects other than arrays (it names {refused}); refusing to unpickle it"
        ) from None
    except (pickle.UnpicklingError, ValueError, OSError, EOFError, AttributeError, ImportError,
            TypeError, IndexError, KeyError, UnicodeError) as err:  # fmt: skip
        raise DataError(f"{what}: {path} is not a NumPy .npy file ({type(err).__name__})") from None


def _read(fp: BinaryIO) -> Any:
    version = np.lib.format.read_magic(fp)
    if version not in HEADER_READERS:
        raise ValueError(f"unsupported .npy format version {version}")
    dtype = HEADER_READERS[version](fp)[2]
    if not dtype.hasobject:  # a plain array: NumPy reads it without unpickling anything
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    obj = ArrayUnpickler(fp, encoding="latin1").load()
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return obj.item()
    return obj
