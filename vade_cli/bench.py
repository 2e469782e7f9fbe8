"""`make bench`: how close VaDE's training and evaluation run to the bare network on this machine.

Every throughput figure is set beside a roofline measured in the same process on the same shapes:
the same encoder + decoder Linear/ReLU stack, a plain BCE on a pre-made batch, Adam, nothing else.
A ratio near 1 means the GMM terms, the data path and the loop cost little; a low one names the gap.

    (a) pretrain_step  autoencoder pretraining steps (index slices of one permutation, loss, Adam)
    (b) vade_step      VaDE training steps on the negative ELBO, with the real optimiser
    (c) eval_pass      `predict` over the whole dataset, beside a bare encoder forward over it
    (d) epoch          one epoch through the real loop (`train.fit`: shuffling, metrics, checkpoint)
                       beside the same number of bare steps: the bookkeeping overhead, measured and
                       projected to a full-size epoch
    (e) memory         peak RSS of a subprocess holding the full dataset, the model, a few training
                       steps, one eval pass and one checkpoint

Timed contenders are interleaved repeat by repeat, so load from other jobs hits all of them alike,
and the median is reported. Results go to stdout (a table) and to bench.json. On CUDA, --bf16 and
--compile set device.amp_bf16 / device.compile for the VaDE steps, the real loop and the roofline,
as `train.fit` applies them; pretraining and evaluation run in float32, as they do in a run.

    python -m vade_cli.bench [--device cpu|cuda|auto] [--batch-sizes 100,256] [--repeats N]
                             [--steps N] [--threads N] [--bf16] [--compile] [--quick] [--out bench.json]
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from vade_cli import checkpoint, metrics, report, train
from vade_cli.device import autocast, configure, maybe_compile, resolve_device
from vade_cli.model import VaDE, mlp
from vade_cli.pretrain import autoencoder_modules
from vade_cli.train import adam

CONF = Path(__file__).resolve().parent / "conf"
# The targets of issue 5, checked (never asserted) on every run.
MIN_VADE_RATIO = 0.85  # VaDE step at batch 100 vs the roofline
MAX_EPOCH_OVERHEAD_PCT = 5.0  # bookkeeping added to a full-size epoch
MAX_PEAK_RSS_GIB = 2.0  # full-size run
TARGET_BATCH = 100


@dataclass(frozen=True)
class Shape:
    """The network and data sizes: the paper's on MNIST, or tiny ones for --quick."""

    n_features: int
    hidden: tuple[int, ...]
    latent_dim: int
    n_clusters: int
    n_full: int  # samples in the eval pass and the memory probe

    @classmethod
    def from_config(cls, model_preset: str, n_features: int, n_full: int) -> Shape:
        """Widths from conf/model/<preset>.yaml, so the bench follows the network the runs use."""
        cfg = OmegaConf.load(CONF / "model" / f"{model_preset}.yaml")
        return cls(n_features, tuple(int(h) for h in cfg.hidden), int(cfg.latent_dim), 10, n_full)

    def widths(self) -> str:
        return "-".join(str(w) for w in (self.n_features, *self.hidden, self.latent_dim))


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures, resolved from the command line."""

    device: torch.device
    shape: Shape
    batch_sizes: tuple[int, ...]
    repeats: int
    steps: int
    warmup_steps: int
    epoch_steps: int  # steps in the epoch of (d): long enough that its fixed cost is not everything
    device_cfg: DictConfig  # threads, amp_bf16, compile: what `train.fit` takes as `device_cfg`

    @property
    def epoch_batch(self) -> int:
        """(d) runs at the first batch size asked for: the paper's 100 by default."""
        return self.batch_sizes[0]

    def n_step_data(self) -> int:
        """Samples in the tensor the step loops slice: every loop sees each sample at most once a run."""
        return max(self.steps, self.epoch_steps) * max(self.batch_sizes)


# ---------------------------------------------------------------- timing


@dataclass
class Contender:
    """One timed piece of work; `warm_up` runs the same code paths on less work, untimed."""

    name: str
    run: Callable[[], object]
    warm_up: Callable[[], object]
    samples: int  # samples processed by one `run`
    seconds: list[float] = field(default_factory=list)

    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def samples_per_s(self) -> float:
        return self.samples / self.median_s()


