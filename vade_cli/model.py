"""VaDE (Jiang et al., IJCAI 2017): a VAE whose prior is a Gaussian mixture p(c) p(z|c).

Generative story:  c ~ Cat(pi),  z ~ N(mu_c, diag sigma2_c),  x ~ p(x | decoder(z)).
Inference:         q(z, c | x) = q(z | x) q(c | x),  q(z|x) = N(mu~(x), diag sigma2~(x)),
                   q(c | x) = p(c | z) at a sample z ~ q(z|x) (the paper's choice, eq. 16).

Shapes: B batch, D features, J latent size, K clusters.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)
LOGVAR_MIN, LOGVAR_MAX = -12.0, 12.0  # keeps variances in [6e-6, 1.6e5]: no log(0), no overflow


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear + ReLU after every layer (the last too: heads are added by the caller)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x [B,D] -> (mu [B,J], logvar [B,J]) of q(z|x)."""

    def __init__(self, n_features: int, hidden: list[int], latent_dim: int, logvar_init: float):
        super().__init__()
        self.body = mlp([n_features, *hidden])
        self.mean = nn.Linear(hidden[-1], latent_dim)
        self.logvar = nn.Linear(hidden[-1], latent_dim)
        # Small, input-independent variances at the start. Copying the mean head's weights here (as one
        # public port does) makes sigma2~ track mu~ and VaDE collapses on small data.
        nn.init.zeros_(self.logvar.weight)
        nn.init.constant_(self.logvar.bias, logvar_init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return self.mean(h), self.logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)

    def embed(self, x: Tensor) -> Tensor:
        """mu~(x) alone, for the autoencoder and for predictions: they never use the variance head."""
        return self.mean(self.body(x))


class Decoder(nn.Module):
    """z [B,J] -> parameters of p(x|z) [B,D]: Bernoulli logits or Gaussian means."""

    def __init__(self, latent_dim: int, hidden: list[int], n_features: int):
        super().__init__()
        self.body = mlp([latent_dim, *reversed(hidden)])
        self.out = nn.Linear(hidden[0], n_features)

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.body(z))


class PriorStats(NamedTuple):
    """The prior's per-step quantities, computed once and shared by q(c|z), the KL terms and the diagnostics.

    One set per step instead of one per use: the GMM's many small operations on [B,K,J] tensors,
    not its arithmetic, are what a VaDE step adds to its network's roofline (`make bench`).
    """

    log_pi: Tensor  # [K] log p(c)
    inv_var: Tensor  # [K,J] 1 / sigma2_c, from the clamped log-variances
    half_log_det: Tensor  # [K] 0.5 * sum_j (log 2pi + log sigma2_cj): -log N(z; mu_c, sigma2_c) minus its quadratic part


class GaussianMixturePrior(nn.Module):
    """p(c) p(z|c) with pi = softmax(logits) (always on the simplex) and log-parametrised variances."""

    def __init__(self, n_clusters: int, latent_dim: int):
        super().__init__()
        self.pi_logits = nn.Parameter(torch.zeros(n_clusters))
        self.mu = nn.Parameter(torch.randn(n_clusters, latent_dim))
        self.log_var = nn.Parameter(torch.zeros(n_clusters, latent_dim))

    @property
    def n_clusters(self) -> int:
        return self.mu.shape[0]

    def log_pi(self) -> Tensor:  # [K]
        return torch.log_softmax(self.pi_logits, dim=0)

    def clamped_log_var(self) -> Tensor:  # [K,J]
        return self.log_var.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def stats(self) -> PriorStats:
        log_var = self.clamped_log_var()
        half_log_det = 0.5 * (log_var.sum(-1) + log_var.shape[-1] * LOG_2PI)
        return PriorStats(self.log_pi(), torch.exp(-log_var), half_log_det)

    def sq_distances(self, points: Tensor, stats: PriorStats) -> Tensor:
        """sum_j (z_j - mu_cj)^2 / sigma2_cj for every cluster at once: [..., B, J] -> [..., B, K].

        Broadcast differences, not the expanded z^2 - 2 z mu + mu^2 (which cancels badly far from a mean).
        """
        return ((points.unsqueeze(-2) - self.mu).pow(2) * stats.inv_var).sum(-1)

    def log_joint(self, z: Tensor, stats: PriorStats | None = None, sq: Tensor | None = None) -> Tensor:
        """log p(c) + log N(z; mu_c, sigma2_c), z [B,J] -> [B,K]; `sq` = `sq_distances(z)` when already known."""
        stats = self.stats() if stats is None else stats
        sq = self.sq_distances(z, stats) if sq is None else sq
        return stats.log_pi - stats.half_log_det - 0.5 * sq

    def log_responsibilities(self, z: Tensor) -> Tensor:
        """log p(c|z) [B,K], normalised by log-sum-exp: finite even far from every cluster mean."""
        return torch.log_softmax(self.log_joint(z), dim=1)

    @torch.no_grad()
    def set_from_gmm(self, weights: Tensor, means: Tensor, variances: Tensor) -> None:
        self.pi_logits.copy_(torch.log(weights.clamp_min(1e-12)))
        self.mu.copy_(means)
        self.log_var.copy_(torch.log(variances).clamp(LOGVAR_MIN, LOGVAR_MAX))


