"""Dataset loaders on real files (from shared/data when present) and on small files in the exact formats.

The network is blocked for every test here: a loader that tried to fetch anything would fail, and
`net` records each attempt so tests can assert that none was made.
"""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import h5py
import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from vade_cli import data
from vade_cli.errors import DataError

CONF = Path(data.__file__).resolve().parents[1] / "conf" / "dataset"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
USPS_TRAIN_COUNTS = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]


@pytest.fixture(autouse=True)
def net(monkeypatch, tmp_path) -> list[str]:
    """Block the network (recording attempts) and keep $VADE_DATA_DIR away from the user's own data."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("VADE_DATA_DIR", str(tmp_path / "default-data-dir"))
    return attempts


def debian_at(monkeypatch, folder: Path) -> Path:
    """Point the Fashion-MNIST loader's Debian folder (a constant, not a setting) at `folder`."""
    from vade_cli.data import images

    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST", folder)
    return folder


def make_cfg(name: str, **overrides) -> DictConfig:
    """The shipped yaml for `name`, with overrides, as Hydra would hand it to `load()`."""
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg.merge_with(overrides)
    return cfg


def shared(sub: str) -> Path:
    folder = SHARED / sub
    if not folder.is_dir():
        pytest.skip(f"real data not present at {folder}")
    return folder


def link_files(src: Path, dst: Path, pattern: str = "*.gz") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob(pattern):
        (dst / f.name).symlink_to(f)


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> None:
    """An idx file as LeCun defines it: big-endian magic (2051 images / 2049 labels) and dims, then uint8."""
    magic = 2051 if arr.ndim == 3 else 2049
    raw = b"".join(int(v).to_bytes(4, "big") for v in (magic, *arr.shape)) + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw, mtime=1591347949))
    else:
        path.write_bytes(raw)


def write_idx_set(folder: Path, n: dict[str, int], gz: bool = True, seed: int = 0) -> dict[str, tuple]:
    """Small random images/labels per split; returns what was written for comparison."""
    rng = np.random.default_rng(seed)
    written = {}
    for part, count in n.items():
        x = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        y = np.arange(count, dtype=np.uint8) % 10
        write_idx(folder / IDX[part][0], x, gz)
        write_idx(folder / IDX[part][1], y, gz)
        written[part] = (x, y)
    return written


def counts(y: np.ndarray, k: int) -> list[int]:
    return np.bincount(y, minlength=k).tolist()


# ---------------------------------------------------------------- configs


def test_every_config_names_a_registered_loader_with_the_common_keys():
    for path in sorted(CONF.glob("*.yaml")):
        cfg = OmegaConf.load(path)
        assert cfg.name == path.stem
        assert cfg.name in data.available()
        for key in ("name", "n_classes", "likelihood", "scale", "limit", "root"):
            assert key in cfg, f"{path.name} lacks {key}"
    assert {"mnist", "fashion_mnist", "usps", "har", "reuters10k", "file"} <= set(data.available())


# ---------------------------------------------------------------- MNIST / Fashion-MNIST


def test_mnist_real_files_through_torchvision_offline(tmp_path, net):
    link_files(shared("mnist"), tmp_path / "MNIST" / "raw")
    ds = data.load(make_cfg("mnist", root=str(tmp_path)))
    assert ds.x.shape == (70_000, 784) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert (ds.likelihood, ds.image_shape) == ("bernoulli", (28, 28))
    assert counts(ds.y[:60_000], 10) == MNIST_TRAIN_COUNTS
    assert counts(ds.y[60_000:], 10) == MNIST_TEST_COUNTS
    train = data.load(make_cfg("mnist", root=str(tmp_path), split="train"))
    assert train.x.shape == (60_000, 784) and counts(train.y, 10) == MNIST_TRAIN_COUNTS
    assert abs(float(train.x.mean()) - 0.1306604762738429) < 1e-6
    assert net == []


