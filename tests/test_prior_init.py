"""Prior initialisation from latent means: moments of a partition, each method, label-freedom."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vade_cli import prior_init
from vade_cli.device import Compute
from vade_cli.errors import ConfigError


def blobs(seed=0, k=3, per=60, j=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=12.0, size=(k, j))
    z = np.concatenate([c + rng.normal(scale=0.5 + i * 0.3, size=(per, j)) for i, c in enumerate(centres)])
    return z, np.repeat(np.arange(k), per)


def init_cfg(**kw):
    base = {"init": "gmm", "init_restarts": 2, "init_draws": 1, "gmm_max_iter": 100, "umap_neighbors": 10,
            "uniform_pi": False, "align_epochs": 0}
    return OmegaConf.create({**base, **kw})


def test_cluster_moments_equal_per_cluster_numpy():
    z, y = blobs()
    weights, means, variances = prior_init.cluster_moments(z, y, 3)
    for c in range(3):
        assert weights[c] == pytest.approx(np.mean(y == c))
        np.testing.assert_allclose(means[c], z[y == c].mean(0), rtol=1e-10)
        np.testing.assert_allclose(variances[c], z[y == c].var(0), rtol=1e-8)


def test_empty_cluster_keeps_positive_weight_and_variance():
    z, y = blobs(k=2)
    weights, means, variances = prior_init.cluster_moments(z, y, 3)
    assert weights[2] > 0 and np.isclose(weights.sum(), 1)
    assert np.all(variances > 0) and np.all(np.isfinite(means))


def test_log_likelihood_matches_a_direct_sum():
    z, y = blobs()
    w, m, v = prior_init.cluster_moments(z, y, 3)
    dens = sum(w[c] * np.prod(np.exp(-0.5 * (z - m[c]) ** 2 / v[c]) / np.sqrt(2 * np.pi * v[c]), axis=1) for c in range(3))
    assert prior_init.diagonal_log_likelihood(z, w, m, v) == pytest.approx(np.log(dens).mean(), rel=1e-9)


@pytest.mark.parametrize("method", ["gmm", "kmeans", "umap"])
def test_every_method_recovers_separated_blobs(method):
    z, y = blobs()
    init = prior_init.initialise(z, 3, init_cfg(init=method), seed=0)
    # same partition up to renaming: every true cluster maps to exactly one found cluster
    pairs = {(a, b) for a, b in zip(y, init.partition)}
    assert len(pairs) == 3
    assert init.means.shape == (3, 4) and np.all(init.variances > 0)
    again = prior_init.initialise(z, 3, init_cfg(init=method), seed=0)
    np.testing.assert_array_equal(init.partition, again.partition)


def test_the_init_leaves_torchs_thread_count_as_it_was(monkeypatch):
    """A library under a partitioner that changes the process's thread count must not change training's."""
    kmeans = prior_init._PARTITIONERS["kmeans"]

    def greedy(*args):
        torch.set_num_threads(2)  # what a device.threads=1 run was left with after the UMAP init
        return kmeans(*args)

    monkeypatch.setitem(prior_init._PARTITIONERS, "kmeans", greedy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prior_init.initialise(blobs()[0], 3, init_cfg(init="kmeans"), seed=0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_uniform_pi():
    z, _ = blobs()
    init = prior_init.initialise(z, 3, init_cfg(init="kmeans", uniform_pi=True), seed=0)
    np.testing.assert_allclose(init.weights, 1 / 3)


def test_unknown_method_is_a_config_error():
    z, _ = blobs()
    with pytest.raises(ConfigError, match="pretrain.init must be one of"):
        prior_init.initialise(z, 3, init_cfg(init="spectral"), seed=0)


def test_one_draw_is_the_plain_method_and_more_draws_are_reproducible():
    z, y = blobs()
    plain = prior_init.initialise(z, 3, init_cfg(init="kmeans"), seed=3)
    one = prior_init.initialise(z, 3, init_cfg(init="kmeans", init_draws=1), seed=3)
    np.testing.assert_array_equal(plain.partition, one.partition)
    assert prior_init.draw_seeds(3, 4)[0] == 3 and len(set(prior_init.draw_seeds(3, 4))) == 4
    three = prior_init.initialise(z, 3, init_cfg(init="kmeans", init_draws=3), seed=3)
    again = prior_init.initialise(z, 3, init_cfg(init="kmeans", init_draws=3), seed=3)
    np.testing.assert_array_equal(three.partition, again.partition)
    assert len({(a, b) for a, b in zip(y, three.partition)}) == 3  # separated blobs: every draw agrees
    assert three.draws_agreement == pytest.approx(1.0)


def test_alignment_moves_the_latent_means_onto_the_embedding_and_refits_the_decoder():
    """align_to_embedding: the encoder's means land on the standardised embedding, and the decoder,
    refitted on the moved codes, reconstructs better than it did right after the move."""
    import numpy as np
    import torch

    from vade_cli import prior_init
    from vade_cli.model import VaDE

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    x = torch.as_tensor((rng.random((300, 12)) < 0.2 + 0.6 * (labels[:, None] == np.arange(12) % 3)), dtype=torch.float32)
    embedding = x.numpy() @ rng.normal(size=(12, 2))  # a function of x, as UMAP's is: learnable
    model = VaDE(n_features=12, n_clusters=3, hidden=[32, 32], latent_dim=2)
    target = torch.as_tensor((embedding - embedding.mean(0)) / embedding.std(0), dtype=torch.float32)

    def distance() -> float:
        return float((model.latent_means(x) - target).pow(2).sum(-1).mean())

    def recon() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.binary_cross_entropy_with_logits(model.decoder(model.latent_means(x)), x))

    before = distance()
    prior_init.align_to_embedding(model, x, embedding, epochs=200, seed=0, compute=Compute(x.device))
    assert distance() < 0.25 * before
    decoder_fitted = recon()
    torch.nn.init.normal_(model.decoder.out.weight)  # undo the decoder's refit: reconstruction gets worse
    assert recon() > decoder_fitted