class Clock:
    """Wall time of a region with the device queue drained on both sides (CUDA work is asynchronous)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object]) -> float:
        self._sync()
        start = time.perf_counter()
        fn()
        self._sync()
        return time.perf_counter() - start


def measure(contenders: list[Contender], repeats: int, clock: Clock) -> None:
    """Warm every contender up, then time them in turn, repeat by repeat (noise hits all alike)."""
    for c in contenders:
        c.warm_up()
    for _ in range(repeats):
        for c in contenders:
            c.seconds.append(clock.time(c.run))


# ---------------------------------------------------------------- the work


def plain_autoencoder(shape: Shape) -> nn.Sequential:
    """The roofline network: VaDE's encoder body + mean head and decoder, as one bare Linear/ReLU stack."""
    encoder = nn.Sequential(mlp([shape.n_features, *shape.hidden]), nn.Linear(shape.hidden[-1], shape.latent_dim))
    decoder = nn.Sequential(mlp([shape.latent_dim, *reversed(shape.hidden)]), nn.Linear(shape.hidden[0], shape.n_features))
    return nn.Sequential(encoder, decoder)


def build_vade(shape: Shape, device: torch.device) -> VaDE:
    return VaDE(shape.n_features, shape.n_clusters, list(shape.hidden), shape.latent_dim).to(device)


def train_config(batch_size: int, epochs: int = 1) -> DictConfig:
    """The default training settings (optimiser, schedule), resized for a benchmark epoch."""
    cfg = OmegaConf.load(CONF / "train" / "default.yaml")
    cfg.batch_size, cfg.epochs, cfg.checkpoint_every = batch_size, epochs, 1
    return cfg


def optimise(
    loss_fn: Callable[[], Tensor], optimizer: torch.optim.Optimizer, device_cfg: DictConfig | None, device: torch.device
) -> None:
    """One optimiser step: the part every contender of (a), (b) and the roofline shares; bf16 autocast
    where `device_cfg` asks for it on CUDA (None: float32, as pretraining runs)."""
    with autocast(device_cfg, device):
        loss = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def roofline_steps(x_batch: Tensor, settings: Settings) -> Callable[[int], None]:
    """n steps of the bare network on one pre-made batch: no gather, no GMM, no bookkeeping."""
    net = plain_autoencoder(settings.shape).to(settings.device)
    optimizer = adam(net.parameters(), lr=1e-3)
    forward = maybe_compile(net, settings.device_cfg, settings.device)

    def loss() -> Tensor:  # per-sample BCE summed over features, batch mean: VaDE's reconstruction term
        return F.binary_cross_entropy_with_logits(forward(x_batch), x_batch, reduction="sum") / len(x_batch)

    def run(n: int) -> None:
        for _ in range(n):
            optimise(loss, optimizer, settings.device_cfg, settings.device)

    return run


def sliced_steps(
    batch_loss: Callable[[Tensor], Tensor], optimizer: torch.optim.Optimizer, x: Tensor, batch_size: int,
    device_cfg: DictConfig | None,
) -> Callable[[int], None]:
    """n steps the way `run_phase` takes them (index slices of a permutation of the on-device tensor),
    minus its bookkeeping: the permutation is drawn once here, outside the timed region."""
    perm = torch.randperm(len(x), device=x.device)
    n_batches = len(x) // batch_size

    def run(n: int) -> None:
        for s in range(n):
            j = s % n_batches
            idx = perm[j * batch_size : (j + 1) * batch_size]
            optimise(partial(batch_loss, x[idx]), optimizer, device_cfg, x.device)

    return run


def pretrain_steps(model: VaDE, x: Tensor, batch_size: int, settings: Settings) -> Callable[[int], None]:
    """(a): the autoencoder's loss and optimiser, as `pretrain_autoencoder` sets them up: float32 and
    uncompiled whatever --bf16/--compile say, since pretraining honours neither."""
    lr = float(OmegaConf.load(CONF / "pretrain" / "ae.yaml").lr)
    optimizer = adam(autoencoder_modules(model).parameters(), lr=lr)
    return sliced_steps(lambda xb: model.autoencoder_loss(xb)["loss"], optimizer, x, batch_size, None)


def vade_steps(model: VaDE, x: Tensor, batch_size: int, settings: Settings) -> Callable[[int], None]:
    """(b): the negative ELBO with fresh reparameterisation noise, under `vade_optimizer`, compiled
    when `device.compile` is set on CUDA, as `train.fit` does."""
    optimizer, _ = train.vade_optimizer(model, train_config(batch_size))
    generator = torch.Generator(device=x.device).manual_seed(0)
    latent_dim = model.prior.mu.shape[1]
    loss_fn = maybe_compile(model.negative_elbo, settings.device_cfg, settings.device)

    def batch_loss(xb: Tensor) -> Tensor:
        eps = torch.randn(len(xb), latent_dim, generator=generator, device=xb.device)
        return loss_fn(xb, eps)[0]["loss"]

    return sliced_steps(batch_loss, optimizer, x, batch_size, settings.device_cfg)


