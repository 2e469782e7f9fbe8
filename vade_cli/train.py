"""The epoch loop shared by autoencoder pretraining and VaDE training.

One loop, so both phases get the same guarantees: minibatches are index slices of a per-epoch
permutation of one on-device tensor; loss terms are summed on the device and read once per epoch;
a checkpoint (model, optimiser, scheduler, RNG, position inside the epoch) is written atomically at
the first epoch end after a wall-clock interval, at the end of the phase, and when SIGINT/SIGTERM
arrives (a checkpoint is 30 MB: one every epoch cost 15-20% of a small run), so a resumed run
repeats the uninterrupted one exactly; NaN/inf stops the run at the step it appears, before a bad
checkpoint can be written. A phase may end early on a label-free rule (`Phase.stop_when`), said in
its last epoch's record, and a resumed phase that had ended so trains no further.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vade_cli import checkpoint
from vade_cli.device import Compute
from vade_cli.errors import Interrupted, TrainingDiverged

if TYPE_CHECKING:
    from vade_cli.model import VaDE

log = logging.getLogger(__name__)

# A step maps batch indices to (loss terms incl. "loss", optional per-sample cluster assignments).
StepFn = Callable[[Tensor], tuple[dict[str, Tensor], Tensor | None]]
# Called after each epoch with the history so far (last record = this epoch) and the epoch's assignments;
# it may add fields to the last record (scores) and write logs.
EpochEndFn = Callable[[list[dict[str, Any]], Tensor | None], None]


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop polls between steps, so it can save and leave cleanly."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@dataclass
class Phase:
    """Everything the loop needs to run, checkpoint and resume one training phase."""

    name: str  # "pretrain" or "train": names the checkpoint kind and the progress bar
    step: StepFn
    module: nn.Module  # whose state_dict is checkpointed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # batches and reparameterisation noise: the only RNG the loop uses
    n_samples: int
    batch_size: int
    epochs: int
    checkpoint_path: Path
    checkpoint_every_s: float = 60.0  # wall-clock seconds between checkpoints; phase ends and signals always save
    on_epoch_end: EpochEndFn | None = None
    on_epoch_start: Callable[[list[dict[str, Any]]], None] | None = None  # gets the history so far, also on resume
    # After each epoch: a reason to end the phase early (stored in the epoch's record as "stop"), or None.
    stop_when: Callable[[list[dict[str, Any]]], str | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # saved with every checkpoint (e.g. config digest)
    n_clusters: int = 0
    initial_assignments: Tensor | None = None  # clusters before the first step, for the "changed" share


@dataclass
class LoopState:
    """Where the loop stands: all of it goes into a checkpoint, and a resumed loop continues from it.

    Between epochs `perm`, `sums` and `assignments` are None and `step` is 0; inside one they hold
    the epoch's batch order, the loss-term sums and the clusters of the steps taken so far.
    """

    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    epoch: int = 0  # epochs finished
    step: int = 0  # next step inside the epoch
    perm: Tensor | None = None  # this epoch's sample order
    sums: Tensor | None = None  # this epoch's loss terms, summed over its finished steps
    assignments: Tensor | None = None  # [N] this epoch's clusters so far
    previous: Tensor | None = None  # [N] the last finished epoch's clusters, for the "changed" share

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any], device: torch.device, previous: Tensor | None) -> LoopState:
        """The state `checkpoint_fields` saved, on `device`; `previous` where the checkpoint has none."""
        state = cls(history=list(saved["history"]), epoch=saved["epoch"], step=saved["step"], previous=previous)
        if saved.get("previous") is not None:
            state.previous = saved["previous"].to(device)
        if saved.get("perm") is not None:
            state.perm = saved["perm"].to(device)
            state.sums, state.assignments = (
                saved[k].to(device) if saved.get(k) is not None else None for k in ("sums", "assignments"))
        return state

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "perm": self.perm, "sums": self.sums,
                "assignments": self.assignments, "previous": self.previous, "history": self.history}

    def next_epoch(self) -> None:
        self.epoch, self.step, self.perm, self.sums, self.assignments = self.epoch + 1, 0, None, None, None


def step_lr_factor(decay: float, every: int, floor: float, warmup: int = 0) -> Callable[[int], float]:
    """lr multiplier: decay^(epoch // every), never below `floor`, ramped linearly over `warmup` epochs."""
    return lambda epoch: min(1.0, (epoch + 1) / (warmup + 1)) * max(decay ** (epoch // every), floor)


def run_phase(
    phase: Phase,
    stop: StopRequest,
    progress: Any = None,
    resume: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run `phase` to its last epoch (from `resume`, a loaded checkpoint, if given); return its history."""
    device = phase.generator.device
    n, bs = phase.n_samples, phase.batch_size
    n_steps = math.ceil(n / bs)
    sync_each_step = device.type == "cpu"  # a CPU read is free; on a GPU it would stall the queue

    state = LoopState(previous=phase.initial_assignments)
    if resume is not None:
        phase.module.load_state_dict(resume["model"])
        phase.optimizer.load_state_dict(resume["optimizer"])
        phase.scheduler.load_state_dict(resume["scheduler"])
        restore_generator(phase.generator, resume, resume["epoch"], resume["step"])
        state = LoopState.from_checkpoint(resume, device, phase.initial_assignments)

    task = None
    if progress is not None:
        task = progress.add_task(phase.name, total=phase.epochs * n_steps, completed=state.epoch * n_steps + state.step)

    keys: list[str] | None = None
    last_save = time.monotonic()
    good = _GoodState.take(phase, state, at_step=state.epoch * n_steps)
    while state.epoch < phase.epochs and not (state.history and state.history[-1].get("stop")):
        if phase.on_epoch_start is not None:
            phase.on_epoch_start(state.history)
        if state.perm is None:
            state.perm = torch.randperm(n, generator=phase.generator, device=device)
            state.step, state.sums, state.assignments = 0, None, None
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        for s in range(state.step, n_steps):
            state.step = s
            if stop.signum is not None:
                _save(phase, state)
                raise Interrupted(_interrupt_message(phase, stop.signum, state.epoch, s, n_steps))
            idx = state.perm[s * bs : (s + 1) * bs]
            terms, batch_assign = phase.step(idx)
            loss = terms["loss"]
            if sync_each_step and not math.isfinite(loss.item()):
                first_bad.fill_(s)
                break
            phase.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            phase.optimizer.step()
            if keys is None:
                keys = list(terms)
            if state.sums is None:
                state.sums = torch.zeros(len(keys), device=device)
            # one stack and one in-place add a step, not a detached copy, stack, scale and add per term
            state.sums.add_(torch.stack([terms[k] for k in keys]).detach(), alpha=len(idx))
            if not sync_each_step:
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), s, first_bad)
            if batch_assign is not None:
                if state.assignments is None:
                    state.assignments = torch.zeros(n, dtype=torch.long, device=device)
                state.assignments[idx] = batch_assign
            if task is not None:
                progress.advance(task)
        bad_step = int(first_bad)  # one sync per epoch
        if bad_step >= 0 or not _parameters_finite(phase.module):
            where = _where(state.epoch, bad_step if bad_step >= 0 else None)
            if good.restarts >= MAX_RESTARTS:
                raise TrainingDiverged(_diverged_message(phase, where, good.restarts))
            state = good.restore(phase)
            log.warning("%s: NaN/inf at %s; restarted at epoch %d with the lr x%g (restart %d of %d)",
                        phase.name, where, state.epoch + 1, LR_CUT, good.restarts, MAX_RESTARTS)
            continue
        record: dict[str, Any] = {"epoch": state.epoch + 1, "lr": phase.optimizer.param_groups[0]["lr"]}
        record.update({k: v / n for k, v in zip(keys or [], state.sums.tolist())})
        assignments = state.assignments
        if assignments is not None:
            record.update(movement(assignments, state.previous, phase.n_clusters))
            state.previous = assignments
        phase.scheduler.step()
        state.history.append(record)
        reason = phase.stop_when(state.history) if phase.stop_when is not None else None
        if reason:
            record["stop"] = reason
        if phase.on_epoch_end is not None:
            phase.on_epoch_end(state.history, assignments)
        state.next_epoch()
        epoch = state.epoch
        if task is not None:
            progress.update(task, description=f"{phase.name} {epoch}/{phase.epochs} loss {record['loss']:.2f}")
            if reason:
                progress.update(task, completed=phase.epochs * n_steps)
        if time.monotonic() - last_save >= phase.checkpoint_every_s or epoch == phase.epochs or reason:
            _save(phase, state)
            last_save = time.monotonic()
        if state.epoch * n_steps - good.at_step >= SNAPSHOT_EVERY_STEPS:
            good = _GoodState.take(phase, state, good.restarts, state.epoch * n_steps)
    return state.history


MAX_RESTARTS = 3  # restarts of a phase after NaN/inf, each from the last good epoch
LR_CUT = 0.1  # each restart multiplies the phase's lr by this
# A copy of the good state after the first epoch end at least this many steps past the last copy: its
# cost stays under 1% of the steps, and the restart point depends on the data's size only (reproducible).
SNAPSHOT_EVERY_STEPS = 200


@dataclass
class _GoodState:
    """The phase as it stood after its last finite epoch (in memory), to restart from after a divergence."""

    module: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: Tensor
    loop: dict[str, Any]
    restarts: int
    at_step: int  # the phase's step count when taken
    lr_scale: float  # LR_CUT ** restarts when taken: the copy's lrs already carry this cut

    @classmethod
    def take(cls, phase: Phase, state: LoopState, restarts: int = 0, at_step: int = 0) -> _GoodState:
        states = [_detached_copy(m.state_dict()) for m in (phase.module, phase.optimizer, phase.scheduler)]
        loop = {**state.checkpoint_fields(), "history": [dict(r) for r in state.history]}
        return cls(*states, phase.generator.get_state(), loop, restarts, at_step, LR_CUT**restarts)

    def restore(self, phase: Phase) -> LoopState:
        """Put the good state back with the lr cut by LR_CUT (kept in the scheduler, so resume keeps it too)."""
        self.restarts += 1
        phase.module.load_state_dict(self.module)
        phase.optimizer.load_state_dict(_detached_copy(self.optimizer))
        phase.scheduler.load_state_dict(self.scheduler)
        phase.generator.set_state(self.generator)
        cut = LR_CUT**self.restarts / self.lr_scale  # the copy may come from before an earlier restart
        phase.scheduler.base_lrs = [lr * cut for lr in self.scheduler["base_lrs"]]
        for group, base in zip(phase.optimizer.param_groups, phase.scheduler.base_lrs):
            group["initial_lr"] = base
            group["lr"] *= cut
        return LoopState.from_checkpoint(self.loop, phase.generator.device, self.loop.get("previous"))


def _detached_copy(obj: Any) -> Any:
    """A deep copy of a state dict whose tensors no later step can change."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _detached_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_detached_copy(v) for v in obj]
    return obj


def restore_generator(generator: torch.Generator, resume: dict[str, Any], epoch: int, step: int) -> None:
    """The saved RNG state where the device matches; else a new stream derived from the seed and position.

    A CPU generator's state cannot be loaded into a CUDA one (or back), so a run resumed on another
    device continues with fresh noise: correct, but no longer bit-equal to an uninterrupted run.
    """
    saved = resume.get("generator_device", generator.device.type)
    if saved == generator.device.type:
        generator.set_state(resume["generator"])
        return
    generator.manual_seed(generator.initial_seed() + 1_000_003 * (epoch + 1) + step)
    log.warning(
        "resumed on %s from a %s checkpoint: the random stream restarts, so numbers will not equal an "
        "uninterrupted run bit for bit", generator.device.type, saved,
    )


def _parameters_finite(module: nn.Module) -> bool:
    """No NaN or inf in any parameter, read from one sum per tensor: a NaN or inf anywhere makes the sum
    non-finite (so would a sum past 3e38, itself a divergence). It runs every epoch: one pass over
    the weights, where `isfinite(p).all()` took several and a bool temporary per tensor."""
    return bool(torch.isfinite(torch.stack([p.detach().sum() for p in module.parameters()])).all())


def _predict(model: VaDE, x: Tensor, compute: Compute) -> Tensor:
    with compute.autocast():
        return model.predict(x)


def movement(assignments: Tensor, previous: Tensor | None, n_clusters: int) -> dict[str, float]:
    """Label-free signs of what an epoch did: share of points whose cluster changed, smallest cluster share."""
    out = {"smallest_cluster": float(torch.bincount(assignments, minlength=n_clusters).min()) / len(assignments)}
    if previous is not None:
        out["changed"] = float((assignments != previous).float().mean())
    return out


def kept_partition(assignments: Tensor, partition: Tensor, n_clusters: int) -> dict[str, Any]:
    """Label-free drift from the prior's start: the share of points still in their partition cluster,
    overall and per partition cluster (the prior's component k began as partition cluster k)."""
    same = (assignments == partition).float()
    size = torch.bincount(partition, minlength=n_clusters).clamp(min=1)
    per_cluster = torch.bincount(partition, weights=same, minlength=n_clusters) / size
    return {"kept_partition": float(same.mean()), "kept_per_cluster": [round(v, 4) for v in per_cluster.tolist()]}


def _save(phase: Phase, state: LoopState) -> None:
    checkpoint.save(
        phase.checkpoint_path,
        {
            "kind": phase.name,
            "model": phase.module.state_dict(),
            "optimizer": phase.optimizer.state_dict(),
            "scheduler": phase.scheduler.state_dict(),
            "generator": phase.generator.get_state(),
            "generator_device": phase.generator.device.type,
            **state.checkpoint_fields(),
            **phase.extra,
        },
    )


def _interrupt_message(phase: Phase, signum: int, epoch: int, step: int, n_steps: int) -> str:
    name = signal.Signals(signum).name
    return f"{name} during {phase.name} at epoch {epoch + 1}, step {step}/{n_steps}"


def _where(epoch: int, step: int | None) -> str:
    return f"epoch {epoch + 1}, step {step}" if step is not None else f"epoch {epoch + 1}"


def _diverged_message(phase: Phase, where: str, restarts: int) -> str:
    return (
        f"{phase.name} diverged: NaN/inf in the loss or parameters at {where}, also after {restarts} restarts "
        f"with the lr cut x{LR_CUT:g} each; set {phase.name}.lr lower, or try "
        f"dataset.likelihood=gaussian dataset.scale=standard"
    )


def adam(params, lr: float = 1e-3, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with its fused kernel: one pass over all parameters instead of a dozen small ops each.

    On the CPU this made a paper-network step at batch 100 about 1.5x faster (`make bench`).
    """
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


def vade_optimizer(model: VaDE, cfg) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam over networks and prior (the prior may have its own lr), one step-decay schedule for both."""
    lr = float(cfg.lr)
    prior_lr = float(cfg.prior_lr) if cfg.prior_lr is not None else lr
    optimizer = adam(
        [
            {"params": model.network_parameters(), "lr": lr},
            {"params": list(model.prior.parameters()), "lr": prior_lr},
        ],
        eps=float(cfg.adam_eps),
    )
    factor = step_lr_factor(float(cfg.lr_decay), int(cfg.lr_decay_every), float(cfg.lr_min) / lr, int(cfg.warmup_epochs))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


PLATEAU_WINDOW = 5  # epochs per mean when a loss's progress is judged


def plateaued(losses: list[float], tol: float) -> bool:
    """Whether the mean of the last PLATEAU_WINDOW losses fell by less than `tol` (relative) from the
    PLATEAU_WINDOW before; False while there are fewer than 2 * PLATEAU_WINDOW losses or for `tol` <= 0."""
    if tol <= 0 or len(losses) < 2 * PLATEAU_WINDOW:
        return False
    before = sum(losses[-2 * PLATEAU_WINDOW : -PLATEAU_WINDOW]) / PLATEAU_WINDOW
    recent = sum(losses[-PLATEAU_WINDOW:]) / PLATEAU_WINDOW
    return before - recent < tol * abs(before)


def still_anchored(history: list[dict[str, Any]], min_epochs: int, plateau: float) -> bool:
    """Whether the next epoch keeps q(c|x) at the partition (label-free, from the loss alone).

    The first `min_epochs` always are; after them the hold lasts while the anchored loss still falls
    by more than `plateau` (relative) from one PLATEAU_WINDOW-epoch mean to the next, so the encoder
    has settled into the partition's Gaussians before p(c|z) takes over: on small data an epoch is
    a few steps, and a fixed count released an encoder still on the move. Once released, always.
    `plateau` 0 releases right after `min_epochs`.
    """
    if len(history) < min_epochs:
        return True
    if plateau <= 0 or not all(r.get("anchored", True) for r in history):
        return False
    losses = [r["loss"] for r in history]
    return len(losses) < 2 * PLATEAU_WINDOW or not plateaued(losses, plateau)


def fit(
    model: VaDE,
    x: Tensor,
    cfg,
    seed: int,
    checkpoint_path: Path,
    stop: StopRequest,
    progress: Any = None,
    resume: dict[str, Any] | None = None,
    on_epoch_end: EpochEndFn | None = None,
    extra: dict[str, Any] | None = None,
    compute: Compute | None = None,
    anchor: Tensor | None = None,
) -> list[dict[str, Any]]:
    """Train VaDE on the negative ELBO from its initialised prior; return the per-epoch history.

    `anchor` [N]: the initialisation's partition, which holds q(c|x) for the first `cfg.anchor_epochs`.
    """
    optimizer, scheduler = vade_optimizer(model, cfg)
    # A stream of its own, so resuming restores exactly the noise an uninterrupted run would draw.
    generator = torch.Generator(device=x.device).manual_seed(seed + 1)
    latent_dim = model.prior.mu.shape[1]

    compute = compute or Compute(x.device)
    loss_fn = compute.compiled(model.negative_elbo)

    current = {"anchored": anchor is not None}
    release = (int(cfg.anchor_epochs), float(cfg.anchor_plateau))

    def epoch_start(history: list[dict[str, Any]]) -> None:
        current["anchored"] = anchor is not None and still_anchored(history, *release)

    def step(idx: Tensor):
        eps = torch.randn(len(idx), latent_dim, generator=generator, device=x.device)
        held = anchor[idx] if current["anchored"] else None
        with compute.autocast():
            return loss_fn(x[idx], eps, held)

    free_epochs = None if cfg.free_epochs is None else int(cfg.free_epochs)

    def stop_when(history: list[dict[str, Any]]) -> str | None:
        """Marks the epoch anchored or free; ends VaDE `free_epochs` epochs after the anchor's release.
        A phase that ends on the anchor leaves the prior at the partition's moments (`fit_prior_to`)."""
        history[-1]["anchored"] = current["anchored"]
        if anchor is None:
            return None
        free = sum(not r["anchored"] for r in history)
        stop = free_epochs is not None and free >= free_epochs and not still_anchored(history, *release)
        if current["anchored"] and (stop or len(history) >= int(cfg.epochs)):
            with compute.autocast():
                model.fit_prior_to(x, anchor)
        return f"{free} free epochs after the anchor's release (train.free_epochs)" if stop else None

    def epoch_end(history: list[dict[str, Any]], assignments: Tensor | None) -> None:
        if anchor is not None and assignments is not None:
            history[-1].update(kept_partition(assignments, anchor, model.prior.n_clusters))
        if on_epoch_end is not None:
            on_epoch_end(history, assignments)

    phase = Phase(
        name="train",
        step=step,
        module=model,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        n_samples=len(x),
        batch_size=int(cfg.batch_size),
        epochs=int(cfg.epochs),
        checkpoint_path=checkpoint_path,
        checkpoint_every_s=float(cfg.checkpoint_every_s),
        on_epoch_end=epoch_end,
        on_epoch_start=epoch_start,
        stop_when=stop_when,
        extra=extra or {},
        n_clusters=model.prior.n_clusters,
        initial_assignments=None if resume is not None else _predict(model, x, compute),
    )
    return run_phase(phase, stop, progress, resume)


MINIBATCH = 256  # fit_minibatches' batch size


def fit_minibatches(params, loss_of, n: int, epochs: int, generator: torch.Generator, compute: Compute) -> None:
    """Plain minibatch Adam (lr 1e-3, batch MINIBATCH) on `loss_of(indices)` for `epochs` passes."""
    optimizer = adam(params, lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator, device=compute.device).split(MINIBATCH):
            with compute.autocast():
                loss = loss_of(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
