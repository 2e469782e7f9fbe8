"""The ELBO and the responsibilities, checked against independent computations."""

import math

import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal

from vade_cli.model import VaDE, elbo_terms, reconstruction_nll


def small_model(likelihood: str = "bernoulli") -> VaDE:
    torch.manual_seed(0)
    model = VaDE(n_features=6, n_clusters=3, hidden=[8], latent_dim=2, likelihood=likelihood, logvar_init=-1.0)
    with torch.no_grad():
        model.prior.pi_logits.copy_(torch.tensor([0.2, -0.3, 0.5]))
        model.prior.mu.copy_(torch.tensor([[0.0, 1.0], [1.5, -0.5], [-1.0, 0.3]]))
        model.prior.log_var.copy_(torch.tensor([[0.1, -0.4], [-0.2, 0.3], [0.0, 0.5]]))
    return model


def test_analytic_elbo_matches_monte_carlo_with_torch_distributions():
    """For fixed q(c|x), the closed-form terms + E_q[log p(x|z)] equal E_q[log p(x,z,c) - log q(z,c|x)].

    The Monte-Carlo side is built only from torch.distributions; 200k samples give a standard error
    near 0.005 nats, so 0.03 nats of tolerance is about 6 standard errors.
    """
    model = small_model()
    prior = model.prior
    x = torch.tensor([[0.0, 1.0, 0.2, 0.9, 0.5, 1.0]])
    mu = torch.tensor([[0.3, 0.2]])
    logvar = torch.tensor([[-0.7, -1.1]])
    log_gamma = torch.log_softmax(torch.tensor([[0.4, -0.2, 0.1]]), dim=1)

    with torch.no_grad():
        kl = elbo_terms(prior, mu, logvar, log_gamma)
        n = 200_000
        torch.manual_seed(1)
        q_z = Independent(Normal(mu[0], torch.exp(0.5 * logvar[0])), 1)
        q_c = Categorical(logits=log_gamma[0])
        z = q_z.sample((n,))
        c = q_c.sample((n,))
        p_c = Categorical(logits=prior.pi_logits)
        p_z_c = Independent(Normal(prior.mu[c], torch.exp(0.5 * prior.log_var[c])), 1)
        logits = model.decoder(z)
        log_px_z = Independent(Bernoulli(logits=logits, validate_args=False), 1).log_prob(x.expand(n, -1))
        mc = (log_px_z + p_c.log_prob(c) + p_z_c.log_prob(z) - q_z.log_prob(z) - q_c.log_prob(c)).mean()
        recon = reconstruction_nll(x.expand(n, -1), logits, "bernoulli", 1.0).mean()
        analytic = -(recon + kl["kl_z"][0] + kl["kl_c"][0])
    assert abs(float(analytic - mc)) < 0.03


def test_gaussian_reconstruction_is_a_normal_log_density():
    x = torch.tensor([[0.5, -1.0, 2.0]])
    mean = torch.tensor([[0.0, -0.5, 1.0]])
    expected = -Independent(Normal(mean, math.sqrt(0.5)), 1).log_prob(x)
    assert torch.allclose(reconstruction_nll(x, mean, "gaussian", 0.5), expected, atol=1e-5)


def test_responsibilities_finite_and_normalised_far_from_every_mean():
    prior = small_model().prior
    z = torch.tensor([[1e4, -1e4], [-3e3, 5e3], [0.0, 1.0], [1e6, 1e6]])
    log_gamma = prior.log_responsibilities(z)
    assert torch.isfinite(log_gamma).all()
    assert torch.allclose(log_gamma.exp().sum(1), torch.ones(4), atol=1e-6)


def test_empty_cluster_weight_gives_no_nan():
    model = small_model()
    with torch.no_grad():
        model.prior.pi_logits.copy_(torch.tensor([0.0, -1e4, 0.0]))  # pi_1 ~ exp(-1e4) = 0 in float32
    x = torch.rand(5, 6)
    terms, _ = model.negative_elbo(x, torch.randn(5, 2))
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_predictions_deterministic_and_from_posterior_mean():
    model = small_model()
    x = torch.rand(50, 6)
    proba = model.predict_proba(x)
    assert torch.allclose(proba.sum(1), torch.ones(50), atol=1e-6)
    assert torch.equal(model.predict(x), proba.argmax(1))
    assert torch.equal(model.predict(x), model.predict(x))


def test_sample_draws_requested_clusters():
    model = small_model()
    xs, cs = model.sample(4, torch.Generator().manual_seed(0))
    assert xs.shape == (12, 6) and cs.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ((xs >= 0) & (xs <= 1)).all()  # Bernoulli: pixel probabilities


def test_logvar_head_starts_small_and_input_independent():
    model = VaDE(n_features=6, n_clusters=3, hidden=[8], latent_dim=2, logvar_init=-5.0)
    _, logvar = model.encoder(torch.rand(10, 6))
    assert torch.allclose(logvar, torch.full_like(logvar, -5.0))
