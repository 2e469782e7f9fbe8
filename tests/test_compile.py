"""`device.compile=true` on the CPU: the compiled step computes what the eager step computes."""

import shutil

import pytest
import torch

from vade_cli.model import VaDE
from vade_cli.run import train_run

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")


def test_the_compiled_step_matches_the_eager_step_for_held_and_free_q():
    """Each variant of q(c|x) compiles to its own graph; in float32 the loss and every gradient agree
    with the eager step to rounding (fused sums are added in another order)."""
    torch.manual_seed(0)
    model = VaDE(n_features=12, n_clusters=3, hidden=[16], latent_dim=2)
    compiled = torch.compile(model.negative_elbo)
    x, eps = torch.rand(20, 12).round(), torch.randn(20, 2)
    anchor = torch.randint(0, 3, (20,))
    for args in ((), (anchor,)):
        results = []
        for fn in (model.negative_elbo, compiled):
            model.zero_grad()
            terms, assignments = fn(x, eps, *args)
            terms["loss"].backward()
            results.append((terms, assignments, [p.grad.clone() for p in model.parameters()]))
        (eager_terms, eager_assign, eager_grads), (terms, assign, grads) = results
        for key in ("loss", "recon", "kl_z", "kl_c", "max_q"):
            assert torch.allclose(terms[key], eager_terms[key], rtol=1e-5, atol=1e-6), (len(args), key)
        assert torch.equal(assign, eager_assign)
        for g, e in zip(grads, eager_grads):
            assert torch.allclose(g, e, rtol=1e-4, atol=1e-6), len(args)


def test_a_compiled_cpu_run_trains_through_every_phase(make_cfg, tmp_path):
    """Held and free epochs, compiled: the run ends near the eager run (training
    amplifies the rounding differences, so only to a tolerance)."""
    short = ["dataset=synthetic", "pretrain.cache=false", "device.amp_bf16=false", "train.anchor_epochs=1",
             "train.epochs=3"]
    elbo = {}
    for compiled in (False, True):
        cfg = make_cfg(*short, f"device.compile={str(compiled).lower()}")
        elbo[compiled] = train_run(cfg, tmp_path / f"compile-{compiled}", progress_enabled=False)["final_elbo"]
    assert elbo[True] == pytest.approx(elbo[False], rel=1e-2)
