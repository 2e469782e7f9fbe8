"""The timed work: the rooflines, the product's steps, its evaluation pass and a digits run's epochs.

Every product contender calls the code a run calls, under the `Compute` a run passes it, so
`device.amp_bf16` and `device.compile` act here exactly as they act there.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vade_cli import checkpoint, data, metrics, pretrain, report, run, train
from vade_cli.bench.settings import Settings, Shape, seeded, train_config, with_bf16
from vade_cli.bench.timing import Contender
from vade_cli.device import Compute
from vade_cli.model import VaDE, mlp

ROOFLINE_PRECISIONS = {"fp32": False, "bf16": True}  # precision -> device.amp_bf16


def plain_autoencoder(shape: Shape) -> nn.Sequential:
    """The roofline network: VaDE's encoder body + mean head and decoder, as one bare Linear/ReLU stack."""
    encoder = nn.Sequential(mlp([shape.n_features, *shape.hidden]), nn.Linear(shape.hidden[-1], shape.latent_dim))
    decoder = nn.Sequential(mlp([shape.latent_dim, *reversed(shape.hidden)]), nn.Linear(shape.hidden[0], shape.n_features))
    return nn.Sequential(encoder, decoder)


def optimise(loss_fn: Callable[[], Tensor], optimizer: torch.optim.Optimizer, compute: Compute) -> None:
    """One optimiser step as `run_phase` takes it: the loss under `compute.autocast()`, backward and
    the (fused) Adam step outside it."""
    with compute.autocast():
        loss = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def roofline_steps(x_batch: Tensor, settings: Settings, bf16: bool) -> Callable[[int], None]:
    """n steps of the bare network on one pre-made batch, in bf16 autocast or not: no gather, no GMM,
    no bookkeeping."""
    compute = with_bf16(settings.compute, bf16)
    net = plain_autoencoder(settings.shape).to(settings.device)
    optimizer = train.adam(net.parameters(), lr=1e-3)
    forward = compute.compiled(net)

    def loss() -> Tensor:  # per-sample BCE summed over features, batch mean: VaDE's reconstruction term
        return F.binary_cross_entropy_with_logits(forward(x_batch), x_batch, reduction="sum") / len(x_batch)

    def steps(n: int) -> None:
        for _ in range(n):
            optimise(loss, optimizer, compute)

    return steps


def sliced_steps(
    batch_loss: Callable[[Tensor], Tensor], optimizer: torch.optim.Optimizer, x: Tensor, batch_size: int,
    compute: Compute,
) -> Callable[[int], None]:
    """n steps the way `run_phase` takes them (index slices of a permutation of the on-device tensor,
    the last one short), minus its bookkeeping: the permutation is drawn once, outside the timed region."""
    perm = torch.randperm(len(x), device=x.device)
    n_batches = math.ceil(len(x) / batch_size)

    def steps(n: int) -> None:
        for s in range(n):
            j = s % n_batches
            idx = perm[j * batch_size : (j + 1) * batch_size]
            optimise(partial(batch_loss, x[idx]), optimizer, compute)

    return steps


def pretrain_steps(model: VaDE, x: Tensor, batch_size: int, settings: Settings) -> Callable[[int], None]:
    """(a): the autoencoder's loss and optimiser, as `pretrain_autoencoder` sets them up."""
    params = pretrain.autoencoder_modules(model).parameters()
    optimizer = pretrain.make_optimizer(params, settings.cfg.pretrain)
    return sliced_steps(lambda xb: model.autoencoder_loss(xb)["loss"], optimizer, x, batch_size, settings.compute)


def vade_steps(model: VaDE, x: Tensor, batch_size: int, settings: Settings) -> Callable[[int], None]:
    """(b): the negative ELBO with fresh reparameterisation noise, under `vade_optimizer`, compiled
    when `device.compile` is set on CUDA, as `train.fit` does."""
    optimizer, _ = train.vade_optimizer(model, train_config(settings, batch_size, 1))
    generator = torch.Generator(device=x.device).manual_seed(0)
    latent_dim = model.prior.mu.shape[1]
    loss_fn = settings.compute.compiled(model.negative_elbo)

    def batch_loss(xb: Tensor) -> Tensor:
        eps = torch.randn(len(xb), latent_dim, generator=generator, device=xb.device)
        return loss_fn(xb, eps)[0]["loss"]

    return sliced_steps(batch_loss, optimizer, x, batch_size, settings.compute)


def timed(name: str, work: Callable[[int], None], n: int, warmup: int, samples: int, precision: str) -> Contender:
    return Contender(name, partial(work, n), partial(work, warmup), samples, precision)