def test_mnist_without_files_or_network_names_folder_and_files(tmp_path, net):
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DataError) as err:
        data.load(make_cfg("mnist", root=str(tmp_path)))
    msg = str(err.value)
    assert str(raw) in msg and "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "dataset.root" in msg and "\n" not in msg
    assert net, "download=true should have tried (and failed) to fetch"


def test_mnist_download_false_never_touches_the_network(tmp_path, net):
    with pytest.raises(DataError, match="dataset.download=true fetches them"):
        data.load(make_cfg("mnist", root=str(tmp_path), download=False))
    assert net == []


def test_mnist_split_files_alone_are_read_without_download(tmp_path, net):
    written = write_idx_set(tmp_path / "MNIST" / "raw", {"test": 12})
    ds = data.load(make_cfg("mnist", root=str(tmp_path), split="test"))
    np.testing.assert_array_equal(ds.x, written["test"][0].reshape(12, -1) / np.float32(255))
    np.testing.assert_array_equal(ds.y, written["test"][1])
    assert net == []


def test_mnist_files_with_other_md5_are_parsed_directly_when_download_is_off(tmp_path, net):
    written = write_idx_set(tmp_path / "MNIST" / "raw", {"train": 10, "test": 4})
    ds = data.load(make_cfg("mnist", root=str(tmp_path), download=False))
    assert ds.x.shape == (14, 784)
    np.testing.assert_array_equal(ds.y, np.concatenate([written["train"][1], written["test"][1]]))
    assert net == []


def test_bad_split_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="dataset.split"):
        data.load(make_cfg("mnist", root=str(tmp_path), split="validation"))


def test_fashion_mnist_real_files_offline(tmp_path, net, monkeypatch):
    link_files(shared("fashion-mnist"), tmp_path / "FashionMNIST" / "raw")
    debian_at(monkeypatch, tmp_path / "no-debian")
    cfg = make_cfg("fashion_mnist", root=str(tmp_path))
    ds = data.load(cfg)
    assert ds.x.shape == (70_000, 784) and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert counts(ds.y[:60_000], 10) == [6000] * 10 and counts(ds.y[60_000:], 10) == [1000] * 10
    assert net == []


def test_fashion_mnist_from_a_debian_style_folder(tmp_path, net, monkeypatch):
    from vade_cli.data import images

    assert images.DEBIAN_FASHION_MNIST == DEBIAN_FASHION  # where `apt-get install dataset-fashion-mnist` puts it
    debian = debian_at(monkeypatch, tmp_path / "debian")
    written = write_idx_set(debian, {"train": 20, "test": 10})
    cfg = make_cfg("fashion_mnist", root=str(tmp_path / "empty"))
    assert "debian_dir" not in cfg  # no setting: the folder Debian's package fills is a constant
    ds = data.load(cfg)
    assert ds.x.shape == (30, 784) and ds.x.dtype == np.float32 and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(ds.x[:20], written["train"][0].reshape(20, -1) / np.float32(255))
    np.testing.assert_array_equal(ds.y[20:], written["test"][1])
    assert net == []


def test_fashion_mnist_prefers_torchvision_root_over_debian(tmp_path, net, monkeypatch):
    write_idx_set(tmp_path / "FashionMNIST" / "raw", {"train": 6, "test": 3}, gz=False)
    write_idx_set(debian_at(monkeypatch, tmp_path / "debian"), {"train": 20, "test": 10})
    ds = data.load(make_cfg("fashion_mnist", root=str(tmp_path)))
    assert ds.n_samples == 9
    assert net == []


def test_fashion_mnist_missing_everywhere(tmp_path, net, monkeypatch):
    debian_at(monkeypatch, tmp_path / "none")
    cfg = make_cfg("fashion_mnist", root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="FashionMNIST/raw"):
        data.load(cfg)
    assert net == []