def step_contenders(model: VaDE, x: Tensor, batch_size: int, settings: Settings) -> list[Contender]:
    """Roofline, (a) and (b) at one batch size: `steps` steps each, warmed up on `warmup_steps`."""
    loops = {
        "roofline": roofline_steps(x[:batch_size].clone(), settings),
        "pretrain_step": pretrain_steps(model, x, batch_size, settings),
        "vade_step": vade_steps(model, x, batch_size, settings),
    }
    return [
        Contender(name, partial(loop, settings.steps), partial(loop, settings.warmup_steps), settings.steps * batch_size)
        for name, loop in loops.items()
    ]


def predict_chunk() -> int:
    """The chunk size `VaDE.predict` uses by default (what `run.evaluate` calls), read from its signature."""
    return int(inspect.signature(VaDE.predict).parameters["batch_size"].default)


def eval_contenders(model: VaDE, x: Tensor, settings: Settings) -> list[Contender]:
    """(c): `predict` over the full tensor, beside a bare encoder forward over the same chunks, both in
    float32 as `run.evaluate` runs it."""
    encoder = plain_autoencoder(settings.shape)[0].to(settings.device)
    chunk = predict_chunk()

    @torch.inference_mode()
    def bare(data: Tensor) -> None:
        for i in range(0, len(data), chunk):
            encoder(data[i : i + chunk])

    head = x[:chunk]
    return [
        Contender("eval_roofline", partial(bare, x), partial(bare, head), len(x)),
        Contender("eval_pass", partial(model.predict, x), partial(model.predict, head), len(x)),
    ]


@dataclass
class EpochTimes:
    """Where the real loop's epoch went: the part after its last step (metrics, log, checkpoint)."""

    epoch_end_s: list[float] = field(default_factory=list)


def epoch_contenders(model: VaDE, x: Tensor, settings: Settings, run_dir: Path) -> tuple[list[Contender], EpochTimes]:
    """(d): one epoch of `train.fit` with run.py's per-epoch metrics + log and its checkpoint, beside
    the same number of bare VaDE steps at the same batch size."""
    bs = settings.epoch_batch
    n = settings.epoch_steps * bs
    labels = np.random.default_rng(0).integers(0, settings.shape.n_clusters, len(x))
    times = EpochTimes()
    marks: list[float] = []

    def on_epoch_end(history: list[dict[str, Any]], assignments: Tensor | None) -> None:
        marks.append(time.perf_counter())  # run_phase has read its per-epoch flag: the steps are done
        if assignments is not None:
            history[-1].update(metrics.scores(labels[: len(assignments)], assignments.cpu().numpy()))
        report.write_metrics_log(run_dir, [{"phase": "train", **r} for r in history])

    def loop(n_samples: int, record: bool) -> None:
        cfg = train_config(bs)
        train.fit(model, x[:n_samples], cfg, 0, run_dir / checkpoint.LAST, train.StopRequest(), None, None,
                  on_epoch_end, device_cfg=settings.device_cfg)  # fmt: skip
        if record:
            times.epoch_end_s.append(time.perf_counter() - marks[-1])

    bare = vade_steps(model, x, bs, settings)
    contenders = [
        Contender("epoch_loop", partial(loop, n, True), partial(loop, settings.warmup_steps * bs, False), n),
        Contender("epoch_bare", partial(bare, settings.epoch_steps), partial(bare, settings.warmup_steps), n),
    ]
    return contenders, times


# ---------------------------------------------------------------- (e) memory, in a subprocess


