"""One training run, in order: data -> autoencoder -> GMM init -> VaDE -> evaluation -> report.

`train_run(cfg, run_dir)` is a plain function (tests and sweeps call it directly); it picks up
where an interrupted run in the same folder stopped, from whichever checkpoint is there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vade_cli import checkpoint, data, metrics, pretrain, prior_init, report, trackers, train
from vade_cli.device import Compute, configure, resolve_device, seed_everything
from vade_cli.model import VaDE
from vade_cli.validate import check_against_data, check_config


def build_model(cfg: DictConfig, dataset: data.Dataset) -> VaDE:
    m = cfg.model
    return VaDE(
        n_features=dataset.n_features,
        n_clusters=int(cfg.n_clusters),
        hidden=[int(h) for h in m.hidden],
        latent_dim=int(m.latent_dim),
        likelihood=dataset.likelihood,
        logvar_init=float(m.logvar_init),
        obs_variance=float(m.obs_variance),
    )


def prepare(cfg: DictConfig) -> tuple[torch.device, data.Dataset]:
    """Validate the config, pick the device, load and check the data: all before anything is written."""
    check_config(cfg)
    device = resolve_device(cfg.device)
    configure(cfg.device, device)
    dataset = data.load(cfg.dataset)
    check_against_data(cfg, dataset.n_samples)
    return device, dataset


def evaluate(model: VaDE, x: torch.Tensor, y: np.ndarray | None, compute: Compute | None = None,
             ) -> tuple[np.ndarray, dict[str, float]]:
    """Deterministic predictions (z = encoder mean) and their scores."""
    model.eval()
    with (compute or Compute(x.device)).autocast():
        pred = model.predict(x).cpu().numpy()
    return pred, metrics.scores(y, pred)


def train_run(cfg: DictConfig, run_dir: Path, progress_enabled: bool = True) -> dict[str, Any]:
    """Run the whole pipeline into `run_dir` and return the report (also written as report.json)."""
    t_start = time.perf_counter()
    device, dataset = prepare(cfg)
    run_dir = Path(run_dir)
    # Whose checkpoints these are: a sweep started again in this folder resumes them only for this config.
    checkpoint.atomic_write_json(run_dir / checkpoint.CONFIG, {"config": OmegaConf.to_container(cfg, resolve=True)})
    seed = int(cfg.seed)
    seed_everything(seed)
    model = build_model(cfg, dataset).to(device)
    x = torch.as_tensor(dataset.x, device=device)

    train_resume = _existing(run_dir / checkpoint.LAST, "train")
    pretrain_resume = None if train_resume else _existing(run_dir / checkpoint.PRETRAIN, "pretrain")
    compute = Compute.from_config(cfg.device, device)  # resolved once: the cache key, every phase, the evaluation
    cache_path = None
    if cfg.pretrain.cache:
        key = pretrain.cache_key(dataset.fingerprint(), dataset.n_samples, cfg.model, cfg.pretrain, seed, dataset.likelihood, compute.bf16)
        cache_path = Path(cfg.paths.cache_dir) / "pretrain" / f"{key}.pt"

    resumed = train_resume is not None or pretrain_resume is not None
    stop = train.StopRequest()
    with (stop.installed(), report.progress_bars(progress_enabled) as progress,
          trackers.opened(cfg.get("logger"), run_dir, OmegaConf.to_container(cfg, resolve=True),
                          already_sent=len(report.read_metrics_log(run_dir)) if resumed else 0) as tracked):

        metrics_log = report.MetricsLog(run_dir)

        def record(rows: list[dict[str, Any]]) -> None:
            metrics_log.write(rows)  # the run folder first: a tracker can never cost it
            tracked.log_rows(rows)

        session = Session(run_dir, compute, stop, progress, record, cache_path, pretrain_resume, train_resume)
        fitted = fit_model(cfg, model, x, dataset.y, session)
        resumed_in = "train" if train_resume is not None else "pretrain" if pretrain_resume is not None else None
        result = finish(cfg, run_dir, model, dataset, x, fitted, compute, t_start, resumed_in)
        tracked.log_final(result)
    return result


@dataclass
class Session:
    """Where a fit writes, how it computes and what it continues from: the run folder, the device settings,
    the stop flag, the progress bars, the metrics log's writer, the autoencoder cache entry, and the
    checkpoint of an interrupted phase."""

    run_dir: Path
    compute: Compute
    stop: train.StopRequest = field(default_factory=train.StopRequest)
    progress: Any = None
    record: Callable[[list[dict[str, Any]]], None] = lambda rows: None
    cache_path: Path | None = None
    pretrain_resume: dict[str, Any] | None = None
    train_resume: dict[str, Any] | None = None


@dataclass
class Fitted:
    """What `fit_model` leaves besides the trained model: the prior's start, the logs, the times."""

    snapshot: dict[str, Any]
    pretrain_summary: dict[str, Any]
    history: list[dict[str, Any]]
    train_seconds: float


