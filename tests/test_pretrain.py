"""Pretraining recipes: DEC's initialisation, squared-error training, the Bernoulli refit, the cache key."""

import copy

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from vade_cli import pretrain
from vade_cli.device import Compute
from vade_cli.model import VaDE


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return VaDE(n_features=20, n_clusters=3, hidden=[16, 16], latent_dim=2)


def bce(model, x):
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(model.decoder(model.encoder(x)[0]), x, reduction="none").sum(-1).mean()


def test_dec_weight_init_is_uniform_in_one_over_sqrt_fan_in_with_zero_biases():
    model = tiny_model()
    pretrain.dec_weight_init(model)
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            assert layer.weight.abs().max() <= 1 / layer.in_features**0.5 and torch.all(layer.bias == 0)


def test_refit_turns_a_linear_output_into_better_logits_and_leaves_the_rest():
    x = (torch.rand(300, 20) < torch.linspace(0.1, 0.9, 20)).float()
    model = tiny_model()
    naive = copy.deepcopy(model)
    with torch.no_grad():  # the refit's starting point: logit = 8 (x^ - 1/2)
        naive.decoder.out.weight.mul_(8.0)
        naive.decoder.out.bias.mul_(8.0).sub_(4.0)
    encoder_before = copy.deepcopy(model.encoder.state_dict())
    pretrain.refit_bernoulli_output(model, x, epochs=60, seed=0, compute=Compute(x.device))
    assert bce(model, x) < bce(naive, x) - 1.0
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key])
    body_moved = any(not torch.equal(a, b) for a, b in zip(model.decoder.body.parameters(), naive.decoder.body.parameters()))
    assert not body_moved


def test_cache_key_ignores_what_cannot_change_the_autoencoder():
    model_cfg = OmegaConf.create({"hidden": [16], "latent_dim": 2, "logvar_init": -5.0, "obs_variance": 1.0})
    pre = OmegaConf.create({"epochs": 3, "batch_size": 8, "optimizer": "sgd", "lr": 1.0, "momentum": 0.9, "loss": "mse",
                            "weight_init": "dec", "output_refit_epochs": 5,
                            "cache": True, "init": "gmm", "init_restarts": 1, "gmm_max_iter": 100,
                            "umap_neighbors": 20, "uniform_pi": False})

    def key(m=model_cfg, p=pre, likelihood="bernoulli"):
        return pretrain.cache_key("data", 100, m, p, 0, likelihood, False)

    base = key()
    for field, value in [("init", "umap"), ("init_restarts", 10), ("output_refit_epochs", 0), ("cache", False)]:
        assert key(p=OmegaConf.merge(pre, {field: value})) == base, field
    assert key(m=OmegaConf.merge(model_cfg, {"logvar_init": -3.0})) == base
    assert key(likelihood="gaussian") == base  # loss=mse does not read the likelihood
    for field, value in [("epochs", 4), ("lr", 0.5), ("optimizer", "adam")]:
        assert key(p=OmegaConf.merge(pre, {field: value})) != base, field
    assert key(m=OmegaConf.merge(model_cfg, {"hidden": [32]})) != base


def test_the_step_budget_scales_the_epochs_with_the_data_and_never_adds_any(make_cfg):
    """4,000 steps of 256 and 100 epochs: MNIST's 10k split and 70k 100 epochs, USPS 109, digits all 300."""
    pre = make_cfg(tiny=False).pretrain
    assert (pre.epochs, pre.max_steps, pre.min_epochs, pre.batch_size) == (300, 4000, 100, 256)
    sizes = (10_000, 70_000, 9_298, 1_797, 150)
    assert [pretrain.autoencoder_epochs(pre, n) for n in sizes] == [100, 100, 109, 300, 300]
    assert pretrain.autoencoder_epochs(OmegaConf.merge(pre, {"min_epochs": 0}), 70_000) == 15
    assert pretrain.autoencoder_epochs(OmegaConf.merge(pre, {"epochs": 3}), 70_000) == 3
    assert pretrain.autoencoder_epochs(OmegaConf.merge(pre, {"max_steps": None}), 70_000) == 300