def peak_rss_bytes() -> int:
    """This process's peak resident memory.

    Linux's VmHWM first: it belongs to the process image, which exec starts afresh, whereas ru_maxrss
    carries over the parent's high-water mark through fork/vfork + exec and would report the bench's
    own memory instead of the probe's. ru_maxrss (KiB on Linux, bytes on macOS) elsewhere.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def probe_memory(settings: Settings) -> dict[str, Any]:
    """A full-size run's memory high points: the data, the model, training steps through the real loop
    (which writes a checkpoint), and one eval pass over every sample."""
    after_import = peak_rss_bytes()
    shape, device = settings.shape, settings.device
    x = torch.rand(shape.n_full, shape.n_features, device=device)
    model = build_vade(shape, device)
    bs = settings.epoch_batch
    with tempfile.TemporaryDirectory() as tmp:
        # fit on a view of the first few batches: the full tensor stays resident, the epoch stays short,
        # and the loop writes its checkpoint (model + Adam state) at the epoch's end
        train.fit(model, x[: settings.steps * bs], train_config(bs), 0, Path(tmp) / "last.pt", train.StopRequest(),
                  device_cfg=settings.device_cfg)  # fmt: skip
        model.predict(x)
    out = {"n_samples": shape.n_full, "peak_rss_bytes": peak_rss_bytes(), "rss_after_import_bytes": after_import}
    if device.type == "cuda":
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return out


def start_memory_probe(args: argparse.Namespace) -> subprocess.Popen:
    """`probe_memory` in a fresh interpreter, so this process's own allocations do not count."""
    cmd = [sys.executable, "-m", "vade_cli.bench", "--probe-memory", "--device", args.device, "--steps", str(args.steps)]
    cmd += ["--batch-sizes", args.batch_sizes]
    cmd += [flag for flag, on in (("--quick", args.quick), ("--bf16", args.bf16), ("--compile", args.compile)) if on]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish_memory_probe(probe: subprocess.Popen) -> dict[str, Any]:
    stdout, stderr = probe.communicate()
    if probe.returncode != 0:
        raise RuntimeError(f"memory probe failed (exit {probe.returncode}): {stderr.strip()[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_gib"] = result["peak_rss_bytes"] / 2**30
    return result


# ---------------------------------------------------------------- results


def figure(c: Contender, batch_size: int, roofline: Contender) -> dict[str, Any]:
    return {
        "name": c.name,
        "batch_size": batch_size,
        "samples_per_s": c.samples_per_s(),
        "median_s": c.median_s(),
        "runs_s": list(c.seconds),
        "roofline": roofline.name,
        "roofline_samples_per_s": roofline.samples_per_s(),
        "ratio": c.samples_per_s() / roofline.samples_per_s(),
        "spread_pct": 100 * (max(c.seconds) / min(c.seconds) - 1),  # slowest vs fastest repeat: the noise
    }


def projected_overhead(steps_part_s: float, epoch_end_s: float, bare_s: float, steps: int, full_steps: int) -> float:
    """Bookkeeping % of a `full_steps` epoch, from a `steps`-step one: the per-step part of the
    overhead (loss reads, sums, assignments) scales with the steps, the per-epoch part (shuffle,
    metrics, log, checkpoint) is paid once, as in a real epoch."""
    per_step = (steps_part_s - bare_s) / steps
    return 100 * (per_step * full_steps + epoch_end_s) / (bare_s / steps * full_steps)


def epoch_summary(loop: Contender, bare: Contender, times: EpochTimes, settings: Settings) -> dict[str, Any]:
    """Bookkeeping overhead as measured on the short epoch, and projected to a full-size one.

    Medians are the headline; the same from each side's fastest repeat ("best") is a second reading
    that shared-machine noise, which only ever adds time, disturbs less.
    """
    steps, bs = settings.epoch_steps, settings.epoch_batch
    full_steps = math.ceil(settings.shape.n_full / bs)
    steps_parts = [t - e for t, e in zip(loop.seconds, times.epoch_end_s)]
    epoch_end = statistics.median(times.epoch_end_s)
    steps_part = statistics.median(steps_parts)
    return {
        "batch_size": bs,
        "steps": steps,
        "loop_s": loop.median_s(),
        "bare_s": bare.median_s(),
        "loop_runs_s": list(loop.seconds),
        "bare_runs_s": list(bare.seconds),
        "epoch_end_s": epoch_end,
        "per_step_overhead_s": (steps_part - bare.median_s()) / steps,
        "overhead_pct": 100 * (loop.median_s() / bare.median_s() - 1),
        "overhead_pct_best": 100 * (min(loop.seconds) / min(bare.seconds) - 1),
        "full_epoch_steps": full_steps,
        "projected_full_epoch_overhead_pct": projected_overhead(steps_part, epoch_end, bare.median_s(), steps, full_steps),
        "projected_full_epoch_overhead_pct_best": projected_overhead(
            min(steps_parts), min(times.epoch_end_s), min(bare.seconds), steps, full_steps
        ),
    }