def fit_model(cfg: DictConfig, model: VaDE, x: torch.Tensor, y: np.ndarray | None, session: Session) -> Fitted:
    """Autoencoder -> prior init -> VaDE into `model`, checkpoints in `session.run_dir`: the steps `vade-run`
    and `VaDEClustering.fit` share. `y` only scores the epochs in the log; `session.record` gets its rows."""
    record, seed, compute = session.record, int(cfg.seed), session.compute
    if session.train_resume is None:
        pre = pretrain.pretrain_autoencoder(
            model, x, cfg.pretrain, seed, session.run_dir / checkpoint.PRETRAIN, session.cache_path,
            session.stop, session.progress, session.pretrain_resume, compute,
            on_epoch_end=lambda history, _: record([{"phase": "pretrain", **r} for r in history]),
        )
        snapshot = prior_init.fit_prior(model, x, y, cfg.pretrain, seed, compute)
        prior_init.save_snapshot(session.run_dir, snapshot)
        pretrain_summary = {"seconds": pre.seconds, "cache_hit": pre.cache_hit, "history": pre.history}
    else:
        snapshot = checkpoint.load(session.run_dir / checkpoint.GMM_INIT_PT, kind="gmm_init")
        pretrain_summary = session.train_resume["pretrain_summary"]

    pretrain_log = [{"phase": "pretrain", **r} for r in pretrain_summary["history"]]
    if session.train_resume is None:  # the autoencoder's rows, from the init on: also when it came from the cache or train.epochs=0
        record(pretrain_log)

    def on_epoch_end(history: list[dict[str, Any]], assignments: torch.Tensor | None) -> None:
        if assignments is not None:
            history[-1].update(metrics.scores(y, assignments.cpu().numpy()))
        record(pretrain_log + [{"phase": "train", **r} for r in history])

    t_train = time.perf_counter()
    model.train()
    history = train.fit(
        model, x, cfg.train, seed, session.run_dir / checkpoint.LAST, session.stop, session.progress,
        session.train_resume, on_epoch_end,
        extra={"pretrain_summary": pretrain_summary}, compute=compute,
        anchor=snapshot["partition"].to(x.device) if "partition" in snapshot else None,
    )
    return Fitted(snapshot, pretrain_summary, history, time.perf_counter() - t_train)


def finish(cfg: DictConfig, run_dir: Path, model: VaDE, dataset: data.Dataset, x: torch.Tensor, fitted: Fitted,
           compute: Compute, t_start: float, resumed_in: str | None) -> dict[str, Any]:
    """Evaluate, write report.json (then the figures and report.md) and return the report."""
    snapshot, pretrain_summary, history = fitted.snapshot, fitted.pretrain_summary, fitted.history
    pred, final = evaluate(model, x, dataset.y, compute)  # the fit's own device settings
    result = report.run_report(
        cfg, run_dir, report.dataset_info(dataset), history, pred,
        device=str(x.device),
        metrics={"gmm_init": snapshot["metrics"], "final": final},
        init={"method": snapshot.get("method", "gmm"), "log_likelihood": snapshot.get("log_likelihood"),
              "draws_agreement": snapshot.get("draws_agreement"),
              "partition_metrics": snapshot.get("partition_metrics")},
        anchored_epochs=sum(bool(r.get("anchored")) for r in history),  # q(c|x) held at the partition
        pretrain_cache_hit=bool(pretrain_summary["cache_hit"]),
        # why each phase ended: its last epoch, or the rule that stopped it (step budget, anchor's release)
        stopped={"pretrain": stop_reason(pretrain_summary["history"]), "train": stop_reason(history)},
        timings={
            "pretrain_s": float(pretrain_summary["seconds"]),
            "gmm_s": float(snapshot["seconds"]),
            "train_s": fitted.train_seconds,
            "total_s": time.perf_counter() - t_start,
            # The phase this session resumed in (None: it ran them all); each time counts the session that ran it.
            "resumed_in": resumed_in,
        },
    )
    report.write_report(run_dir, result)  # the numbers are safe on disk before any figure is drawn
    if cfg.report.figures:
        result["figures"] = draw_figures(cfg, run_dir, model, dataset, x, pred, result)
        report.write_report(run_dir, result)
    return result


def stop_reason(history: list[dict[str, Any]]) -> str:
    """Why a phase ended, from its history: the stop rule's reason, else its epoch count."""
    if history and history[-1].get("stop"):
        return f"{history[-1]['stop']} at epoch {len(history)}"
    return f"all {len(history)} epochs"


def draw_figures(cfg, run_dir, model, dataset, x, pred, result) -> list[str]:
    """figures/*.png and report.md; a failure here is reported, never fatal."""
    try:
        from vade_cli import figures

        return [str(p) for p in figures.write_all(figures.RunView(run_dir, model, dataset, x, pred, result, cfg))]
    except Exception as exc:  # matplotlib, fonts, a full disk: the run's numbers must survive all of it
        report.console.print(f"[yellow]warning:[/] figures skipped: {type(exc).__name__}: {exc}")
        return []


def _existing(path: Path, kind: str) -> dict[str, Any] | None:
    return checkpoint.load(path, kind=kind) if path.is_file() else None
