"""task=predict and task=sample: put a finished training run's weights to use without training again.

Both read the training run's folder (named by `checkpoint=`): its saved config for the model's
shape, `checkpoints/last.pt` for the weights, report.json for what the data looked like. They
write only into the current run folder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vade_cli import checkpoint, data, metrics, report
from vade_cli.device import Compute, configure, resolve_device
from vade_cli.errors import CheckpointError, ConfigError, DataError
from vade_cli.model import VaDE
from vade_cli.run import build_model
from vade_cli.validate import positive_int

ASSIGNMENTS = "assignments.csv"
SAMPLES_NPZ = "samples.npz"
SAMPLES_PNG = "samples.png"


# ----------------------------------------------------------------------------------------- the trained run


def source_run(cfg: DictConfig) -> Path:
    """The training run folder named by `checkpoint=` (its checkpoint file is accepted too)."""
    if not cfg.get("checkpoint"):
        raise ConfigError(f"task={cfg.task} needs checkpoint=<folder of a finished training run>")
    folder = Path(str(cfg.checkpoint)).expanduser()
    if folder.is_file() and folder.parent.name == checkpoint.CHECKPOINT_DIR:
        folder = folder.parent.parent
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint={folder} does not exist; pass the folder of a finished training run"
        )
    if not (folder / checkpoint.LAST).is_file():
        raise CheckpointError(
            f"{folder} is not a trained vade-cli run folder (no {checkpoint.LAST}); pass the folder of a "
            "finished training run"
        )
    return folder


def separate_output(folder: Path, run_dir: Path) -> None:
    """A task writing into the training run's folder would overwrite its report.json."""
    if Path(run_dir).resolve() == folder.resolve():
        raise ConfigError(
            f"task output would overwrite the training run {folder}; write it to a new folder "
            "(leave hydra.run.dir at its default or name another folder)"
        )


def saved_config(folder: Path) -> DictConfig:
    """The training run's own config: report.json's copy first, then Hydra's .hydra/config.yaml.

    report.json is written by the run itself; .hydra/ is rewritten by any command pointed at the folder.
    """
    config = _report(folder).get("config")
    if config:
        return OmegaConf.create(config)
    hydra_copy = folder / ".hydra" / "config.yaml"
    if hydra_copy.is_file():  # a run that has not finished yet: only Hydra's copy exists
        return OmegaConf.load(hydra_copy)
    raise CheckpointError(
        f"{folder} has no saved config (report.json or .hydra/config.yaml); cannot rebuild its model"
    )


def _report(folder: Path) -> dict[str, Any]:
    path = folder / checkpoint.REPORT
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not valid JSON; the run folder is damaged") from None