def reconstruction_nll(x: Tensor, decoded: Tensor, likelihood: str, obs_variance: float) -> Tensor:
    """-log p(x|z) summed over features: [B,D] -> [B]."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(decoded, x, reduction="none").sum(-1)
    sq = (x - decoded).pow(2).sum(-1)
    return 0.5 * (sq / obs_variance + x.shape[-1] * (LOG_2PI + math.log(obs_variance)))


def elbo_terms(
    prior: GaussianMixturePrior, mu: Tensor, logvar: Tensor, log_resp: Tensor,
    stats: PriorStats | None = None, sq_mu: Tensor | None = None,
) -> dict[str, Tensor]:  # fmt: skip
    """The analytic (given q(c|x)) non-reconstruction parts of the negative ELBO, per sample [B].

    `log_resp` [B,K] is log q(c|x), the responsibilities: p(c|z) from `log_responsibilities`, or
    the anchored partition from `anchored_log_responsibilities`. `stats` and `sq_mu`
    (= `prior.sq_distances(mu)`) are computed here unless the caller already has them.

    kl_z = E_q(c|x)[ KL(q(z|x) || p(z|c)) ]   = -E_q[log p(z|c)] - H[q(z|x)]
    kl_c = KL(q(c|x) || p(c))                 = -E_q[log p(c)]   - H[q(c|x)]
    """
    stats = prior.stats() if stats is None else stats
    sq_mu = prior.sq_distances(mu, stats) if sq_mu is None else sq_mu
    var_ratio = (logvar.exp().unsqueeze(1) * stats.inv_var).sum(-1)  # sum_j sigma2~_j / sigma2_cj, [B,K]
    neg_log_pz_c = stats.half_log_det + 0.5 * (var_ratio + sq_mu)  # -E_q(z)[log p(z|c)], [B,K]
    entropy_z = 0.5 * (1.0 + LOG_2PI + logvar).sum(-1)  # [B]
    resp = log_resp.exp()  # [B,K]
    kl_z = (resp * neg_log_pz_c).sum(-1) - entropy_z
    kl_c = (resp * (log_resp - stats.log_pi)).sum(-1)
    return {"kl_z": kl_z, "kl_c": kl_c}


ANCHOR_SMOOTHING = 1e-3  # the anchored q(c|x) keeps this mass off the anchor cluster: finite logs, no 0*log 0


def anchored_log_responsibilities(anchor: Tensor, n_clusters: int) -> Tensor:
    """log q(c|x) held at a given partition: [B] cluster indices -> [B,K], near one-hot."""
    off = ANCHOR_SMOOTHING / (n_clusters - 1)
    resp = torch.full((len(anchor), n_clusters), off, device=anchor.device)
    resp.scatter_(1, anchor.unsqueeze(1), 1.0 - ANCHOR_SMOOTHING)
    return resp.log()


class VaDE(nn.Module):
    """Encoder, decoder and mixture prior, with the paper's one-sample SGVB estimate of the ELBO."""

    def __init__(
        self,
        n_features: int,
        n_clusters: int,
        hidden: list[int],
        latent_dim: int,
        likelihood: str = "bernoulli",
        logvar_init: float = -5.0,
        obs_variance: float = 1.0,
    ):
        super().__init__()
        self.likelihood = likelihood
        self.obs_variance = obs_variance
        self.encoder = Encoder(n_features, hidden, latent_dim, logvar_init)
        self.decoder = Decoder(latent_dim, hidden, n_features)
        self.prior = GaussianMixturePrior(n_clusters, latent_dim)

    def network_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def autoencoder_loss(self, x: Tensor) -> dict[str, Tensor]:
        """Pretraining objective: reconstruct x through the latent mean (no sampling, no prior)."""
        mu = self.encoder.embed(x)
        recon = reconstruction_nll(x, self.decoder(mu).float(), self.likelihood, self.obs_variance).mean()
        return {"loss": recon, "recon": recon}

    def autoencoder_mse(self, x: Tensor) -> dict[str, Tensor]:
        """DEC's pretraining objective: squared error of the linear output, averaged over features.

        The mean (not sum) over features keeps the gradient scale DEC's SGD at lr 1.0 was tuned for.
        """
        mu = self.encoder.embed(x)
        loss = (self.decoder(mu).float() - x).pow(2).mean()
        return {"loss": loss, "recon": loss}

    def negative_elbo(
        self, x: Tensor, eps: Tensor, anchor: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:  # fmt: skip
        """Batch-mean -ELBO and its terms, from one reparameterised sample z = mu + sigma * eps.

        The same z feeds the reconstruction and q(c|x) = p(c|z). With `anchor` (cluster indices [B], from the
        prior's initialisation) q(c|x) is held at that partition instead, which pulls each point towards its
        initial cluster's Gaussian while the encoder adapts (the ELBO is a bound for any q). Also returns argmax_c q(c|x) at z = mu for this batch, which costs one [B,K] pass and gives
        free per-epoch assignments.
        """
        mu, logvar = (t.float() for t in self.encoder(x))  # float32 even under bf16 autocast
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = reconstruction_nll(x, self.decoder(z).float(), self.likelihood, self.obs_variance)
        prior = self.prior
        stats = prior.stats()
        if anchor is None:  # q(c|x) = p(c|z): distances at z and at mu in one pass
            sq_z, sq_mu = prior.sq_distances(torch.stack([z, mu]), stats)
            log_resp = torch.log_softmax(prior.log_joint(z, stats, sq_z), dim=1)
        else:  # q(c|x) held at the anchor: only the distances at mu are needed
            sq_mu = prior.sq_distances(mu, stats)
            log_resp = anchored_log_responsibilities(anchor, prior.n_clusters)
        kl = elbo_terms(prior, mu, logvar, log_resp, stats, sq_mu)
        terms = {"recon": recon.mean(), "kl_z": kl["kl_z"].mean(), "kl_c": kl["kl_c"].mean()}
        terms["loss"] = terms["recon"] + terms["kl_z"] + terms["kl_c"]
        with torch.no_grad():  # label-free diagnostics at z = mu: the epoch's clusters and their confidence
            log_q_mu = torch.log_softmax(prior.log_joint(mu, stats, sq_mu.detach()), dim=1)
            terms["max_q"] = log_q_mu.max(1).values.exp().mean()
            assignments = log_q_mu.argmax(1)
        return terms, assignments

    @torch.inference_mode()
    def latent_means(self, x: Tensor, batch_size: int = 4096) -> Tensor:
        return torch.cat([self.encoder.embed(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def fit_prior_to(self, x: Tensor, partition: Tensor, batch_size: int = 4096) -> None:
        """Set pi, mu_c, sigma2_c to the ELBO's maximiser for q(c|x) = `partition` (hard) and today's
        q(z|x): the clusters' shares, the mean of their encoder means, and the mean of (encoder
        variance + squared deviation). Gradient steps on the prior lag behind an encoder that moves
        fast on small data (JAFFE: 3 steps an epoch), and p(c|z) then loses the partition it was held to.
        """
        parts = [self.encoder(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        mu = torch.cat([m.float() for m, _ in parts])
        var = torch.cat([lv.float().exp() for _, lv in parts])
        k = self.prior.n_clusters
        counts = torch.bincount(partition, minlength=k).to(mu.dtype)
        per_cluster = counts.clamp_min(1)[:, None]
        means = mu.new_zeros(k, mu.shape[1]).index_add_(0, partition, mu) / per_cluster
        spread = var + (mu - means[partition]).pow(2)
        variances = mu.new_zeros(k, mu.shape[1]).index_add_(0, partition, spread) / per_cluster
        # As prior_init.cluster_moments treats an empty cluster: a tiny weight and the global moments.
        empty = counts == 0
        means[empty], variances[empty] = mu.mean(0), (var + (mu - mu.mean(0)).pow(2)).mean(0)
        weights = counts.clamp_min(1e-3)
        self.prior.set_from_gmm(weights / weights.sum(), means, variances.clamp_min(1e-6))

    @torch.inference_mode()
    def predict_proba(self, x: Tensor, batch_size: int = 4096) -> Tensor:
        """q(c|x) at z = the encoder's mean: deterministic. [N,K]"""
        return self.prior.log_responsibilities(self.latent_means(x, batch_size)).exp()

    @torch.inference_mode()
    def predict(self, x: Tensor, batch_size: int = 4096) -> Tensor:
        return self.prior.log_joint(self.latent_means(x, batch_size)).argmax(1)

    @torch.inference_mode()
    def sample(self, n_per_cluster: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw z ~ N(mu_c, sigma2_c) for every cluster c and decode: (x [K*n, D], c [K*n]).

        Bernoulli data returns pixel probabilities, Gaussian data the decoder means.
        """
        prior = self.prior
        k, j = prior.mu.shape
        c = torch.arange(k, device=prior.mu.device).repeat_interleave(n_per_cluster)
        eps = torch.randn(k * n_per_cluster, j, generator=generator, device=prior.mu.device)
        z = prior.mu[c] + torch.exp(0.5 * prior.clamped_log_var()[c]) * eps
        out = self.decoder(z)
        return (torch.sigmoid(out) if self.likelihood == "bernoulli" else out), c
