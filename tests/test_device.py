"""`vade_cli.device.configure`: the CPU settings a run applies before any work."""

import pytest
import torch
from omegaconf import OmegaConf
from threadpoolctl import threadpool_info, threadpool_limits

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


@pytest.mark.parametrize("flush", [True, False])
def test_subnormals_are_flushed_to_zero_unless_asked_not_to(flush):
    configure(OmegaConf.create({"threads": 1, "flush_denormal": flush}), torch.device("cpu"))
    assert flushes() == flush


def test_a_config_without_the_setting_flushes():
    """Run folders saved before `device.flush_denormal` existed resume with it on."""
    torch.set_flush_denormal(False)
    configure(OmegaConf.create({"threads": 1}), torch.device("cpu"))
    assert flushes()
