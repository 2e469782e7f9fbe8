"""DEC's reutersidf10k.npy is a pickle: it must load as a dict of arrays and never run code on load."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from vade_cli import data
from vade_cli.data.safe_npy import load_arrays
from vade_cli.errors import DataError

CONF = Path(data.__file__).resolve().parents[1] / "conf" / "dataset" / "reuters10k.yaml"


class RunsCommand:
    """What a hostile pickle does: unpickling it calls os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def reuters_cfg(path: Path):
    cfg = OmegaConf.load(CONF)
    cfg.merge_with({"path": str(path)})
    return cfg


def dec_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"data": rng.random((12, 5)).astype(np.float32), "label": np.arange(12) % 4}


def write_npy_pickle(path: Path, obj, protocol: int = 3) -> None:
    """A .npy header for a 0-d object array followed by an arbitrary pickle, as a crafted file would be."""
    with open(path, "wb") as fp:
        np.lib.format.write_array_header_1_0(fp, {"descr": "|O", "fortran_order": False, "shape": ()})
        fp.write(pickle.dumps(obj, protocol=protocol))


def test_a_genuine_dict_of_arrays_loads(tmp_path):
    arrays = dec_arrays()
    path = tmp_path / "reutersidf10k.npy"
    np.save(path, arrays, allow_pickle=True)
    obj = load_arrays(path, "reuters10k")
    assert set(obj) == {"data", "label"}
    for key, value in arrays.items():
        assert obj[key].dtype == value.dtype
        np.testing.assert_array_equal(obj[key], value)
    ds = data.load(reuters_cfg(path))
    assert ds.x.shape == (12, 5) and sorted(set(ds.y.tolist())) == [0, 1, 2, 3]


def test_old_numpy_module_names_and_protocol_0_load(tmp_path):
    """NumPy 1 and Python 2 pickles name numpy.core.multiarray; text protocols store bytes via _codecs."""
    arrays = dec_arrays()
    stream = pickle.dumps(arrays, protocol=0).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in stream and b"_codecs" in stream
    path = tmp_path / "old.npy"
    with open(path, "wb") as fp:
        np.lib.format.write_array_header_1_0(fp, {"descr": "|O", "fortran_order": False, "shape": ()})
        fp.write(stream)
    obj = load_arrays(path, "reuters10k")
    np.testing.assert_array_equal(obj["data"], arrays["data"])


def test_a_plain_array_npy_is_read_without_unpickling(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(load_arrays(path, "x"), np.arange(6.0).reshape(2, 3))
    with pytest.raises(DataError, match=r"found an array of shape \(2, 3\)"):
        data.load(reuters_cfg(path))


@pytest.mark.parametrize("how", ["whole file", "inside the dict", "np.save"])
def test_a_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path, how):
    marker = tmp_path / "pwned"
    payload = RunsCommand(f"touch {marker}")
    path = tmp_path / "reutersidf10k.npy"
    if how == "whole file":
        write_npy_pickle(path, payload)
    elif how == "inside the dict":
        write_npy_pickle(path, {**dec_arrays(), "label": payload})
    else:
        np.save(path, {**dec_arrays(), "extra": payload}, allow_pickle=True)
    with pytest.raises(DataError) as refused:
        data.load(reuters_cfg(path))
    message = str(refused.value)
    assert len(message.splitlines()) == 1, message
    assert str(path) in message and "objects other than arrays" in message
    assert "system" in message  # names what it refused
    assert not marker.exists()


def test_the_payload_really_runs_under_a_plain_unpickler(tmp_path):
    """The hostile file above is a real threat: np.load(allow_pickle=True) would have run it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    write_npy_pickle(path, RunsCommand(f"touch {marker}"))
    np.load(path, allow_pickle=True)
    assert marker.exists()


def test_other_classes_are_refused_even_harmless_ones(tmp_path):
    from collections import OrderedDict

    path = tmp_path / "ordered.npy"
    write_npy_pickle(path, OrderedDict(dec_arrays()))
    with pytest.raises(DataError, match="objects other than arrays"):
        load_arrays(path, "reuters10k")


def test_a_file_that_is_not_npy_is_one_line(tmp_path):
    path = tmp_path / "reutersidf10k.npy"
    path.write_bytes(b"not numpy at all\n" * 4)
    with pytest.raises(DataError, match="is not a NumPy .npy file") as err:
        load_arrays(path, "reuters10k")
    assert len(str(err.value).splitlines()) == 1