def step_contenders(model: VaDE, x: Tensor, batch_size: int,
                    settings: Settings) -> tuple[dict[str, Contender], list[Contender]]:  # fmt: skip
    """The two rooflines, (a) and (b) at one batch size: `steps` steps each, warmed up on `warmup_steps`."""
    n, warmup, samples = settings.steps, settings.warmup_steps, settings.steps * batch_size
    rooflines = {
        p: timed(f"roofline_{p}", roofline_steps(x[:batch_size].clone(), settings, bf16), n, warmup, samples, p)
        for p, bf16 in ROOFLINE_PRECISIONS.items()
    }
    product = [
        timed(name, work(model, x, batch_size, settings), n, warmup, samples, settings.precision)
        for name, work in (("pretrain_step", pretrain_steps), ("vade_step", vade_steps))
    ]
    return rooflines, product


def predict_chunk() -> int:
    """The chunk size `VaDE.predict` uses by default (what `run.evaluate` calls), read from its signature."""
    return int(inspect.signature(VaDE.predict).parameters["batch_size"].default)


def eval_contenders(model: VaDE, x: Tensor, settings: Settings) -> tuple[dict[str, Contender], list[Contender]]:
    """(c): `run.evaluate` over the full tensor, beside a bare encoder forward over the same chunks
    under `torch.inference_mode()`, in float32 and in bf16 autocast."""
    encoder = plain_autoencoder(settings.shape)[0].to(settings.device)
    chunk = predict_chunk()

    def bare(compute: Compute, data: Tensor) -> None:
        with torch.inference_mode(), compute.autocast():
            for i in range(0, len(data), chunk):
                encoder(data[i : i + chunk])

    def evaluate(data: Tensor) -> None:
        run.evaluate(model, data, None, settings.compute)

    head = x[:chunk]
    rooflines = {}
    for p, bf16 in ROOFLINE_PRECISIONS.items():
        work = partial(bare, with_bf16(settings.compute, bf16))
        rooflines[p] = Contender(f"eval_roofline_{p}", partial(work, x), partial(work, head), len(x), p)
    product = [Contender("eval_pass", partial(evaluate, x), partial(evaluate, head), len(x), settings.precision)]
    return rooflines, product


@dataclass
class RunTimes:
    """One timed `train.fit`: its start and end, and each epoch-end callback's entry and exit."""

    start: float
    end: float
    epoch_ends: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class DigitsRun:
    """(d)'s contenders, the marks of each timed fit, and the run's sizes."""

    loop: Contender
    bare: Contender
    times: list[RunTimes]
    facts: dict[str, Any]


def digits_run(settings: Settings, run_dir: Path) -> DigitsRun:
    """(d): `run_epochs` epochs of a default `vade-run` through `train.fit` (the digits data, the
    configured network, the default train config and checkpoint policy, run.py's per-epoch metrics
    and metrics.jsonl), beside the same steps bare."""
    cfg, device = settings.cfg, settings.device
    dataset = data.load(cfg.dataset)
    x = torch.as_tensor(dataset.x, device=device)
    with seeded(4):
        model = run.build_model(cfg, dataset).to(device)
    bs = int(cfg.train.batch_size)
    steps_per_epoch = math.ceil(len(x) / bs)
    # run.py's metrics.jsonl holds the pretraining epochs' records first; each loop() starts it anew
    pretrain_log = [{"phase": "pretrain", "epoch": e + 1, "lr": 0.0, "loss": 0.0, "recon": 0.0}
                    for e in range(int(cfg.pretrain.epochs))]  # fmt: skip
    marks: list[tuple[float, float]] = []
    times: list[RunTimes] = []

    metrics_log = report.MetricsLog(run_dir)

    def on_epoch_end(history: list[dict[str, Any]], assignments: Tensor | None) -> None:  # run.py's
        entry = time.perf_counter()
        if assignments is not None:
            history[-1].update(metrics.scores(dataset.y, assignments.cpu().numpy()))
        metrics_log.write(pretrain_log + [{"phase": "train", **r} for r in history])
        marks.append((entry, time.perf_counter()))

    def loop(epochs: int, record: bool) -> None:
        marks.clear()
        start = time.perf_counter()
        train.fit(model, x, train_config(settings, bs, epochs), 0, run_dir / checkpoint.LAST, train.StopRequest(),
                  None, None, on_epoch_end, compute=settings.compute)  # fmt: skip
        if record:
            times.append(RunTimes(start, time.perf_counter(), list(marks)))

    bare = vade_steps(model, x, bs, settings)
    epochs, samples, p = settings.run_epochs, settings.run_epochs * len(x), settings.precision
    facts = {"dataset": str(cfg.dataset.name), "n_samples": len(x), "n_features": int(x.shape[1]), "batch_size": bs,
             "steps_per_epoch": steps_per_epoch, "epochs": epochs}  # fmt: skip
    return DigitsRun(
        Contender("digits_run_loop", partial(loop, epochs, True), partial(loop, 1, False), samples, p),
        Contender("digits_run_bare", partial(bare, epochs * steps_per_epoch), partial(bare, steps_per_epoch), samples, p),
        times,
        facts,
    )
