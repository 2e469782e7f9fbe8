"""From timings to figures: ratios against both rooflines, the digits run's bookkeeping projected to
its full length, the targets, the printed table and the facts of the machine."""

from __future__ import annotations

import contextlib
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from vade_cli.bench.contenders import DigitsRun, RunTimes
from vade_cli.bench.timing import Contender

# The targets, checked (never asserted) on every run.
TARGET_BATCH = 100
MIN_VADE_SPEEDUP = 1.5  # VaDE step at batch 100 vs the float32 roofline
MIN_EVAL_SAMPLES_PER_S = 70_000.0  # evaluation pass over 70,000 x 784
MAX_RUN_OVERHEAD_PCT = 2.0  # epoch bookkeeping, % of a default digits run's training time
MAX_PEAK_RSS_GIB = 2.0  # full-size run


def paired_speedup(c: Contender, r: Contender) -> float:
    """c's throughput over r's, as the median of the repeats' own ratios.

    `measure` times the contenders in turn within each repeat, so a slow stretch of a busy machine
    hits both halves of a pair alike and cancels in their ratio; the ratio of two medians does not.
    """
    return statistics.median((rs / r.samples) / (cs / c.samples) for cs, rs in zip(c.seconds, r.seconds, strict=True))


def figure(c: Contender, batch_size: int, rooflines: dict[str, Contender]) -> dict[str, Any]:
    """One contender's throughput, and its ratio to each roofline (keyed by the roofline's precision):
    the paired ratio (the headline) and the ratio of the two median throughputs."""
    return {
        "name": c.name,
        "batch_size": batch_size,
        "precision": c.precision,
        "samples_per_s": c.samples_per_s(),
        "median_s": c.median_s(),
        "runs_s": list(c.seconds),
        "spread_pct": 100 * (max(c.seconds) / min(c.seconds) - 1),  # slowest vs fastest repeat: the noise
        "rooflines": {
            p: {"name": r.name, "samples_per_s": r.samples_per_s(), "ratio": paired_speedup(c, r),
                "ratio_of_medians": c.samples_per_s() / r.samples_per_s()}
            for p, r in rooflines.items()
        },
    }


def checkpoints_written(epochs: int, epoch_s: float, checkpoint_s: float, every_s: float) -> int:
    """How many checkpoints `run_phase`'s policy writes in a phase of `epochs` epochs of `epoch_s`
    seconds: at an epoch end once `every_s` seconds have passed since the last, and at the phase's end."""
    n, clock, last = 0, 0.0, 0.0
    for epoch in range(1, epochs + 1):
        clock += epoch_s
        if clock - last >= every_s or epoch == epochs:
            n, clock = n + 1, clock + checkpoint_s
            last = clock
    return n


def projected_run(fixed_s: float, epoch_s: float, checkpoint_s: float, bare_epoch_s: float, epochs: int,
                  every_s: float) -> dict[str, float]:  # fmt: skip
    """The loop's bookkeeping as a % of a full run's bare training time: its fixed start-up cost once,
    its per-epoch part (shuffle, per-step sums, metrics, metrics.jsonl) every epoch, and a checkpoint
    as often as the policy writes one."""
    n_checkpoints = checkpoints_written(epochs, epoch_s, checkpoint_s, every_s)
    train_s = fixed_s + epochs * epoch_s + n_checkpoints * checkpoint_s
    bare_s = epochs * bare_epoch_s
    return {"train_s": train_s, "checkpoints": n_checkpoints, "overhead_pct": 100 * (train_s / bare_s - 1)}


def split_fit(t: RunTimes) -> dict[str, float]:
    """One timed fit, cut at its epoch-end callbacks: a steady epoch (exit of the first callback to
    exit of the last, per epoch), the fixed start-up (the first epoch's excess: optimiser, initial
    assignments), the checkpoint after the last epoch, and the callback itself (metrics + log)."""
    exits = [x for _, x in t.epoch_ends]
    epoch_s = (exits[-1] - exits[0]) / (len(exits) - 1)
    return {
        "epoch_s": epoch_s,
        "fixed_s": exits[0] - t.start - epoch_s,
        "checkpoint_s": t.end - exits[-1],
        "callback_s": statistics.mean(x - e for e, x in t.epoch_ends),
    }


