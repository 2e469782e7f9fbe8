"""What a run leaves behind for people: metrics.jsonl, report.json and the terminal summary."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vade_cli import checkpoint
from vade_cli.text import decimal

console = Console(stderr=True)

_PACKAGES = ("vade-cli", "torch", "numpy", "scikit-learn", "scipy", "hydra-core", "omegaconf")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class MetricsLog:
    """metrics.jsonl, one JSON object per epoch, as one process writes it: whole at first, then appended.

    The first write of a run (and of every resumed run) replaces the file atomically with the rows it
    is given, so a resumed run drops the epochs its checkpoint does not hold. Later writes append
    only the new rows: rewriting the whole log every epoch cost more the longer the run (the DEC
    autoencoder alone logs 300 rows) and was the largest part of the loop's bookkeeping. Rows already
    written are taken as final; if the last one has changed, the file is rewritten whole. Not
    fsynced: a kill can cost at most the last line, which `read_metrics_log` skips when it is cut short.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / checkpoint.METRICS
        self._count = 0
        self._last: dict[str, Any] | None = None

    def write(self, records: list[dict[str, Any]]) -> None:
        appendable = self._last is not None and len(records) >= self._count and records[self._count - 1] == self._last
        if appendable:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(_jsonl(records[self._count :]))
        else:
            checkpoint.atomic_write_text(self.path, _jsonl(records), durable=False)
        self._count = len(records)
        self._last = dict(records[-1]) if records else None


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def read_metrics_log(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl; a last line cut short by a kill mid-append is left out."""
    path = run_dir / checkpoint.METRICS
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1:
                raise
    return rows


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    checkpoint.atomic_write_json(run_dir / checkpoint.REPORT, report)


def dataset_info(dataset: Any) -> dict[str, Any]:
    """report.json's `dataset` entry (a `data.Dataset`): task=sample reads the likelihood and image shape."""
    return {"name": dataset.name, "n_samples": dataset.n_samples, "n_features": dataset.n_features,
            "likelihood": dataset.likelihood, "scale": dataset.scale, "has_labels": dataset.y is not None,
            "image_shape": list(dataset.image_shape) if dataset.image_shape else None}


def run_report(cfg: Any, run_dir: Path, data: dict[str, Any], history: list[dict[str, Any]],
               labels: Any, **details: Any) -> dict[str, Any]:
    """The report.json of a trained model, as `vade-run` and `VaDEClustering.save` both write it.

    `data`: `dataset_info`'s entry; `labels`: the final clusters (None: not known); `details`: the
    writer's own fields (scores, timings, ...), placed before the versions and the config.
    """
    from omegaconf import OmegaConf

    n_clusters = int(cfg.n_clusters)
    return {
        "status": "completed",
        "run_dir": str(run_dir),
        "dataset": data,
        "n_clusters": n_clusters,
        "seed": int(cfg.seed),
        "final_elbo": -history[-1]["loss"] if history else None,
        "cluster_sizes": None if labels is None else np.bincount(labels, minlength=n_clusters).tolist(),
        "epochs": len(history),
        **details,
        "versions": package_versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Progress | None]:
    """Rich progress bars on stderr (one per phase); silent when stderr is not a terminal."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield progress


def timing_text(report: dict[str, Any]) -> str:
    """Where the time went, saying which session each number counts when the run was resumed.

    A resumed run's report times its own session (`total_s`, and `train_s` or `pretrain_s` for the
    rest of the phase it resumed in); the phases an earlier session finished keep that session's times.
    """
    t = report["timings"]
    cache = " (cached autoencoder)" if report.get("pretrain_cache_hit") else ""
    pretrain, gmm, train = (f"{t[k]:.1f}s" for k in ("pretrain_s", "gmm_s", "train_s"))
    device = report["device"]
    if t.get("resumed_in") == "train":
        return (f"wall time {t['total_s']:.1f}s this session, resumed during VaDE training: train {train} "
                f"(the epochs left) on {device}; pretrain {pretrain}{cache} and prior init {gmm} ran in an earlier session")
    if t.get("resumed_in") == "pretrain":
        return (f"wall time {t['total_s']:.1f}s this session, resumed during pretraining: pretrain {pretrain} "
                f"(the epochs left), prior init {gmm}, train {train} on {device}")
    return f"wall time {t['total_s']:.1f}s: pretrain {pretrain}{cache}, prior init {gmm}, train {train} on {device}"


def print_summary(report: dict[str, Any]) -> None:
    """One table: the prior init against final VaDE, and where the time went."""
    ds = report["dataset"]
    table = Table(title=f"VaDE on {ds['name']} (K={report['n_clusters']}, seed {report['seed']}, "
                        f"{ds['likelihood']} likelihood, scale {ds.get('scale', 'none')})")
    table.add_column("stage")
    for col in ("ACC", "NMI", "ARI"):
        table.add_column(col, justify="right")
    stages = [("AE + prior init", "gmm_init")] + ([("VaDE", "final")] if report.get("epochs") != 0 else [])
    for label, key in stages:  # train.epochs=0 stops at the init: a VaDE row would only repeat it
        m = report["metrics"].get(key, {})
        table.add_row(label, *(decimal(m.get(metric)) for metric in ("acc", "nmi", "ari")))
    console.print(table)
    console.print(timing_text(report))
    if not report["metrics"].get("final"):
        console.print("no labels: ACC/NMI/ARI need labels; see the ELBO in metrics.jsonl")
    console.print(f"run folder: {report['run_dir']}")
