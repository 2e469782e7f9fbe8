"""The ELBO and the responsibilities, checked against independent computations."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal

from vade_cli.model import VaDE, elbo_terms, reconstruction_nll
from vade_cli.train import LoopState, step_lr_factor, vade_optimizer


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
    log_resp = torch.log_softmax(torch.tensor([[0.4, -0.2, 0.1]]), dim=1)

    with torch.no_grad():
        kl = elbo_terms(prior, mu, logvar, log_resp)
        n = 200_000
        torch.manual_seed(1)
        q_z = Independent(Normal(mu[0], torch.exp(0.5 * logvar[0])), 1)
        q_c = Categorical(logits=log_resp[0])
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
    log_resp = prior.log_responsibilities(z)
    assert torch.isfinite(log_resp).all()
    assert torch.allclose(log_resp.exp().sum(1), torch.ones(4), atol=1e-6)


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
    """predict(x) is argmax_c p(c) p(z|c) at z = the encoder mean, not at a sampled z."""
    model = small_model()
    torch.manual_seed(2)
    x = torch.rand(200, 6)
    proba = model.predict_proba(x)
    assert torch.allclose(proba.sum(1), torch.ones(200), atol=1e-6)
    predicted = model.predict(x)
    assert torch.equal(predicted, proba.argmax(1))
    assert torch.equal(predicted, model.predict(x))
    with torch.no_grad():
        mu, logvar = model.encoder(x)
        assert torch.equal(model.encoder.embed(x), mu)  # what predictions and the autoencoder use
        assert torch.equal(predicted, model.prior.log_joint(mu).argmax(1))
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
        sampled = mu + torch.exp(0.5 * logvar) * eps
        at_sample = model.prior.log_joint(sampled).argmax(1)
    assert (at_sample != predicted).any()  # a sampled z would give other clusters: the mean is what is used


def test_step_diagnostics_are_the_posterior_at_the_mean():
    """The per-step clusters and max q(c|x), computed from the step's shared prior quantities, equal
    what `predict` and `predict_proba` give for the same batch, and do not depend on the noise."""
    model = small_model()
    torch.manual_seed(5)
    x = torch.rand(64, 6)
    proba = model.predict_proba(x)
    for seed in (0, 1):
        eps = torch.randn(64, 2, generator=torch.Generator().manual_seed(seed))
        terms, assignments = model.negative_elbo(x, eps)
        assert torch.equal(assignments, model.predict(x))
        assert torch.allclose(terms["max_q"], proba.max(1).values.mean(), atol=1e-6)


def test_negative_elbo_wires_one_sample_into_every_term():
    """recon, q(c|x) and the KLs all use the same z = mu + exp(logvar / 2) * eps; loss = their sum.

    Each term is recomputed here from the encoder's outputs with torch.distributions; the last lines
    check that plausible miswirings (noise scale exp(logvar), q(c|x) at mu, recon at mu) would differ.
    """
    model = small_model()
    with torch.no_grad():  # per-sample, input-dependent variances
        model.encoder.logvar.weight.normal_(0.0, 0.5)
        model.encoder.logvar.bias.fill_(-0.5)
    torch.manual_seed(4)
    x = torch.rand(16, 6).round()
    eps = torch.randn(16, 2)
    with torch.no_grad():
        terms, _ = model.negative_elbo(x, eps)
        mu, logvar = model.encoder(x)

        def by_hand(z: torch.Tensor, z_resp: torch.Tensor) -> dict[str, torch.Tensor]:
            prior = model.prior
            recon = -Independent(Bernoulli(logits=model.decoder(z), validate_args=False), 1).log_prob(x)
            p_z_c = Independent(Normal(prior.mu, torch.exp(0.5 * prior.log_var)), 1)  # K components
            log_joint = torch.log_softmax(prior.pi_logits, 0) + p_z_c.log_prob(z_resp.unsqueeze(1))  # [B,K]
            kl = elbo_terms(prior, mu, logvar, torch.log_softmax(log_joint, 1))
            return {"recon": recon.mean(), "kl_z": kl["kl_z"].mean(), "kl_c": kl["kl_c"].mean()}

        z = mu + torch.exp(0.5 * logvar) * eps
        expected = by_hand(z, z)
        for key in ("recon", "kl_z", "kl_c"):
            assert torch.allclose(terms[key], expected[key], rtol=1e-5, atol=1e-5), key
        assert torch.allclose(terms["loss"], terms["recon"] + terms["kl_z"] + terms["kl_c"], rtol=1e-6)
        assert torch.allclose(terms["loss"], sum(expected.values()), rtol=1e-5, atol=1e-5)

        z_wrong_scale = mu + torch.exp(logvar) * eps
        miswired = {
            "noise scale exp(logvar)": by_hand(z_wrong_scale, z_wrong_scale),
            "q(c|x) at mu": by_hand(z, mu),
            "recon at mu": by_hand(mu, z),
        }
    for name, wrong in miswired.items():
        assert any(abs(float(wrong[k] - expected[k])) > 1e-3 for k in expected), name


def test_sample_draws_requested_clusters():
    model = small_model()
    xs, cs = model.sample(4, torch.Generator().manual_seed(0))
    assert xs.shape == (12, 6) and cs.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ((xs >= 0) & (xs <= 1)).all()  # Bernoulli: pixel probabilities


def test_logvar_head_starts_small_and_input_independent():
    model = VaDE(n_features=6, n_clusters=3, hidden=[8], latent_dim=2, logvar_init=-5.0)
    _, logvar = model.encoder(torch.rand(10, 6))
    assert torch.allclose(logvar, torch.full_like(logvar, -5.0))


def test_step_lr_factor_ramps_decays_every_n_epochs_and_stops_at_the_floor():
    factor = step_lr_factor(decay=0.5, every=5, floor=0.2, warmup=4)
    assert [factor(e) for e in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # linear over warmup + 1
    assert [factor(e) for e in (5, 9, 10, 14)] == pytest.approx([0.5, 0.5, 0.25, 0.25])  # x0.5 every 5 epochs
    assert [factor(e) for e in (15, 300)] == pytest.approx([0.2, 0.2])  # 0.125 and below: held at the floor
    overlapping = step_lr_factor(decay=0.5, every=3, floor=0.0, warmup=4)
    assert overlapping(3) == pytest.approx(0.8 * 0.5)  # the decay counts epochs from 0, warm-up or not
    no_warmup = step_lr_factor(decay=0.9, every=10, floor=0.0)
    assert [no_warmup(e) for e in (0, 9, 10, 19, 20)] == pytest.approx([1.0, 1.0, 0.9, 0.9, 0.81])


@pytest.mark.parametrize("prior_lr", [None, 0.05])
def test_vade_optimizer_gives_the_prior_its_own_lr_when_set(make_cfg, prior_lr):
    model = small_model()
    prior_lr_arg = "null" if prior_lr is None else str(prior_lr)
    cfg = make_cfg("train.lr=0.002", f"train.prior_lr={prior_lr_arg}", "train.warmup_epochs=0")
    optimizer, scheduler = vade_optimizer(model, cfg.train)
    networks, prior = optimizer.param_groups
    assert {id(p) for p in networks["params"]} == {id(p) for p in model.network_parameters()}
    assert {id(p) for p in prior["params"]} == {id(p) for p in model.prior.parameters()}
    assert networks["lr"] == pytest.approx(0.002)
    assert prior["lr"] == pytest.approx(0.002 if prior_lr is None else prior_lr)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert prior["lr"] / networks["lr"] == pytest.approx((0.002 if prior_lr is None else prior_lr) / 0.002)
    assert networks["lr"] == pytest.approx(0.002 * 0.9)  # one schedule for both groups


def test_loop_state_keeps_the_checkpoint_keys_and_reads_checkpoints_without_newer_ones():
    mid_epoch = LoopState(history=[{"epoch": 1}], epoch=1, step=3, perm=torch.arange(5), sums=torch.ones(2),
                          assignments=torch.zeros(5, dtype=torch.long), previous=torch.ones(5, dtype=torch.long))
    saved = mid_epoch.checkpoint_fields()
    assert set(saved) == {"history", "epoch", "step", "perm", "sums", "assignments", "previous"}  # the format
    back = LoopState.from_checkpoint(saved, torch.device("cpu"), previous=None)
    assert (back.epoch, back.step, back.history) == (1, 3, [{"epoch": 1}]) and back.history is not saved["history"]
    assert all(torch.equal(getattr(back, k), saved[k]) for k in ("perm", "sums", "assignments", "previous"))
    older = {"history": [], "epoch": 2, "step": 0, "perm": None}  # an epoch-end checkpoint without "previous"
    initial = torch.arange(5)
    resumed = LoopState.from_checkpoint(older, torch.device("cpu"), previous=initial)
    assert resumed.previous is initial and resumed.perm is None and resumed.sums is None


def test_the_anchor_holds_while_the_loss_still_falls_and_never_returns():
    from vade_cli.train import still_anchored

    def history(losses, anchored=True):
        return [{"loss": v, "anchored": anchored} for v in losses]

    falling = history([100 - 5 * e for e in range(12)])  # 5 % an epoch: far from a plateau
    flat = history([100.0] * 6 + [99.9] * 6)
    assert still_anchored(falling[:3], 10, 0.01)  # the first anchor_epochs always hold
    assert still_anchored(falling, 10, 0.01) and not still_anchored(flat, 10, 0.01)
    assert not still_anchored(falling, 10, 0.0)  # 0: released right after anchor_epochs
    assert not still_anchored(falling[:11] + history([40.0], anchored=False), 10, 0.01)  # once released, always


def test_early_stops_are_reported_and_a_resume_does_not_train_past_them(make_cfg, tmp_path):
    """A stopped phase saves its checkpoint; resuming it trains no further epoch and gives the same numbers."""
    from vade_cli import checkpoint
    from vade_cli.run import train_run

    cfg = make_cfg("dataset=synthetic", "dataset.n_samples=200", "pretrain.epochs=40", "pretrain.max_steps=4",
                   "train.epochs=40", "train.anchor_epochs=3", "train.anchor_plateau=0",
                   "train.free_epochs=2", "pretrain.cache=false")
    first = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert first["stopped"]["pretrain"].startswith("step budget") and "free epochs" in first["stopped"]["train"]
    assert first["epochs"] == 5 and first["anchored_epochs"] == 3
    again = train_run(cfg, tmp_path / "run", progress_enabled=False)  # resumes from the phase-end checkpoint
    assert checkpoint.load(tmp_path / "run" / checkpoint.LAST, kind="train")["epoch"] == 5
    assert again["epochs"] == 5 and again["metrics"]["final"] == first["metrics"]["final"]


def test_a_step_budget_ends_the_autoencoder_and_report_json_says_so(make_cfg, tmp_path):
    from vade_cli.run import train_run

    cfg = make_cfg("dataset=synthetic", "dataset.n_samples=200", "pretrain.epochs=10", "pretrain.batch_size=50",
                   "pretrain.max_steps=10", "pretrain.min_epochs=2", "train.epochs=1",
                   "pretrain.cache=false")  # 4 steps per epoch: 3 epochs
    result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["stopped"]["pretrain"] == "step budget (pretrain.max_steps=10, pretrain.min_epochs=2) at epoch 3"


def test_kept_partition_counts_points_still_in_their_start_cluster_per_cluster():
    from vade_cli.train import kept_partition

    partition = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    now = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0])  # one of cluster 0 left; cluster 2 moved whole
    kept = kept_partition(now, partition, 4)
    assert kept["kept_partition"] == 5 / 8 and kept["kept_per_cluster"] == [0.75, 1.0, 0.0, 0.0]


def test_fit_prior_to_sets_the_partition_moments_so_p_c_given_z_returns_the_partition():
    torch.manual_seed(0)
    model = VaDE(n_features=6, n_clusters=3, hidden=[8], latent_dim=2)
    partition = torch.arange(3).repeat_interleave(30)
    x = torch.rand(3, 6)[partition] + 0.01 * torch.rand(90, 6)  # three tight groups of inputs
    with torch.no_grad():
        mu = model.latent_means(x)
    model.fit_prior_to(x, partition)
    assert torch.allclose(model.prior.mu[1], mu[partition == 1].mean(0), atol=1e-5)
    assert torch.allclose(model.prior.log_pi().exp(), torch.full((3,), 1 / 3), atol=0.02)
    assert torch.equal(model.predict(x), partition)


def test_fit_prior_to_keeps_an_empty_cluster_reachable():
    torch.manual_seed(0)
    model = VaDE(n_features=6, n_clusters=3, hidden=[8], latent_dim=2)
    partition = torch.arange(2).repeat_interleave(20)  # cluster 2 holds no point
    model.fit_prior_to(torch.rand(40, 6), partition)
    assert torch.isfinite(model.prior.mu).all() and model.prior.log_pi()[2] > math.log(1e-5)