def trained_weights(folder: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(folder / checkpoint.LAST, kind="train")["model"]


def trained_features(weights: dict[str, torch.Tensor]) -> int:
    """The decoder's output width is the number of features the model was trained on."""
    return int(weights["decoder.out.weight"].shape[0])


def load_model(
    saved: DictConfig, shape_of: data.Dataset, weights: dict[str, torch.Tensor], folder: Path
) -> VaDE:
    model = build_model(saved, shape_of)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # the saved config and the weights disagree: a hand-edited folder
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{folder}: the weights do not fit the run's saved config ({first})") from None
    return model.eval()


def write_task_report(run_dir: Path, summary: dict[str, Any], cfg: DictConfig) -> None:
    """A report.json for the task's own folder, so it says what it did and from which run."""
    report.write_report(
        run_dir, {"status": "completed", **summary, "config": OmegaConf.to_container(cfg, resolve=True)}
    )


# ----------------------------------------------------------------------------------------- predict


def dataset_config(cfg: DictConfig, saved: DictConfig) -> DictConfig:
    """The data named on the command line; when none is named, the data the run was trained on."""
    if not HydraConfig.initialized():
        return cfg.dataset  # called from Python: the caller's config is what they mean
    groups = {
        o.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("/", 1)[0]
        for o in HydraConfig.get().overrides.task
    }
    return cfg.dataset if groups & {"dataset", "experiment"} else saved.dataset


def _warn_if_prepared_differently(folder: Path, dataset: data.Dataset) -> None:
    """Same width but another likelihood usually means other scaling: the clusters would be meaningless."""
    trained = (_report(folder).get("dataset") or {}).get("likelihood")
    if trained and trained != dataset.likelihood:
        report.console.print(
            f"[yellow]warning:[/] the model was trained on {trained} data, this data is "
            f"{dataset.likelihood}; prepare it the same way (dataset.likelihood, dataset.scale)",
            highlight=False,
            soft_wrap=True,
        )


def assignments_csv(proba: np.ndarray, pred: np.ndarray) -> str:
    """index, cluster, p_0..p_{K-1}: one row per sample, in the order of the data file."""
    k = proba.shape[1]
    table = np.column_stack([np.arange(len(pred)), pred, proba])
    buf = io.StringIO()
    header = ",".join(["index", "cluster", *(f"p_{c}" for c in range(k))])
    np.savetxt(buf, table, fmt=["%d", "%d", *["%.6g"] * k], delimiter=",", header=header, comments="")
    return buf.getvalue()


def predict(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Cluster (new) data with a trained run: assignments.csv, and scores when the data has labels."""
    run_dir = Path(run_dir)
    folder = source_run(cfg)
    separate_output(folder, run_dir)
    saved = saved_config(folder)
    weights = trained_weights(folder)
    device = resolve_device(cfg.device)
    configure(cfg.device, device)
    dataset = data.load(dataset_config(cfg, saved))
    expected = trained_features(weights)
    if dataset.n_features != expected:
        raise DataError(
            f"{dataset.name} has {dataset.n_features} features but the model in {folder} was trained on "
            f"{expected}; predict needs data with the same features, prepared the same way"
        )
    _warn_if_prepared_differently(folder, dataset)
    model = load_model(saved, dataset, weights, folder).to(device)
    x = torch.as_tensor(dataset.x, device=device)
    with Compute.from_config(cfg.device, device).autocast():  # the path run.evaluate takes: same weights, same precision, same numbers
        pred = model.predict(x).cpu().numpy()
        proba = model.predict_proba(x).cpu().numpy()
    out = run_dir / ASSIGNMENTS
    checkpoint.atomic_write_text(out, assignments_csv(proba, pred))
    scores = metrics.scores(dataset.y, pred)
    summary = {
        "task": "predict",
        "run_dir": str(run_dir),
        "checkpoint": str(folder),
        "dataset": {
            "name": dataset.name,
            "n_samples": dataset.n_samples,
            "has_labels": dataset.y is not None,
        },
        "metrics": scores,
        "assignments": str(out),
        "cluster_sizes": np.bincount(pred, minlength=proba.shape[1]).tolist(),
    }
    write_task_report(run_dir, summary, cfg)
    _print_predict(summary)
    return summary


def _print_predict(summary: dict[str, Any]) -> None:
    report.console.print(
        f"assigned {summary['dataset']['n_samples']} samples of {summary['dataset']['name']} with the model from "
        f"{summary['checkpoint']}",
        highlight=False,
        soft_wrap=True,
    )
    s = summary["metrics"]
    if s:
        report.console.print(
            f"ACC {s['acc']:.4f}  NMI {s['nmi']:.4f}  ARI {s['ari']:.4f}", highlight=False, soft_wrap=True
        )
    report.console.print(f"assignments: {summary['assignments']}", highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------- sample


def data_shape(folder: Path, saved: DictConfig, weights: dict[str, torch.Tensor]) -> data.Dataset:
    """A row-less Dataset with the training data's width, likelihood and image shape, to build the model."""
    info = _report(folder).get("dataset") or {}
    likelihood = info.get("likelihood") or saved.dataset.get("likelihood") or "gaussian"
    shape = info.get("image_shape")
    n_features = trained_features(weights)
    name = str(info.get("name") or saved.dataset.get("name") or "data")
    empty = np.empty((0, n_features), dtype=np.float32)
    return data.Dataset(name, empty, None, likelihood, tuple(shape) if shape else None)


def sample(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """n_per_cluster draws from every cluster of a trained run: samples.npz (+ samples.png for images)."""
    n = positive_int("n_per_cluster", cfg.n_per_cluster)
    run_dir = Path(run_dir)
    folder = source_run(cfg)
    separate_output(folder, run_dir)
    saved = saved_config(folder)
    weights = trained_weights(folder)
    shape_of = data_shape(folder, saved, weights)
    model = load_model(saved, shape_of, weights, folder)  # CPU: the same draws on every machine
    generator = torch.Generator().manual_seed(int(cfg.seed))
    samples, clusters = model.sample(n, generator)
    samples, clusters = samples.numpy(), clusters.numpy()
    written = [_write_npz(run_dir / SAMPLES_NPZ, samples, clusters)]
    if shape_of.image_shape is not None:
        from vade_cli import figures

        pi = model.prior.log_pi().exp().detach().numpy()
        written.append(
            figures.save_sample_grid(
                run_dir / SAMPLES_PNG, samples, clusters, shape_of.image_shape, pi, shape_of.likelihood
            )
        )
    summary = {
        "task": "sample",
        "run_dir": str(run_dir),
        "checkpoint": str(folder),
        "n_per_cluster": n,
        "n_clusters": int(model.prior.n_clusters),
        "seed": int(cfg.seed),
        "outputs": [str(p) for p in written],
    }
    write_task_report(run_dir, summary, cfg)
    report.console.print(
        f"drew {n} samples from each of {summary['n_clusters']} clusters of {folder}",
        highlight=False,
        soft_wrap=True,
    )
    for path in written:
        report.console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return summary


def _write_npz(path: Path, samples: np.ndarray, clusters: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, x=samples.astype(np.float32), cluster=clusters.astype(np.int64))
    checkpoint.atomic_write_bytes(path, buf.getvalue())
    return path


TASKS: dict[str, Callable[[DictConfig, Path], dict[str, Any]]] = {"predict": predict, "sample": sample}
