"""`VaDEClustering`: the `vade-run` pipeline as a scikit-learn clusterer, for notebooks and pipelines.

`fit(X)` composes the packaged Hydra config with overrides built from the constructor's arguments
(what `vade-run` does with the command line), builds a `Dataset` from X instead of loading one, and
runs the same `run.fit_model` as `vade-run` (autoencoder, prior init, VaDE), then `run.evaluate`.
Checkpoints go to a temporary folder, or to `run_dir`. Like `vade-run dataset=file`, it picks the
likelihood and scaling from X's values (`likelihood="auto"`, `scale="auto"`), learns the scaling's
statistics at fit and applies them to every X it is given afterwards. It passes scikit-learn's
`check_estimator` but for the checks named in `EXPECTED_FAILED_CHECKS`. `save(path)` writes a run
folder that `vade-run task=predict|sample checkpoint=<path>` reads, and `VaDEClustering.load(path)`
reads any finished `vade-run` training folder.
"""

from __future__ import annotations

import copy
import random
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sklearn import config_context
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import Tags, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from vade_cli import checkpoint, data, prior_init, report, tasks
from vade_cli.data._common import as_features
from vade_cli.device import Compute, configure, resolve_device, seed_everything
from vade_cli.errors import UserError
from vade_cli.model import VaDE
from vade_cli.run import Session, build_model, evaluate, fit_model
from vade_cli.text import one_line
from vade_cli.validate import check_against_data, check_config, positive_int

HYDRA_CONFIG = ".hydra/config.yaml"
CHUNK = 4096  # rows per pass when scoring, as the model's own inference passes
# What `save` writes; a folder holding anything else belongs to something else and is not overwritten.
SAVED_ENTRIES = {".hydra", checkpoint.CHECKPOINT_DIR, checkpoint.GMM_INIT_PT, checkpoint.GMM_INIT_JSON, checkpoint.REPORT}
LIKELIHOOD_CHOICES = (data.AUTO, *data.LIKELIHOODS)
SCALE_CHOICES = (data.AUTO, *data.SCALINGS)

# scikit-learn's `check_estimator` checks that cannot pass, each with the reason: pass it as
# `check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS)` (or to `parametrize_with_checks`).
N_CLUSTERS_1 = "sets n_clusters=1; VaDE's prior is a mixture and, as in vade-run, needs n_clusters >= 2"
EXPECTED_FAILED_CHECKS = {
    "check_dont_overwrite_parameters": N_CLUSTERS_1,
    "check_fit2d_predict1d": N_CLUSTERS_1,
    "check_methods_subset_invariance": N_CLUSTERS_1,
    "check_fit2d_1feature": N_CLUSTERS_1,
}