@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_installed_debian_package(tmp_path, net):
    """No setting names the folder: the loader finds Debian's by itself."""
    ds = data.load(make_cfg("fashion_mnist", root=str(tmp_path), split="test"))
    assert ds.x.shape == (10_000, 784) and counts(ds.y, 10) == [1000] * 10
    assert net == []


def test_corrupt_idx_file_is_named(tmp_path, monkeypatch):
    debian = debian_at(monkeypatch, tmp_path / "debian")
    write_idx_set(debian, {"train": 5, "test": 5})
    (debian / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        data.load(make_cfg("fashion_mnist", root=str(tmp_path)))


def test_idx_images_of_another_size(tmp_path, monkeypatch):
    debian = debian_at(monkeypatch, tmp_path / "debian")
    write_idx_set(debian, {"train": 5, "test": 5})
    write_idx(debian / "train-images-idx3-ubyte", np.zeros((5, 16, 16), np.uint8))
    with pytest.raises(DataError, match="must be 28x28"):
        data.load(make_cfg("fashion_mnist", root=str(tmp_path)))


def test_idx_labels_that_do_not_match_images(tmp_path, monkeypatch):
    debian = debian_at(monkeypatch, tmp_path / "debian")
    write_idx_set(debian, {"train": 5, "test": 5})
    write_idx(debian / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="5 train images but 4 labels"):
        data.load(make_cfg("fashion_mnist", root=str(tmp_path)))


# ---------------------------------------------------------------- USPS


def test_usps_real_file():
    root = shared("usps").parent
    ds = data.load(make_cfg("usps", root=str(root)))  # found as <root>/usps/usps.h5
    assert ds.x.shape == (9298, 256) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert (ds.likelihood, ds.image_shape) == ("bernoulli", (16, 16))
    train = data.load(make_cfg("usps", path=str(root / "usps" / "usps.h5"), split="train"))
    assert train.x.shape == (7291, 256) and counts(train.y, 10) == USPS_TRAIN_COUNTS
    assert list(train.y[:10]) == [6, 5, 4, 7, 3, 6, 3, 1, 0, 1]


def test_usps_not_found_lists_where_it_looked(tmp_path):
    with pytest.raises(DataError) as err:
        data.load(make_cfg("usps", root=str(tmp_path)))
    assert str(tmp_path / "usps.h5") in str(err.value) and "dataset.path" in str(err.value)


def test_usps_h5_without_the_expected_groups(tmp_path):
    path = tmp_path / "usps.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((3, 256), np.float32)
    with pytest.raises(DataError, match="train/data"):
        data.load(make_cfg("usps", path=str(path)))


def test_usps_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "usps.h5"
    path.write_text("hello\n")
    with pytest.raises(DataError, match="not a readable HDF5"):
        data.load(make_cfg("usps", root=str(tmp_path)))


# ---------------------------------------------------------------- HAR


def write_har(folder: Path, n: dict[str, int], d: int = 561, seed: int = 0) -> None:
    """UCI's layout: <folder>/<part>/X_<part>.txt (space-padded %e columns) and y_<part>.txt (1..6)."""
    rng = np.random.default_rng(seed)
    for part, count in n.items():
        (folder / part).mkdir(parents=True, exist_ok=True)
        x = rng.uniform(-1, 1, size=(count, d))
        rows = ["".join(f"{v: .7e}".rjust(16) for v in row) for row in x]
        (folder / part / f"X_{part}.txt").write_text("\n".join(rows) + "\n")
        (folder / part / f"y_{part}.txt").write_text("".join(f"{i % 6 + 1}\n" for i in range(count)))


def test_har_folder_in_uci_layout(tmp_path):
    write_har(tmp_path / "UCI HAR Dataset", {"train": 12, "test": 6})
    ds = data.load(make_cfg("har", root=str(tmp_path)))
    assert ds.x.shape == (18, 561) and ds.x.dtype == np.float32 and ds.likelihood == "gaussian"
    assert counts(ds.y, 6) == [3] * 6 and ds.y.dtype == np.int64
    assert -1.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert data.load(make_cfg("har", root=str(tmp_path), split="test")).x.shape == (6, 561)


def test_har_found_under_har_or_by_path(tmp_path):
    write_har(tmp_path / "har", {"train": 6, "test": 6}, d=10)
    assert data.load(make_cfg("har", root=str(tmp_path))).x.shape == (12, 10)
    assert data.load(make_cfg("har", path=str(tmp_path / "har"))).x.shape == (12, 10)


def test_har_likelihood_can_be_switched(tmp_path):
    write_har(tmp_path / "har", {"train": 6, "test": 6}, d=4)
    ds = data.load(make_cfg("har", root=str(tmp_path), likelihood="bernoulli", scale="minmax"))
    assert ds.likelihood == "bernoulli" and ds.x.min() == 0.0 and ds.x.max() == 1.0


def test_har_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="UCI HAR Dataset"):
        data.load(make_cfg("har", root=str(tmp_path)))
    write_har(tmp_path / "har", {"train": 6, "test": 6}, d=5)
    (tmp_path / "har" / "test" / "y_test.txt").unlink()
    with pytest.raises(DataError, match="missing test/y_test.txt"):
        data.load(make_cfg("har", root=str(tmp_path)))