def test_the_cache_key_holds_the_epochs_that_run_not_the_budget(make_cfg):
    """The budget's 100 epochs on 10,000 rows are the same autoencoder as pretrain.epochs=100: one entry."""
    budget = make_cfg(tiny=False)
    by_epochs = make_cfg("pretrain.epochs=100", "pretrain.max_steps=null", tiny=False)

    def key(cfg, n):
        return pretrain.cache_key("data", n, cfg.model, cfg.pretrain, 0, "bernoulli", False)

    assert key(budget, 10_000) == key(by_epochs, 10_000) and key(budget, 70_000) == key(by_epochs, 70_000)
    assert key(budget, 9_298) != key(by_epochs, 9_298)  # 109 epochs


def test_dec_adam_is_dec_with_n2d_optimiser(make_cfg):
    """The named recipe and its three overrides by hand compose the same autoencoder: one cache entry."""
    named = make_cfg("pretrain=dec_adam", tiny=False)
    by_hand = make_cfg("pretrain=dec", "pretrain.optimizer=adam", "pretrain.lr=0.001", "pretrain.momentum=0.0", tiny=False)
    assert (named.pretrain.optimizer, named.pretrain.lr, named.pretrain.momentum) == ("adam", 0.001, 0.0)
    assert {k: v for k, v in named.pretrain.items() if k != "name"} == {k: v for k, v in by_hand.pretrain.items() if k != "name"}

    def key(cfg):
        return pretrain.cache_key("data", 100, cfg.model, cfg.pretrain, 0, "bernoulli", False)

    assert key(named) == key(by_hand) != key(make_cfg("pretrain=dec", tiny=False))


def test_an_unreadable_cache_entry_is_a_miss_and_is_rewritten(make_cfg, tmp_path, caplog):
    from vade_cli.run import train_run

    cfg = make_cfg("dataset=synthetic", "dataset.n_samples=200", "train.epochs=1")
    first = train_run(cfg, tmp_path / "a", progress_enabled=False)
    [entry] = (tmp_path / "cache" / "pretrain").glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as a killed copy would leave it
    with caplog.at_level("WARNING"):
        second = train_run(cfg, tmp_path / "b", progress_enabled=False)
    assert "cache entry unreadable" in caplog.text and not second["pretrain_cache_hit"]
    assert second["metrics"]["final"] == first["metrics"]["final"]
    third = train_run(cfg, tmp_path / "c", progress_enabled=False)
    assert third["pretrain_cache_hit"]


@pytest.mark.parametrize("kind", ["standardised table", "raw 0-255 images"])
def test_the_default_recipe_pretrains_without_divergence(kind, make_cfg, tmp_path, caplog):
    """The shipped pretrain recipe (not the tests' tiny one) on the two kinds of data SGD at lr 1.0 blew up on:
    no NaN/inf, so no restart either (`pretrain=dec` restarts on wine at epoch 11)."""
    import numpy as np
    from sklearn.datasets import load_wine

    from vade_cli.run import train_run

    if kind == "standardised table":
        bunch = load_wine()
        x, y = bunch.data, bunch.target
    else:
        rng = np.random.default_rng(0)
        y = np.repeat(np.arange(4), 40)
        ink = rng.random((160, 64)) < 0.2 + 0.15 * y[:, None]  # drawings: most pixels background
        x = np.where(ink, rng.integers(128, 256, (160, 64)), 0).astype(np.uint8)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    cfg = make_cfg("dataset=file", f"dataset.path={path}", f"n_clusters={len(np.unique(y))}", "device=cpu",
                   "pretrain.epochs=20", "pretrain.init=kmeans", "train.epochs=2", "report.figures=false", tiny=False)
    with caplog.at_level("WARNING"):
        result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["status"] == "completed" and "NaN/inf" not in caplog.text
    assert result["dataset"]["likelihood"] == ("gaussian" if kind == "standardised table" else "bernoulli")