def run_summary(d: DigitsRun, train_cfg: Any) -> dict[str, Any]:
    """(d): the measured short run, its parts, and the bookkeeping projected to the default run's length.

    Two readings. The differential one (the loop's steady epoch minus a bare epoch, plus start-up and
    checkpoints) counts everything but rides on two noisy step timings, so each timed fit is set
    against the bare steps timed right after it and the median of those paired projections is the
    headline; the timed-parts one counts only what is timed directly (the epoch-end callback every
    epoch, the checkpoints, the start-up) and is a lower bound. The target takes the larger: a
    differential reading below the lower bound is noise. "best" projects each part's fastest repeat.
    """
    parts = [split_fit(t) for t in d.times]
    median = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    best = {k: min(p[k] for p in parts) for k in parts[0]}
    epochs = d.facts["epochs"]
    bare_epochs_s = [s / epochs for s in d.bare.seconds]  # repeat i's bare epoch, timed right after fit i
    bare_epoch_s = statistics.median(bare_epochs_s)
    policy = {"epochs": int(train_cfg.epochs), "every_s": float(train_cfg.checkpoint_every_s)}
    paired = [projected_run(p["fixed_s"], p["epoch_s"], p["checkpoint_s"], b, **policy)["overhead_pct"]
              for p, b in zip(parts, bare_epochs_s, strict=True)]  # fmt: skip
    projected = projected_run(median["fixed_s"], median["epoch_s"], median["checkpoint_s"], bare_epoch_s, **policy)
    projected_best = projected_run(best["fixed_s"], best["epoch_s"], best["checkpoint_s"], min(bare_epochs_s), **policy)
    timed_parts = projected_run(max(median["fixed_s"], 0.0), bare_epoch_s + median["callback_s"],
                                median["checkpoint_s"], bare_epoch_s, **policy)  # fmt: skip
    paired_pct = statistics.median(paired)
    return {
        **d.facts,
        "loop_s": d.loop.median_s(),
        "bare_s": d.bare.median_s(),
        "loop_runs_s": list(d.loop.seconds),
        "bare_runs_s": list(d.bare.seconds),
        "overhead_pct": 100 * (d.loop.median_s() / d.bare.median_s() - 1),
        "overhead_pct_paired": 100 * (paired_speedup(d.bare, d.loop) - 1),  # same samples: loop time over bare
        "overhead_pct_best": 100 * (min(d.loop.seconds) / min(d.bare.seconds) - 1),
        **median,
        "bare_epoch_s": bare_epoch_s,
        "per_epoch_overhead_s": median["epoch_s"] - bare_epoch_s,
        "full_run": {"epochs": policy["epochs"], "checkpoint_every_s": policy["every_s"],
                     "projected_train_s": projected["train_s"], "checkpoints": projected["checkpoints"]},  # fmt: skip
        "projected_overhead_pct": paired_pct,
        "projected_overhead_pct_repeats": paired,
        "projected_overhead_pct_of_medians": projected["overhead_pct"],
        "projected_overhead_pct_best": projected_best["overhead_pct"],
        "projected_timed_parts_pct": timed_parts["overhead_pct"],
        "bookkeeping_pct": max(paired_pct, timed_parts["overhead_pct"]),
    }


def target(name: str, value: float, limit: str, met: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "value": value, "limit": limit, "met": bool(met), "detail": detail}


def targets(figures: list[dict[str, Any]], shape_text: str, digits: dict[str, Any],
            memory: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """The targets with their measured values: reported, never asserted."""
    out = []
    vade = [f for f in figures if f["name"] == "vade_step" and f["batch_size"] == TARGET_BATCH]
    if vade:
        ratio = vade[0]["rooflines"]["fp32"]["ratio"]
        out.append(target(f"vade_step@{TARGET_BATCH} / fp32 roofline", ratio, f">= {MIN_VADE_SPEEDUP}",
                          ratio >= MIN_VADE_SPEEDUP, f"VaDE step in {vade[0]['precision']}"))  # fmt: skip
    rate = next(f["samples_per_s"] for f in figures if f["name"] == "eval_pass")
    out.append(target("eval_pass samples/s", rate, f">= {MIN_EVAL_SAMPLES_PER_S:,.0f}", rate >= MIN_EVAL_SAMPLES_PER_S,
                      f"run.evaluate over {shape_text}"))  # fmt: skip
    pct = digits["bookkeeping_pct"]
    out.append(target("epoch bookkeeping % of a default digits run", pct, f"< {MAX_RUN_OVERHEAD_PCT}",
                      pct < MAX_RUN_OVERHEAD_PCT, f"{digits['full_run']['epochs']} epochs, "
                      f"{digits['full_run']['checkpoints']} checkpoint(s)"))  # fmt: skip
    gib = memory["peak_rss_gib"]
    out.append(target("peak RSS GiB (full run)", gib, f"< {MAX_PEAK_RSS_GIB}", gib < MAX_PEAK_RSS_GIB,
                      f"{memory['n_samples']:,} samples"))  # fmt: skip
    return out


def print_results(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"vade-cli bench: {result['device']} ({result['device_name']}), {result['threads']} threads, "
                        f"network {result['network']['widths']}, device.amp_bf16={result['amp_bf16']} "
                        f"-> {result['precision']}")  # fmt: skip
    for col in ("figure", "batch", "precision", "samples/s", "median s", "spread", "/ fp32 roofline", "/ bf16 roofline"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for f in result["figures"]:
        table.add_row(f["name"], str(f["batch_size"]), f["precision"], f"{f['samples_per_s']:,.0f}",
                      f"{f['median_s']:.3f}", f"{f['spread_pct']:.0f}%",
                      *(f"{f['rooflines'][p]['ratio']:.2f}" for p in ("fp32", "bf16")))  # fmt: skip
    console.print(table)
    d, m = result["digits_run"], result["memory"]
    full = d["full_run"]
    console.print(
        f"default {d['dataset']} run ({d['n_samples']:,} x {d['n_features']}, batch {d['batch_size']}, "
        f"{d['steps_per_epoch']} steps/epoch), {d['epochs']} epochs through train.fit: {d['loop_s']:.3f} s vs bare "
        f"steps {d['bare_s']:.3f} s ({d['overhead_pct_paired']:+.1f}%, median of the repeats' pairs); an epoch {1000 * d['epoch_s']:.1f} ms vs bare "
        f"{1000 * d['bare_epoch_s']:.1f} ms (metrics + log {1000 * d['callback_s']:.1f} ms), checkpoint "
        f"{1000 * d['checkpoint_s']:.0f} ms, start-up {1000 * d['fixed_s']:.0f} ms; projected to {full['epochs']} "
        f"epochs with {full['checkpoints']} checkpoint(s) (checkpoint_every_s={full['checkpoint_every_s']:g}): "
        f"{d['projected_overhead_pct']:+.1f}%, median of {len(d['projected_overhead_pct_repeats'])} paired repeats (best repeats: {d['projected_overhead_pct_best']:+.1f}%; the timed parts "
        f"alone, a lower bound: {d['projected_timed_parts_pct']:+.1f}%)"
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
        console.print(f"target {t['name']} {t['limit']}: {t['value']:.3g} {mark} ({t['detail']})")


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
