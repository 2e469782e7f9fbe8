"""One-shot GPU check: everything worth knowing from a short loan of a GPU machine, in one go.

Runs side by side, under one deadline, and writes summary.json + summary.md (+ logs.tar.gz):
  sweep   `vade-run -m` over SEEDS with the joblib launcher, several jobs sharing the GPU
          (device.threads=1), with the given preset -> the multirun table (partial if the deadline hits)
  parity  the same short run with float32 and with bf16 + torch.compile: time per run and ACC of each
  tests   the test suite, on the GPU machine's CPUs and GPU (optional)

    python scripts/gpu_check.py --out DIR [--seeds 0-9] [--budget-s 420] [--preset mnist]
    python scripts/gpu_check.py --dry --out DIR      # the same plumbing on the CPU with tiny settings

Nothing here reads labels for training; the table's ACC columns are reports only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = ["dataset=digits", "model=small", "pretrain=ae", "pretrain.init=gmm", "pretrain.epochs=2", "train.epochs=2", "device=cpu", "device.threads=1"]


def vade(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "vade_cli.cli", *args]


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def plan(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    """name -> command. The sweep and the parity pair; the test suite when asked for."""
    seeds = ",".join(str(s) for s in seeds_arg(args.seeds))
    common = ["report.figures=false", f"paths.output_root={out}/outputs"]
    if args.dry:
        sweep = [*TINY, *common]
        short = [*TINY, *common]
        fast = ["device.amp_bf16=true"]  # compile is CUDA-only
    else:
        sweep = [f"experiment={args.preset}", "device=cuda", "device.threads=1", *common, *args.extra]
        short = [f"experiment={args.preset}", "dataset.split=test", "device=cuda", "device.threads=2",
                 f"pretrain.epochs={args.parity_epochs}", f"train.epochs={args.parity_epochs}", *common]
        fast = ["device.amp_bf16=true", "device.compile=true"]
    jobs = {
        "sweep": vade(["-m", f"seed={seeds}", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}",
                       f"hydra.sweep.dir={out}/sweep", *sweep]),
        "parity_fp32": vade([*short, "device.amp_bf16=false", "device.compile=false", "pretrain.cache=false",
                             f"hydra.run.dir={out}/parity_fp32"]),
        "parity_fast": vade([*short, *fast, "pretrain.cache=false", f"hydra.run.dir={out}/parity_fast"]),
    }
    if args.tests:
        jobs["tests"] = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    return jobs


def run_all(jobs: dict[str, list[str]], out: Path, budget_s: float) -> dict[str, dict]:
    """Start every job, wait until all end or the deadline passes, then stop what is left."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs, started = {}, {}
    for name, cmd in jobs.items():
        log = open(logs / f"{name}.log", "w")
        procs[name] = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started[name] = time.monotonic()
    deadline = time.monotonic() + budget_s
    status = {}
    while procs and time.monotonic() < deadline:
        for name, proc in list(procs.items()):
            if proc.poll() is not None:
                status[name] = {"rc": proc.returncode, "seconds": time.monotonic() - started[name]}
                del procs[name]
        time.sleep(2)
    for proc in procs.values():
        os.killpg(proc.pid, signal.SIGTERM)  # runs save a checkpoint and a resume line on SIGTERM
    for name, proc in procs.items():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        status[name] = {"rc": None, "seconds": time.monotonic() - started[name], "stopped_at_deadline": True}
    return status


