"""The command line: arguments, the measurements in order, the table and bench.json."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from vade_cli import checkpoint
from vade_cli.bench import __doc__ as bench_doc
from vade_cli.bench.contenders import digits_run, eval_contenders, predict_chunk, step_contenders
from vade_cli.bench.memory import finish_memory_probe, probe_memory, start_memory_probe
from vade_cli.bench.results import device_name, figure, print_results, run_summary, targets
from vade_cli.bench.settings import Settings, Shape, build_vade, product_config, seeded
from vade_cli.bench.timing import Clock, measure
from vade_cli.device import check_compile, configure, cpu_has_native_bf16, resolve_device
from vade_cli.errors import ConfigError
from vade_cli.validate import int_list_arg, positive_int_arg

# (d) reads the loop's bookkeeping as loop time minus bare time, each a few % noisy on a shared VM, for an
# effect of about 1%: its median needs more pairs than a throughput needs repeats (about 2.5 s a pair).
RUN_REPEATS_FACTOR = 3

AMP_BF16 = ("auto", "true", "false")  # device.amp_bf16's values


def batch_sizes_arg(text: str) -> tuple[int, ...]:
    return tuple(int_list_arg(text, "batch sizes", 1))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vade_cli.bench", description=bench_doc.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--amp-bf16", choices=AMP_BF16, default="auto",
                        help="device.amp_bf16: bf16 autocast as a run applies it (default auto: CUDA, CPUs with native bf16)")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="torch.compile the step losses (device.compile)")
    parser.add_argument("--batch-sizes", default="100,256", help="comma-separated (default 100,256)")
    parser.add_argument("--repeats", type=positive_int_arg, help="timed repeats per figure (default 5, quick 2)")
    parser.add_argument("--run-repeats", type=positive_int_arg,
                        help="timed repeats of the digits run (d) (default 3x --repeats: its reading is a difference "
                             "of two noisy timings)")  # fmt: skip
    parser.add_argument("--steps", type=positive_int_arg, help="steps per timed repeat (default 10, quick 3)")
    parser.add_argument("--threads", type=positive_int_arg, help="CPU threads (default: all cores)")
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
    args.run_repeats = args.run_repeats or RUN_REPEATS_FACTOR * args.repeats
    return args


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The flags as `vade-run` overrides, so the bench runs the config a run with them would."""
    overrides = [f"device={args.device}", f"device.amp_bf16={args.amp_bf16}", f"device.compile={str(args.compile).lower()}"]
    overrides += [f"device.threads={args.threads}"] if args.threads else []
    return overrides + (["model=small"] if args.quick else [])


def settings_from(args: argparse.Namespace) -> Settings:
    cfg = product_config(config_overrides(args))
    check_compile(cfg.device)
    shape = Shape.from_config(cfg, 64, 2_000) if args.quick else Shape.from_config(cfg, 784, 70_000)
    return Settings(
        device=resolve_device(cfg.device),
        cfg=cfg,
        shape=shape,
        batch_sizes=batch_sizes_arg(args.batch_sizes),
        repeats=args.repeats,
        run_repeats=args.run_repeats,
        steps=args.steps,
        warmup_steps=1 if args.quick else 2,
        run_epochs=2 if args.quick else 5,
    )


def step_figures(model, settings: Settings, clock: Clock) -> list[dict[str, Any]]:
    """(a), (b) and both rooflines at every batch size."""
    with seeded(1):
        x = torch.rand(settings.n_step_data(), settings.shape.n_features, device=settings.device)
    figures = []
    for bs in settings.batch_sizes:
        rooflines, product = step_contenders(model, x, bs, settings)
        contenders = [*rooflines.values(), *product]
        measure(contenders, settings.repeats, clock)
        figures += [figure(c, bs, rooflines) for c in contenders]
    return figures


def eval_figures(model, settings: Settings, clock: Clock) -> list[dict[str, Any]]:
    """(c) over a full-size tensor, freed on return."""
    with seeded(2):
        x = torch.rand(settings.shape.n_full, settings.shape.n_features, device=settings.device)
    rooflines, product = eval_contenders(model, x, settings)
    contenders = [*rooflines.values(), *product]
    measure(contenders, settings.repeats, clock)
    return [figure(c, predict_chunk(), rooflines) for c in contenders]


def digits_figures(settings: Settings, clock: Clock) -> dict[str, Any]:
    """(d), with the loop's checkpoint and metrics log in a folder removed on return."""
    with tempfile.TemporaryDirectory() as tmp:
        d = digits_run(settings, Path(tmp))
        measure([d.loop, d.bare], settings.run_repeats, clock)
    return run_summary(d, settings.cfg.train)


def benchmark(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """(a)-(d) in this process, (e) in a subprocess; every figure with both rooflines and its ratios."""
    shape, device, clock = settings.shape, settings.device, Clock(settings.device)
    # Quick mode overlaps the probe's interpreter start-up with the timings (its numbers are a smoke
    # test); a real run keeps the machine to itself while it times.
    probe = start_memory_probe(args) if args.quick else None
    with seeded(0):
        model = build_vade(settings.cfg, shape.n_features, device)
    figures = step_figures(model, settings, clock) + eval_figures(model, settings, clock)
    digits = digits_figures(settings, clock)
    memory = finish_memory_probe(probe or start_memory_probe(args))
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": bool(args.quick),
        "amp_bf16": args.amp_bf16,
        "precision": settings.precision,
        "cpu_native_bf16": cpu_has_native_bf16(),
        "compile": settings.compute.compile,
        "network": {"widths": shape.widths(), "n_features": shape.n_features, "hidden": list(shape.hidden),
                    "latent_dim": shape.latent_dim, "n_clusters": shape.n_clusters},  # fmt: skip
        "settings": {"batch_sizes": list(settings.batch_sizes), "repeats": settings.repeats,
                     "run_repeats": settings.run_repeats, "steps": settings.steps,
                     "warmup_steps": settings.warmup_steps, "run_epochs": settings.run_epochs,
                     "n_step_data": settings.n_step_data(), "n_eval": shape.n_full},  # fmt: skip
        "figures": figures,
        "digits_run": digits,
        "memory": memory,
        "targets": targets(figures, f"{shape.n_full:,} x {shape.n_features}", digits, memory),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure(settings.device_cfg, settings.device)
    if args.probe_memory:
        print(json.dumps(probe_memory(settings)))
        return 0
    load_before = os.getloadavg()[0]
    result = benchmark(settings, args)
    result["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    console = Console() if sys.stdout.isatty() else Console(width=140)  # the table unsquashed in a log
    print_results(result, console)
    checkpoint.atomic_write_json(args.out, result)
    console.print(f"wrote {args.out}")
    return 0
