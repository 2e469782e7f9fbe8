"""`vade_cli.device.configure`: the CPU settings a run applies before any work."""

import pytest
import torch
from omegaconf import OmegaConf
from threadpoolctl import threadpool_info, threadpool_limits

from tests.conftest import compose_config
from vade_cli.device import configure

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38


def flushes() -> bool:
    return (torch.tensor([SUBNORMAL]) * 1.0).item() == 0.0


@pytest.fixture(autouse=True)
def restore_cpu_state():
    threads, flushed = torch.get_num_threads(), flushes()
    with threadpool_limits(limits=None):  # restores every native pool's count on the way out
        yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flushed)


def test_threads_cap_the_blas_and_openmp_pools_too():
    """UMAP's spectral layout (scipy/BLAS) gave another partition with 2 BLAS threads than with 1, so
    `device.threads` caps every native pool, not only torch's."""
    import numpy as np  # noqa: F401  (loads its BLAS, so there is a pool to cap)

    configure(OmegaConf.create({"threads": 1}), torch.device("cpu"))
    pools = threadpool_info()
    assert pools and all(p["num_threads"] == 1 for p in pools), pools


@pytest.mark.parametrize("device_group", ["auto", "cpu"])
def test_subnormals_are_always_flushed_to_zero_on_the_cpu(device_group, tmp_path):
    """Flushing is no setting: MNIST's metrics were byte-identical with it and without, and VaDE
    epochs took 2.4 times as long without it (README: Performance)."""
    device = compose_config([f"device={device_group}", "device.threads=1"], tmp_path).device
    assert "flush_denormal" not in device
    torch.set_flush_denormal(False)
    configure(device, torch.device("cpu"))
    assert flushes()