def test_har_bad_labels_and_text(tmp_path):
    folder = tmp_path / "har"
    write_har(folder, {"train": 6, "test": 6}, d=5)
    (folder / "test" / "y_test.txt").write_text("1\n2\n3\n4\n5\n7\n")
    with pytest.raises(DataError, match="1..6"):
        data.load(make_cfg("har", path=str(folder)))
    write_har(folder, {"train": 6, "test": 6}, d=5)
    (folder / "train" / "X_train.txt").write_text("1 2 3 4 five\n" * 6)
    with pytest.raises(DataError, match="X_train.txt is not a table of numbers"):
        data.load(make_cfg("har", path=str(folder)))


# ---------------------------------------------------------------- Reuters-10K


def tfidf(n: int, d: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32) * (rng.random((n, d)) < 0.02)
    return x, np.arange(n) % 4


def test_reuters_dec_npy_dict(tmp_path):
    x, y = tfidf(40)
    (tmp_path / "reuters10k").mkdir()
    np.save(tmp_path / "reuters10k" / "reutersidf10k.npy", {"data": x, "label": y})
    ds = data.load(make_cfg("reuters10k", root=str(tmp_path)))
    assert ds.x.shape == (40, 2000) and ds.x.dtype == np.float32 and ds.likelihood == "gaussian"
    np.testing.assert_array_equal(ds.x, x)
    assert counts(ds.y, 4) == [10] * 4


def test_reuters_vade_mat(tmp_path):
    from scipy.io import savemat

    x, y = tfidf(20, seed=1)
    savemat(tmp_path / "reuters10k.mat", {"X": x, "Y": y.reshape(-1, 1)})
    ds = data.load(make_cfg("reuters10k", root=str(tmp_path)))
    assert ds.x.shape == (20, 2000)
    np.testing.assert_array_equal(ds.y, y)


def test_reuters_files_without_their_keys(tmp_path):
    from scipy.io import savemat

    np.save(tmp_path / "reutersidf10k.npy", {"features": np.zeros((3, 4))})
    with pytest.raises(DataError, match="'data' and 'label'.*features"):
        data.load(make_cfg("reuters10k", path=str(tmp_path / "reutersidf10k.npy")))
    savemat(tmp_path / "reuters10k.mat", {"data": np.zeros((3, 4))})
    with pytest.raises(DataError, match="'X' and 'Y'.*data"):
        data.load(make_cfg("reuters10k", path=str(tmp_path / "reuters10k.mat")))


def test_reuters_not_found(tmp_path):
    with pytest.raises(DataError, match="reutersidf10k.npy"):
        data.load(make_cfg("reuters10k", root=str(tmp_path)))