def targets(figures: list[dict[str, Any]], epoch: dict[str, Any], memory: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's targets with their measured values: reported, never asserted."""
    out = []
    vade = [f for f in figures if f["name"] == "vade_step" and f["batch_size"] == TARGET_BATCH]
    if vade:
        ratio = vade[0]["ratio"]
        out.append({"name": f"vade_step@{TARGET_BATCH} / roofline", "value": ratio, "limit": f">= {MIN_VADE_RATIO}",
                    "met": ratio >= MIN_VADE_RATIO})  # fmt: skip
    overhead = epoch["projected_full_epoch_overhead_pct"]
    out.append({"name": "epoch bookkeeping % (full epoch)", "value": overhead, "limit": f"< {MAX_EPOCH_OVERHEAD_PCT}",
                "met": overhead < MAX_EPOCH_OVERHEAD_PCT})  # fmt: skip
    gib = memory["peak_rss_gib"]
    out.append({"name": "peak RSS GiB (full run)", "value": gib, "limit": f"< {MAX_PEAK_RSS_GIB}",
                "met": gib < MAX_PEAK_RSS_GIB})  # fmt: skip
    return out


def print_results(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"vade-cli bench: {result['device']} ({result['device_name']}), {result['threads']} threads, "
                        f"network {result['network']['widths']}")  # fmt: skip
    for col in ("figure", "batch", "samples/s", "median s", "spread", "roofline", "ratio"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for f in result["figures"]:
        table.add_row(f["name"], str(f["batch_size"]), f"{f['samples_per_s']:,.0f}", f"{f['median_s']:.3f}",
                      f"{f['spread_pct']:.0f}%", f"{f['roofline_samples_per_s']:,.0f}", f"{f['ratio']:.2f}")  # fmt: skip
    console.print(table)
    e, m = result["epoch"], result["memory"]
    console.print(
        f"epoch @ batch {e['batch_size']}, {e['steps']} steps: real loop {e['loop_s']:.3f} s vs bare steps "
        f"{e['bare_s']:.3f} s -> overhead {e['overhead_pct']:+.1f}% (epoch end {e['epoch_end_s']:.3f} s, "
        f"per step {1000 * e['per_step_overhead_s']:+.2f} ms); projected to a {e['full_epoch_steps']}-step epoch: "
        f"{e['projected_full_epoch_overhead_pct']:+.1f}% (best repeats: {e['projected_full_epoch_overhead_pct_best']:+.1f}%)"
    )
    console.print(f"peak RSS, {m['n_samples']:,} samples: {m['peak_rss_gib']:.2f} GiB "
                  f"(after importing torch: {m['rss_after_import_bytes'] / 2**30:.2f} GiB)")  # fmt: skip
    if busy_machine(result):
        load, cores = result["load_average_1min"]["before"], result["cores"]
        console.print(
            f"[yellow]warning:[/] the machine was busy (1-min load {load:.1f} on {cores} cores, {result['threads']} "
            "bench threads): the figures are noisy, and OpenMP threads that share cores with other work can "
            f"run several times slower{'; compare --threads 1' if result['threads'] > 1 else ''}"
        )
    for t in result["targets"]:
        mark = "[green]met[/]" if t["met"] else "[red]missed[/]"
        console.print(f"target {t['name']} {t['limit']}: {t['value']:.3g} {mark}")


def busy_machine(result: dict[str, Any]) -> bool:
    """Other work already had the cores the bench's threads needed when it started."""
    return result["load_average_1min"]["before"] + result["threads"] > result["cores"] + 0.5


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- command line


def batch_sizes_arg(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be comma-separated integers, got '{text}'") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got '{text}'")
    return sizes


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got '{text}'")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vade_cli.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--batch-sizes", default="100,256", help="comma-separated (default 100,256)")
    parser.add_argument("--repeats", type=positive_int, help="timed repeats per figure (default 5, quick 2)")
    parser.add_argument("--steps", type=positive_int, help="steps per timed repeat (default 10, quick 3)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: all cores)")
    parser.add_argument("--bf16", action="store_true", help="CUDA: bf16 autocast in the steps (device.amp_bf16)")
    parser.add_argument("--compile", action="store_true", help="CUDA: torch.compile the step losses (device.compile)")
    parser.add_argument("--quick", action="store_true", help="tiny network and data: a smoke test in seconds")
    parser.add_argument("--out", type=Path, default=Path("bench.json"), help="results file (default bench.json)")
    parser.add_argument("--probe-memory", action="store_true", help=argparse.SUPPRESS)  # the (e) subprocess
    args = parser.parse_args(argv)
    try:
        batch_sizes_arg(args.batch_sizes)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.steps = args.steps or (3 if args.quick else 10)
    return args


def device_config(args: argparse.Namespace) -> DictConfig:
    """The `device` config group's fields that the bench's flags set, in the shape `train.fit` reads."""
    return OmegaConf.create({"type": args.device, "threads": args.threads, "amp_bf16": args.bf16,
                             "compile": args.compile, "tf32": True})  # fmt: skip


def settings_from(args: argparse.Namespace, device: torch.device) -> Settings:
    shape = Shape.from_config("small", 64, 2_000) if args.quick else Shape.from_config("paper", 784, 70_000)
    return Settings(
        device=device,
        shape=shape,
        batch_sizes=batch_sizes_arg(args.batch_sizes),
        repeats=args.repeats,
        steps=args.steps,
        warmup_steps=1 if args.quick else 2,
        epoch_steps=3 * args.steps,
        device_cfg=device_config(args),
    )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Weights and data from a fixed seed, without leaving the caller's global RNG moved."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def step_figures(model: VaDE, settings: Settings, clock: Clock) -> list[dict[str, Any]]:
    """(a), (b) and their roofline at every batch size."""
    with seeded(1):
        x = torch.rand(settings.n_step_data(), settings.shape.n_features, device=settings.device)
    figures = []
    for bs in settings.batch_sizes:
        contenders = step_contenders(model, x, bs, settings)
        measure(contenders, settings.repeats, clock)
        figures += [figure(c, bs, contenders[0]) for c in contenders]
    return figures


def eval_figures(model: VaDE, settings: Settings, clock: Clock) -> list[dict[str, Any]]:
    """(c) over a full-size tensor, freed on return."""
    with seeded(2):
        x = torch.rand(settings.shape.n_full, settings.shape.n_features, device=settings.device)
    contenders = eval_contenders(model, x, settings)
    measure(contenders, settings.repeats, clock)
    return [figure(c, predict_chunk(), contenders[0]) for c in contenders]


def epoch_figures(model: VaDE, settings: Settings, clock: Clock) -> dict[str, Any]:
    """(d), with the loop's checkpoint and metrics log in a folder removed on return."""
    with seeded(3):
        x = torch.rand(settings.n_step_data(), settings.shape.n_features, device=settings.device)
    with tempfile.TemporaryDirectory() as tmp:
        (loop, bare), times = epoch_contenders(model, x, settings, Path(tmp))
        measure([loop, bare], settings.repeats, clock)
    return epoch_summary(loop, bare, times, settings)


def benchmark(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """(a)-(d) in this process, (e) in a subprocess; every figure with its roofline and ratio."""
    shape, device, clock = settings.shape, settings.device, Clock(settings.device)
    # Quick mode overlaps the probe's interpreter start-up with the timings (its numbers are a smoke
    # test); a real run keeps the machine to itself while it times.
    probe = start_memory_probe(args) if args.quick else None
    with seeded(0):
        model = build_vade(shape, device)
    figures = step_figures(model, settings, clock) + eval_figures(model, settings, clock)
    epoch = epoch_figures(model, settings, clock)
    memory = finish_memory_probe(probe or start_memory_probe(args))
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": bool(args.quick),
        "bf16": bool(settings.device_cfg.amp_bf16),
        "compile": bool(settings.device_cfg.compile),
        "network": {"widths": shape.widths(), "n_features": shape.n_features, "hidden": list(shape.hidden),
                    "latent_dim": shape.latent_dim, "n_clusters": shape.n_clusters},  # fmt: skip
        "settings": {"batch_sizes": list(settings.batch_sizes), "repeats": settings.repeats, "steps": settings.steps,
                     "warmup_steps": settings.warmup_steps, "epoch_steps": settings.epoch_steps,
                     "n_step_data": settings.n_step_data(), "n_eval": shape.n_full},  # fmt: skip
        "figures": figures,
        "epoch": epoch,
        "memory": memory,
        "targets": targets(figures, epoch, memory),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(device_config(args))
    if (args.bf16 or args.compile) and device.type != "cuda":
        print("--bf16 and --compile are CUDA-only, as device.amp_bf16 and device.compile are", file=sys.stderr)
        return 2
    configure(device_config(args), device)
    settings = settings_from(args, device)
    if args.probe_memory:
        print(json.dumps(probe_memory(settings)))
        return 0
    load_before = os.getloadavg()[0]
    result = benchmark(settings, args)
    result["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    print_results(result, Console())
    checkpoint.atomic_write_json(args.out, result)
    Console().print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