def read_report(run_dir: Path) -> dict | None:
    path = run_dir / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def progress(run_dir: Path) -> dict:
    """How far an unfinished run got, from its metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(s) for s in path.read_text().splitlines()] if path.is_file() else []
    train = [r for r in rows if r.get("phase") == "train"]
    return {"pretrain_epochs": sum(r.get("phase") == "pretrain" for r in rows), "train_epochs": len(train),
            "last_epoch_acc": train[-1].get("acc") if train else None}


def summarise(out: Path, status: dict[str, dict]) -> dict:
    import torch

    summary: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                     "torch": torch.__version__, "jobs": status, "parity": {}, "sweep": []}
    for name in ("parity_fp32", "parity_fast"):
        rep = read_report(out / name)
        summary["parity"][name] = None if rep is None else {
            "acc": rep["metrics"]["final"]["acc"], "init_acc": rep["metrics"]["gmm_init"]["acc"],
            "pretrain_s": rep["timings"]["pretrain_s"], "train_s": rep["timings"]["train_s"],
            "total_s": rep["timings"]["total_s"], "epochs": rep["epochs"]}
    sweep = out / "sweep"
    for job in sorted((p for p in sweep.glob("*") if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        rep = read_report(job)
        row = {"job": int(job.name)}
        if rep is not None and rep.get("status") == "completed":
            row.update(seed=rep["seed"], init_acc=rep["metrics"]["gmm_init"]["acc"], acc=rep["metrics"]["final"]["acc"],
                       nmi=rep["metrics"]["final"]["nmi"], total_s=rep["timings"]["total_s"])
        else:
            row.update(progress(job))
        summary["sweep"].append(row)
    done = [r["acc"] for r in summary["sweep"] if "acc" in r]
    if done:
        import statistics

        summary["sweep_acc"] = {"n": len(done), "mean": statistics.fmean(done),
                                "std": statistics.stdev(done) if len(done) > 1 else 0.0}
    if (sweep / "table.md").is_file():
        summary["table_md"] = (sweep / "table.md").read_text()
    return summary


def markdown(summary: dict) -> str:
    lines = [f"# GPU check on {summary['device']} (torch {summary['torch']})", "", "| job | rc | seconds |", "| --- | ---: | ---: |"]
    for name, st in summary["jobs"].items():
        lines.append(f"| {name} | {st['rc']} | {st['seconds']:.0f} |")
    lines += ["", "| parity run | ACC | init ACC | pretrain s | train s |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, p in summary["parity"].items():
        lines.append(f"| {name} | - | - | - | - |" if p is None else
                     f"| {name} | {p['acc']:.4f} | {p['init_acc']:.4f} | {p['pretrain_s']:.1f} | {p['train_s']:.1f} |")
    lines += ["", "| sweep job | seed | init ACC | ACC | s | progress |", "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in summary["sweep"]:
        if "acc" in r:
            lines.append(f"| {r['job']} | {r['seed']} | {r['init_acc']:.4f} | {r['acc']:.4f} | {r['total_s']:.0f} | done |")
        else:
            lines.append(f"| {r['job']} | - | - | - | - | {r['pretrain_epochs']} AE + {r['train_epochs']} VaDE epochs |")
    if "sweep_acc" in summary:
        s = summary["sweep_acc"]
        lines += ["", f"VaDE ACC over {s['n']} finished seeds: {s['mean']:.4f} ± {s['std']:.4f}"]
    if "table_md" in summary:
        lines += ["", summary["table_md"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--jobs", type=int, default=10, help="sweep jobs running at once on the GPU")
    parser.add_argument("--preset", default="mnist")
    parser.add_argument("--parity-epochs", type=int, default=20)
    parser.add_argument("--budget-s", type=float, default=420)
    parser.add_argument("--tests", action="store_true", help="also run the test suite")
    parser.add_argument("--dry", action="store_true", help="CPU, tiny settings: checks the plumbing")
    parser.add_argument("extra", nargs="*", help="more overrides for the sweep jobs")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    status = run_all(plan(args, out), out, args.budget_s)
    summary = summarise(out, status)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        tar.add(out / "logs", arcname="logs")
        for rel in ("sweep",):
            for p in (out / rel).rglob("*"):
                if p.suffix in (".json", ".jsonl", ".md", ".csv", ".log"):
                    tar.add(p, arcname=str(p.relative_to(out)))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