# ---------------------------------------------------------------- the user's own file


def load_file(path: Path, **overrides):
    return data.load(make_cfg("file", path=str(path), **overrides))


def test_file_npz_with_string_labels_round_trips(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 5))
    y = np.array(["cat", "dog", "emu"] * 10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_file(tmp_path / "d.npz", scale="none")
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64 and ds.likelihood == "gaussian"
    np.testing.assert_allclose(ds.x, x, rtol=1e-6)
    assert ds.y.tolist() == [0, 1, 2] * 10


def test_file_default_scaling_is_standard(tmp_path):
    x = np.random.default_rng(0).normal(5.0, 3.0, size=(50, 4))
    np.savez(tmp_path / "d.npz", x=x)
    ds = load_file(tmp_path / "d.npz")
    assert ds.y is None
    np.testing.assert_allclose(ds.x.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x.std(axis=0), 1, atol=1e-4)


def test_file_npz_images_keep_their_shape(tmp_path):
    np.savez(tmp_path / "img.npz", x=np.random.default_rng(0).random((6, 8, 8)), y=np.arange(6) % 2)
    ds = load_file(tmp_path / "img.npz", likelihood="bernoulli", scale="none")
    assert ds.x.shape == (6, 64) and ds.image_shape == (8, 8)


def test_file_npy_features_only(tmp_path):
    x = np.arange(24, dtype=np.int32).reshape(8, 3)
    np.save(tmp_path / "x.npy", x)
    ds = load_file(tmp_path / "x.npy", scale="minmax", likelihood="bernoulli")
    assert ds.y is None and ds.x.shape == (8, 3) and ds.x.min() == 0.0 and ds.x.max() == 1.0


def test_file_csv_with_header_and_named_label_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,kind,c\n1,2,x,3\n4,5,y,6\n7,8,x,9.5\n")
    ds = load_file(path, label_column="kind", scale="none")
    np.testing.assert_array_equal(ds.x, np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9.5]], np.float32))
    assert ds.y.tolist() == [0, 1, 0]


def test_file_csv_without_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,0\n3,4,1\n5,6,1\n")
    ds = load_file(path, scale="none")
    assert ds.x.shape == (3, 3) and ds.y is None
    ds = load_file(path, scale="none", label_column=-1)
    assert ds.x.shape == (3, 2) and ds.y.tolist() == [0, 1, 1]


