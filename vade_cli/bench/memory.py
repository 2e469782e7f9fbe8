"""(e): a full-size run's peak memory, probed in a fresh interpreter so the bench's own allocations
do not count."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from vade_cli import checkpoint, run, train
from vade_cli.bench.settings import Settings, build_vade, train_config

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding vade_cli/


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
    (which writes its phase-end checkpoint), and one eval pass over every sample, all under the
    run's precision."""
    after_import = peak_rss_bytes()
    shape, device = settings.shape, settings.device
    x = torch.rand(shape.n_full, shape.n_features, device=device)
    model = build_vade(settings.cfg, shape.n_features, device)
    bs = settings.first_batch
    with tempfile.TemporaryDirectory() as tmp:
        # fit on a view of the first few batches: the full tensor stays resident and the epoch short
        train.fit(model, x[: settings.steps * bs], train_config(settings, bs, 1), 0, Path(tmp) / checkpoint.LAST,
                  train.StopRequest(), compute=settings.compute)  # fmt: skip
        run.evaluate(model, x, None, settings.compute)
    out = {"n_samples": shape.n_full, "peak_rss_bytes": peak_rss_bytes(), "rss_after_import_bytes": after_import}
    if device.type == "cuda":
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return out


def start_memory_probe(args: argparse.Namespace) -> subprocess.Popen:
    """`probe_memory` in a fresh interpreter, with the flags this run was given."""
    cmd = [sys.executable, "-m", "vade_cli.bench", "--probe-memory", "--device", args.device,
           "--amp-bf16", args.amp_bf16, "--steps", str(args.steps), "--batch-sizes", args.batch_sizes]  # fmt: skip
    cmd += [flag for flag, on in (("--quick", args.quick), ("--compile", args.compile)) if on]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish_memory_probe(probe: subprocess.Popen) -> dict[str, Any]:
    stdout, stderr = probe.communicate()
    if probe.returncode != 0:
        raise RuntimeError(f"memory probe failed (exit {probe.returncode}): {stderr.strip()[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_gib"] = result["peak_rss_bytes"] / 2**30
    return result