class VaDEClustering(ClusterMixin, BaseEstimator):
    """VaDE deep clustering with the `vade-run` pipeline behind a scikit-learn interface.

    Arguments mirror config keys: `n_clusters`, `model.hidden`, `model.latent_dim`,
    `dataset.likelihood`, `dataset.scale`, the `pretrain` group (`dec` or `ae`), `pretrain.epochs`
    (None: the group's own), `pretrain.init` (`umap`, `gmm`, `kmeans`), `train.epochs`, `train.anchor_epochs`,
    `train.lr`, `train.batch_size`, the `device` group (`auto`, `cpu`, `cuda`), `device.threads`,
    and `seed` (`random_state`: an int >= 0; None or a RandomState draws one, recorded in `config_`).
    `batch_size` larger than X's rows is clamped to the rows (as scikit-learn's MLP does; `config_`,
    and so a saved folder and `load`, record the size used).
    `overrides` are further Hydra overrides, exactly as on the command line ("train.prior_lr=0.01").
    `run_dir`: where fit writes its checkpoints and run files (default: a temporary folder, removed
    after fit); `verbose`: the CLI's progress bars. Like `vade-run`, fit and predict set torch's CPU
    thread count (`device.threads`, default all cores).
    `likelihood` ("auto", "bernoulli", "gaussian") and `scale` ("auto", "none", "minmax", "max",
    "standard") are decided as `vade-run dataset=file` decides them (`data.choose_likelihood`): with
    both "auto", features in [0,1] get the Bernoulli decoder as they are, non-negative integers up to
    255 (pixels) the Bernoulli decoder on x / max(x), anything else the Gaussian decoder on standardised
    features. The scaling's statistics are learned at fit and applied unchanged by predict,
    predict_proba and score; explicit values take precedence ("bernoulli" with "none": X used as given).

    Bad input raises scikit-learn's errors where scikit-learn checks it (`validate_data`: not 2-D,
    empty, sparse, complex, one row at fit, a feature count other than fit's), otherwise ValueError with
    the CLI's one-line message, before any training: NaN or inf
    ("X: R rows contain NaN or inf (first: row I); clean or drop them first"), fewer samples than
    clusters ("n_clusters=K exceeds the N samples; use at most N"), Bernoulli data outside [0,1]
    ("X: a Bernoulli likelihood needs features in [0,1] (got [lo, hi]); ..."), and every config
    check of `vade-run` ("n_clusters must be an integer >= 2, got 1", ...).

    Fitted attributes: `labels_` (argmax_c q(c|x) at the encoder mean), `init_labels_` (the
    initialised prior's predictions, before VaDE training), `weights_` [K], `means_` [K, J],
    `covariances_` [K, J] (diagonal variances), `n_features_in_`, `likelihood_` and `scale_` (the
    decoder and scaling used), `scale_offset_` and `scale_divisor_` [D] (the model sees
    (X - offset) / divisor), `history_` (one record per VaDE epoch), `prior_init_` (the gmm_init
    snapshot), `config_` (the composed config), `model_` (the VaDE module, on the CPU). An estimator
    from `load` has all but `labels_` and `init_labels_`, which need the training data; from a
    `vade-run` folder, its `scale_` is "none": X is taken as prepared as the run's data.
    """

    def __init__(
        self,
        n_clusters: int = 10,
        *,
        hidden: Sequence[int] = (500, 500, 2000),
        latent_dim: int = 10,
        likelihood: str = "auto",
        scale: str = "auto",
        pretrain: str = "dec",
        pretrain_epochs: int | None = None,
        init: str = "umap",
        train_epochs: int = 100,
        anchor_epochs: int = 10,
        lr: float = 0.002,
        batch_size: int = 100,
        device: str = "auto",
        device_threads: int | None = None,
        random_state: Any = 0,
        overrides: Sequence[str] = (),
        run_dir: str | Path | None = None,
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.scale = scale
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.init = init
        self.train_epochs = train_epochs
        self.anchor_epochs = anchor_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.device_threads = device_threads
        self.random_state = random_state
        self.overrides = overrides
        self.run_dir = run_dir
        self.verbose = verbose

    def __sklearn_tags__(self) -> Tags:
        """A clusterer of dense, finite, 2-D numeric X of any sign; deterministic for a given random_state."""
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.input_tags.positive_only = False
        tags.non_deterministic = False
        tags.target_tags.required = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once there is a model (a failed fit may have set `n_features_in_` and nothing else)."""
        return hasattr(self, "model_")

    # ------------------------------------------------------------------------------------- config

    def config_overrides(self) -> list[str]:
        """The `vade-run` command line this estimator's fit amounts to (without the data)."""
        seed = self.random_state
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            seed = int(check_random_state(seed).randint(2**31 - 1))
        chosen = {
            "dataset": "file",
            "dataset.likelihood": self.likelihood,
            "dataset.scale": self.scale,
            "n_clusters": self.n_clusters,
            "model.hidden": self.hidden,
            "model.latent_dim": self.latent_dim,
            "pretrain": self.pretrain,
            "pretrain.epochs": self.pretrain_epochs,
            "pretrain.init": self.init,
            "pretrain.cache": False,  # no outputs/cache/ beside the caller's notebook
            "train.epochs": self.train_epochs,
            "train.anchor_epochs": self.anchor_epochs,
            "train.lr": self.lr,
            "train.batch_size": self.batch_size,
            "device": self.device,
            "device.threads": self.device_threads,
            "seed": seed,
            "report.figures": False,
        }
        return [f"{k}={_override_value(v)}" for k, v in chosen.items() if v is not None] + list(self.overrides)

    def _compose(self) -> DictConfig:
        for name, choices in (("likelihood", LIKELIHOOD_CHOICES), ("scale", SCALE_CHOICES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        with _user_errors():
            cfg = compose_config(self.config_overrides())
            check_config(cfg)
        return cfg

    # ------------------------------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any = None) -> VaDEClustering:
        """Pretrain, initialise the prior, train VaDE on X. `y` is ignored: labels are never used.

        X is checked first (scikit-learn's checks, then NaN/inf), then the arguments, then the two
        together; a fit that fails leaves an earlier fit's attributes as they were.
        """
        with _kept_on_error(self, ("n_features_in_", "feature_names_in_")):
            x = _features(validate_data(self, X, **CHECK_ARRAY, ensure_min_samples=2))
            return self._fit(x)

    def _fit(self, x: np.ndarray) -> VaDEClustering:
        cfg = self._compose()
        likelihood, scale = str(self.likelihood), str(self.scale)
        if data.AUTO in (likelihood, scale):  # as data.load decides for `vade-run dataset=file`
            chosen_likelihood, chosen_scale = data.choose_likelihood(x)
            likelihood = chosen_likelihood if likelihood == data.AUTO else likelihood
            scale = chosen_scale if scale == data.AUTO else scale
        offset, divisor = _scaling(x, scale)
        dataset = _dataset(_scaled(x, offset, divisor), likelihood, scale)
        cfg.train.batch_size = min(int(cfg.train.batch_size), dataset.n_samples)  # as sklearn's MLP clamps
        with _user_errors():
            check_against_data(cfg, dataset.n_samples)
            device = resolve_device(cfg.device)
        configure(cfg.device, device)
        folder = nullcontext(Path(self.run_dir).expanduser()) if self.run_dir is not None else tempfile.TemporaryDirectory(prefix="vade-")
        # The prior's init calls scikit-learn (GaussianMixture, KMeans) on NumPy arrays of its own making: a
        # caller's array_api_dispatch=True would only make it refuse init_params="kmeans".
        with folder as run_dir, _global_rng_kept(device), config_context(array_api_dispatch=False):
            run_dir = Path(run_dir)
            checkpoint.atomic_write_text(run_dir / HYDRA_CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
            model, snapshot, init_labels, history = _train(cfg, dataset, device, run_dir, self.verbose)
            labels, _ = evaluate(model, torch.as_tensor(dataset.x, device=device), None, Compute.from_config(cfg.device, device))
            self._set_fitted(cfg, model.cpu(), snapshot, history, _data_info(dataset, offset, divisor))
            self.labels_, self.init_labels_ = labels, init_labels
            if self.run_dir is not None:  # last.pt there is train.fit's own (with the optimiser): keep it
                self._write_run_files(run_dir)
        return self

    def _set_fitted(self, cfg: DictConfig, model: VaDE, snapshot: dict[str, Any] | None,
                    history: list[dict[str, Any]], data_info: dict[str, Any]) -> None:
        prior = model.prior
        with torch.no_grad():
            self.weights_ = prior.log_pi().exp().numpy()
            self.means_ = prior.mu.detach().numpy().copy()
            self.covariances_ = prior.clamped_log_var().exp().numpy()
        self.n_features_in_ = int(model.decoder.out.out_features)
        self.config_, self.model_, self.prior_init_, self.history_ = cfg, model.eval(), snapshot, history
        self.likelihood_, self.scale_ = data_info["likelihood"], data_info.get("scale", "none")
        n = self.n_features_in_
        offset, divisor = data_info.get("scale_offset"), data_info.get("scale_divisor")
        self.scale_offset_ = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64)
        self.scale_divisor_ = np.ones(n) if divisor is None else np.asarray(divisor, dtype=np.float64)
        self._data_info = data_info

    # ------------------------------------------------------------------------------------- using

    def predict(self, X: Any) -> np.ndarray:
        """argmax_c q(c|x) at z = the encoder mean: the run's own evaluation (deterministic)."""
        model, x = self._prepared(X)
        return evaluate(model, x, None, self._compute(x))[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """q(c|x) = p(c|z) at z = the encoder mean, [N, K]; rows sum to 1."""
        model, x = self._prepared(X)
        with self._compute(x).autocast():
            return model.predict_proba(x).cpu().numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """Mean ELBO per sample (higher is better): minus the negative ELBO that training minimises.

        One reparameterised sample per row, z = mu + sigma * eps, with eps drawn on the CPU from the
        config's seed (`config_.seed`), so the score is the same on every call and every device.
        """
        model, x = self._prepared(X)
        generator = torch.Generator().manual_seed(int(self.config_.seed))
        eps = torch.randn(len(x), model.prior.mu.shape[1], generator=generator).to(x.device)
        total = 0.0
        with torch.inference_mode(), self._compute(x).autocast():
            for i in range(0, len(x), CHUNK):
                terms, _ = model.negative_elbo(x[i : i + CHUNK], eps[i : i + CHUNK])
                total += float(terms["loss"]) * len(x[i : i + CHUNK])
        return -total / len(x)

    def _compute(self, x: torch.Tensor) -> Compute:
        return Compute.from_config(self.config_.device, x.device)

    def sample(self, n_per_cluster: int = 16, random_state: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n_per_cluster draws from every cluster: (X [K*n, D], c [K*n]), as `vade-run task=sample`.

        Bernoulli models give pixel probabilities, Gaussian ones the decoder means, both in the units the
        model sees (X * scale_divisor_ + scale_offset_ maps them back to X's). The draws come
        from the CPU with seed `random_state` (default: the config's seed), so
        `sample(n, random_state=S)` equals `vade-run task=sample checkpoint=<saved> n_per_cluster=n seed=S`.
        """
        check_is_fitted(self)
        n = int(n_per_cluster) if isinstance(n_per_cluster, np.integer) else n_per_cluster
        with _user_errors():
            positive_int("n_per_cluster", n)
        seed = int(self.config_.seed if random_state is None else random_state)
        samples, clusters = self.model_.sample(n, torch.Generator().manual_seed(seed))
        return samples.numpy(), clusters.numpy()

    def _prepared(self, X: Any) -> tuple[VaDE, torch.Tensor]:
        """The model on the configured device and X checked and placed beside it."""
        check_is_fitted(self)
        x = _features(validate_data(self, X, **CHECK_ARRAY, reset=False))
        x = _scaled(x, self.scale_offset_, self.scale_divisor_)
        if self.likelihood_ == "bernoulli" and (x.min() < 0 or x.max() > 1):
            how = "as given" if self.scale_ == "none" else f"after fit's scaling (scale={self.scale_})"
            raise ValueError(
                f"X: the model has a Bernoulli likelihood, which needs features in [0,1], but X {how} spans "
                f"[{x.min():.3g}, {x.max():.3g}]; give data prepared as the data fit saw"
            )
        with _user_errors():
            device = resolve_device(self.config_.device)
        configure(self.config_.device, device)
        model = self.model_ if device.type == "cpu" else copy.deepcopy(self.model_).to(device)
        return model, torch.as_tensor(x, device=device)

    # ------------------------------------------------------------------------------------- folders

    def save(self, path: str | Path) -> Path:
        """Write a run folder (.hydra/config.yaml, checkpoints/last.pt, gmm_init.pt, report.json).

        `vade-run task=predict checkpoint=<path> dataset=file dataset.path=<file> dataset.scale=none
        dataset.likelihood=<likelihood>` and `vade-run task=sample checkpoint=<path>` accept it, and
        `VaDEClustering.load(path)` reads it back. last.pt holds the weights and the history, not the
        optimiser: the folder is for using the model, not for `vade-run resume=`. The folder must be
        new, empty, or one that `save` wrote before.
        """
        check_is_fitted(self)
        folder = Path(path).expanduser()
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in SAVED_ENTRIES) if folder.is_dir() else []
        if foreign:
            raise ValueError(f"{folder} holds other files ({', '.join(foreign[:3])}); save into a new or empty folder")
        checkpoint.save(folder / checkpoint.LAST, {
            "kind": "train", "model": self.model_.state_dict(), "epoch": len(self.history_), "step": 0,
            "history": self.history_,
        })
        self._write_run_files(folder)
        return folder

    def _write_run_files(self, folder: Path) -> None:
        """Everything of a run folder but the checkpoint: the config, the prior's init, a report."""
        checkpoint.atomic_write_text(folder / HYDRA_CONFIG, OmegaConf.to_yaml(self.config_, resolve=True))
        if self.prior_init_ is not None:
            prior_init.save_snapshot(folder, self.prior_init_)
        report.write_report(folder, report.run_report(
            self.config_, folder, self._data_info, self.history_, getattr(self, "labels_", None),
            saved_by=f"{type(self).__module__}.{type(self).__name__}"))

    @classmethod
    def load(cls, path: str | Path) -> VaDEClustering:
        """A fitted estimator from a finished `vade-run` training folder, or from `save`.

        Its arguments are read from the run's config, and `overrides` holds the run's other settings
        that differ from the defaults (an experiment preset's lr decay, say; not its data, folders or
        cache), so `clone(loaded).fit(X)` repeats the run on X. `labels_` and `init_labels_` are not
        set: the folder holds no data.
        """
        with _user_errors():
            folder = tasks.source_run(OmegaConf.create({"task": "predict", "checkpoint": str(path)}))
            cfg = tasks.saved_config(folder)
            last = checkpoint.load(folder / checkpoint.LAST, kind="train")
            shape_of = tasks.data_shape(folder, cfg, last["model"])
            model = tasks.load_model(cfg, shape_of, last["model"], folder)
            gmm_init = folder / checkpoint.GMM_INIT_PT
            snapshot = checkpoint.load(gmm_init, kind="gmm_init") if gmm_init.is_file() else None
        if snapshot is not None:
            snapshot = {k: v for k, v in snapshot.items() if k not in ("format", "kind")}

        def get(key: str, default: Any = None) -> Any:
            return OmegaConf.select(cfg, key, default=default)

        info = tasks._report(folder).get("dataset") or _data_info(shape_of)
        # `save` records the scaling it learned; a `vade-run` folder does not: X is then used as given.
        scaled = "scale_offset" in info
        estimator = cls(
            n_clusters=int(cfg.n_clusters),
            hidden=tuple(int(h) for h in cfg.model.hidden),
            latent_dim=int(cfg.model.latent_dim),
            likelihood=str(get("dataset.likelihood")) if scaled else shape_of.likelihood,
            scale=str(get("dataset.scale")) if scaled else "none",
            pretrain=get("pretrain.name", "dec"),
            pretrain_epochs=get("pretrain.epochs"),
            init=get("pretrain.init", "gmm"),
            train_epochs=get("train.epochs", 100),
            anchor_epochs=get("train.anchor_epochs", 0),
            lr=get("train.lr", 0.002),
            batch_size=get("train.batch_size", 100),
            device=get("device.type", "auto"),
            device_threads=get("device.threads"),
            random_state=int(get("seed", 0)),
        )
        estimator.overrides = _differences(cfg, estimator)
        if not scaled:
            info = {**info, "scale": "none"}
        estimator._set_fitted(cfg, model, snapshot, list(last.get("history") or []), info)
        return estimator


# ----------------------------------------------------------------------------------------- the pipeline


def _train(cfg: DictConfig, dataset: data.Dataset, device: torch.device, run_dir: Path, verbose: bool,
           ) -> tuple[VaDE, dict[str, Any], np.ndarray, list[dict[str, Any]]]:
    """`run.fit_model` on data already in memory, without the cache, logs and signal handlers of `vade-run`.

    Ctrl-C stays a KeyboardInterrupt, as anywhere in Python; the checkpoints stay in `run_dir`.
    """
    seed_everything(int(cfg.seed))
    model = build_model(cfg, dataset).to(device)
    x = torch.as_tensor(dataset.x, device=device)
    with report.progress_bars(verbose) as progress:
        session = Session(run_dir, Compute.from_config(cfg.device, device), progress=progress)  # stop: never installed
        fitted = fit_model(cfg, model, x, None, session)
    return model, fitted.snapshot, fitted.snapshot["prediction"].numpy(), fitted.history


def compose_config(overrides: list[str]) -> DictConfig:
    """The packaged config with `overrides`, as `vade-run` composes it; Hydra's errors become one-line ValueErrors.

    compose() needs Hydra's global state to itself; a surrounding Hydra app gets its own back after.
    """
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_module(config_module="vade_cli.conf", version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ValueError(one_line(exc)) from None
    finally:
        if outer is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(outer)


# Settings an estimator does not take from a run's config: its data (X), output folders, the task, the
# autoencoder cache (fit never uses one), and group names (its arguments set what a group would).
NOT_CARRIED = ("dataset", "paths", "report", "task", "checkpoint", "resume", "n_per_cluster", "pretrain.cache")


def _differences(saved: DictConfig, estimator: VaDEClustering) -> tuple[str, ...]:
    """The overrides that make the estimator's composed config the saved one, beyond its arguments.

    So a loaded run's `get_params()` names its whole recipe (an experiment preset's lr decay, say),
    and `clone(loaded).fit(X)` repeats it. Keys this version's config lacks are left out.
    """
    try:
        composed = _flat(OmegaConf.to_container(estimator._compose(), resolve=True))
    except ValueError:  # the saved arguments no longer compose (an old run's group name): keep them bare
        return ()
    wanted = _flat(OmegaConf.to_container(saved, resolve=True))
    carried = {key: value for key, value in wanted.items() if not key.endswith(".name")
               and not any(key == top or key.startswith(f"{top}.") for top in NOT_CARRIED)}
    return tuple(f"{key}={_override_value(value)}" for key, value in carried.items()
                 if key in composed and composed[key] != value)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _override_value(value: Any) -> str:
    """A Python value as Hydra's override grammar reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return str(value)


# How fit and predict take X: scikit-learn's checks and messages for the array itself (dense, numeric, 2-D,
# not empty); NaN and inf are left to `as_features`, whose message names the rows.
CHECK_ARRAY = dict(accept_sparse=False, dtype="numeric", ensure_all_finite=False)


def _features(x: np.ndarray) -> np.ndarray:
    """X as the data loaders read a file: float32 [N, D], with no NaN or inf."""
    with _user_errors():
        return as_features(x, "X")


def _scaling(x: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, divisor) [D] of `scale` on x, the statistics `data.load` computes for `dataset.scale`."""
    x = x.astype(np.float64)
    n = x.shape[1]
    if scale == "max":
        return np.zeros(n), np.full(n, max(float(np.abs(x).max()), 1e-12))
    if scale == "minmax":
        lo, hi = x.min(axis=0), x.max(axis=0)
        return lo, np.where(hi > lo, hi - lo, 1.0)
    if scale == "standard":
        sd = x.std(axis=0)
        return x.mean(axis=0), np.where(sd > 0, sd, 1.0)
    return np.zeros(n), np.ones(n)  # none


def _scaled(x: np.ndarray, offset: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    """(x - offset) / divisor in float64, as float32: the numbers `data.load` gives the model."""
    return ((x.astype(np.float64) - offset) / divisor).astype(np.float32)


def _dataset(x: np.ndarray, likelihood: str, scale: str) -> data.Dataset:
    """Scaled X checked as the data loaders check a file (a Bernoulli likelihood needs [0,1])."""
    with _user_errors():
        dataset = data.Dataset("X", x, None, likelihood, scale=scale)
        data.validate(dataset)
    return dataset


def _data_info(dataset: data.Dataset, offset: np.ndarray | None = None, divisor: np.ndarray | None = None,
               ) -> dict[str, Any]:
    """report.json's `dataset` entry, which task=sample reads for the likelihood and image shape; from
    fit, also the scaling it learned (what `load` gives back to predict)."""
    info = report.dataset_info(dataset)
    if offset is not None and divisor is not None:
        info.update(scale_offset=offset.tolist(), scale_divisor=divisor.tolist())
    return info


@contextmanager
def _kept_on_error(estimator: VaDEClustering, names: tuple[str, ...]) -> Iterator[None]:
    """Attributes `names` of the estimator as they were before, should the block raise before a new model."""
    before = {name: estimator.__dict__[name] for name in names if name in estimator.__dict__}
    model = estimator.__dict__.get("model_")
    try:
        yield
    except BaseException:
        if estimator.__dict__.get("model_") is not model:  # fitted, then failed writing files: keep it
            raise
        for name in names:
            estimator.__dict__.pop(name, None)
        estimator.__dict__.update(before)
        raise


@contextmanager
def _user_errors() -> Iterator[None]:
    """The CLI's one-line messages, as the ValueError a scikit-learn caller expects."""
    try:
        yield
    except UserError as exc:
        raise ValueError(str(exc)) from None


@contextmanager
def _global_rng_kept(device: torch.device) -> Iterator[None]:
    """fit seeds Python's, NumPy's and torch's global generators as a run does; put them back after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = [torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