def test_file_csv_header_with_numeric_names_and_text_labels(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("0,1,label\n0.5,1.5,cat\n2.5,3.5,dog\n")
    ds = load_file(path, scale="none", label_column="label")
    assert ds.x.shape == (2, 2) and ds.y.tolist() == [0, 1]


def test_file_csv_numeric_labels_sort_as_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y,cls\n1,2,10\n3,4,2\n5,6,10\n")
    assert load_file(path, scale="none", label_column="cls").y.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("name", "content", "overrides", "words"),
    [
        ("d.npy", None, {}, ["file not found"]),
        ("d.npy", b"", {}, ["empty"]),
        ("d.npy", b"1,2,3\n4,5,6\n", {}, ["not a NumPy .npy"]),
        ("d.npz", b"PK\x03\x04garbage", {}, ["not a NumPy .npz"]),
        ("d.txt", b"1 2\n3 4\n", {}, ["unknown file type", ".csv"]),
        ("d.csv", b"a,b,color\n1,2,red\n3,4,blue\n", {}, ["column 'color'", "line 2", "numeric"]),
        ("d.csv", b"a,b\n1,2\n3,\n", {}, ["column 'b'", "empty", "line 3"]),
        ("d.csv", b"a,b\n1,2\n3,4,5\n", {}, ["line 3", "3 fields"]),
        ("d.csv", b"a,b\n1,2\n3,4\n", {"label_column": "cls"}, ["label column 'cls' not found", "a, b"]),
        ("d.csv", b"1,2\n3,4\n", {"label_column": 5}, ["out of range"]),
        ("d.csv", b"a,b\n1,inf\n3,4\n", {}, ["NaN or inf"]),
        ("d.csv", b"a,b\n", {}, ["empty"]),
        ("d.csv", b"1,2\n", {}, ["at least 2"]),
    ],
)
def test_file_bad_inputs(tmp_path, name, content, overrides, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_file(path, **overrides)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_file_bad_arrays(tmp_path):
    cases = {
        "nan.npy": lambda p: np.save(p, np.array([[1.0, np.nan], [2.0, 3.0]])),
        "noxy.npz": lambda p: np.savez(p, features=np.zeros((3, 2))),
        "short.npz": lambda p: np.savez(p, x=np.zeros((4, 2)), y=np.arange(3)),
        "one.npz": lambda p: np.savez(p, x=np.zeros((1, 2))),
        "obj.npz": lambda p: np.savez(p, x=np.array([[1, "a"], None], dtype=object)),
        "vec.npy": lambda p: np.save(p, np.arange(5.0)),
        "text.npy": lambda p: np.save(p, np.array([["a", "b"], ["c", "d"]])),
    }
    expected = {
        "nan.npy": "1 rows contain NaN or inf",
        "noxy.npz": "no array named 'x' (found features)",
        "short.npz": "3 labels for 4 samples",
        "one.npz": "at least 2",
        "obj.npz": "Python objects",
        "vec.npy": "2-D array",
        "text.npy": "must be numeric",
    }
    for name, write in cases.items():
        write(tmp_path / name)
        with pytest.raises(DataError, match=None) as err:
            load_file(tmp_path / name)
        assert expected[name] in str(err.value), (name, str(err.value))


def test_file_needs_a_path_and_a_known_likelihood(tmp_path):
    with pytest.raises(DataError, match="dataset.path"):
        data.load(make_cfg("file"))
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match="likelihood"):
        load_file(tmp_path / "x.npy", likelihood="poisson")


def test_file_limit_is_stratified(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(100, 3)), y=np.arange(100) % 4)
    ds = load_file(tmp_path / "d.npz", limit=20)
    assert ds.n_samples == 20 and counts(ds.y, 4) == [5] * 4
    assert load_file(tmp_path / "d.npz", limit=3).n_samples == 3  # fewer rows than classes: plain random


INK = np.where(np.random.default_rng(0).random((20, 5)) < 0.5, 0, np.random.default_rng(1).integers(1, 256, (20, 5)))


@pytest.mark.parametrize(
    "x, named, expected",
    [
        (np.random.default_rng(0).random((20, 3)), {}, ("bernoulli", "none")),  # [0,1] as it is
        (INK, {}, ("bernoulli", "max")),  # raw pixels of drawings: half of them background
        (INK // 16, {}, ("bernoulli", "max")),  # a bounded integer scale (0..15)
        (np.random.default_rng(0).integers(30, 226, (20, 5)), {}, ("gaussian", "standard")),  # a gray photograph
        (np.random.default_rng(0).normal(0, 5, (20, 3)), {}, ("gaussian", "standard")),  # anything else
        (np.random.default_rng(0).integers(0, 256, (20, 5)), {"scale": "none"}, ("gaussian", "none")),
        (np.random.default_rng(0).normal(0, 5, (20, 3)), {"likelihood": "bernoulli"}, ("bernoulli", "minmax")),
    ],
)
def test_file_chooses_likelihood_and_scale_from_the_values_unless_named(tmp_path, x, named, expected):
    np.savez(tmp_path / "d.npz", x=x)
    ds = load_file(tmp_path / "d.npz", **{"likelihood": "auto", "scale": "auto", **named})
    assert (ds.likelihood, ds.scale) == expected
    assert ds.likelihood == "gaussian" or (ds.x.min() >= 0 and ds.x.max() <= 1)
