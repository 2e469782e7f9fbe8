"""`vade-run`: the Hydra entry point. Known errors become one line on stderr and exit code 2.

Exit codes: 0 done; 1 training diverged or a sweep had failed jobs; 2 bad input (config, data,
checkpoint, folder); 130/143 interrupted by SIGINT/SIGTERM after saving a resumable checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vade_cli import checkpoint, report, slurm
from vade_cli.errors import CheckpointError, ConfigError, Interrupted, TrainingDiverged, UserError
from vade_cli.text import one_line

# Overrides a resumed run may take: where and how it runs, not what it computes.
RESUME_ALLOWED = ("resume", "device", "report", "logger", "hydra")


def fail(message: str, code: int = 2) -> NoReturn:
    report.console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


class ThirdPartyAtWarning(logging.Filter):
    """The console handler's filter (conf/hydra/job_logging/vade.yaml): other libraries' INFO stays in cli.log."""

    OWN = ("vade_cli", "hydra", "__main__")

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "root" or record.name.split(".", 1)[0] in self.OWN
        return own or record.levelno >= logging.WARNING


def resume_config(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, Path, str]:
    """The interrupted run's own config, with only harmless overrides applied, and the device settings
    those overrides changed (`device_changes`)."""
    run_dir = Path(str(cfg.resume)).expanduser()
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise CheckpointError(f"{run_dir} is not a vade-cli run folder (no .hydra/config.yaml); pass the folder of the run")
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.split(".", 1)[0].split("/", 1)[0] not in RESUME_ALLOWED:
            raise ConfigError(
                f"resume continues a run exactly as configured; '{override}' would change it (only device, report "
                "or logger settings may change). Start a new run instead"
            )
    resumed = OmegaConf.load(saved)
    missing = [k for k in ("task", "dataset", "model", "pretrain", "train", "seed") if k not in resumed]
    if missing:
        raise CheckpointError(f"{saved} is not a vade-cli run config (missing {', '.join(missing)})")
    resumed = migrate(resumed, cfg)
    saved_device = resumed.get("device") or {}
    for group in ("device", "report"):
        resumed[group] = kept_unless_named(resumed.get(group), cfg.get(group, {}), group, overrides)
    resumed.logger = cfg.get("logger", {})
    changed = device_changes(saved_device, resumed.device)
    resumed.resume = str(run_dir)
    if not (run_dir / checkpoint.LAST).is_file() and not (run_dir / checkpoint.PRETRAIN).is_file():
        # Stopped before its first checkpoint (e.g. right after a pretraining-cache hit): every number of
        # the run follows from its config and seed, so starting it over in place gives the same result.
        report.console.print(f"note: {run_dir} has no checkpoint yet; the run starts over from its saved config")
    return resumed, run_dir, changed


# Groups whose every choice has the same keys, so today's defaults can stand in for keys added since.
BACKFILLED = ("model", "pretrain", "train")
# Settings vade-cli no longer has, and what a run does instead; an older run folder's config may hold them.
RETIRED = {
    "objective": "a run returns its final ELBO to a tuning sweeper",
    "dataset.debian_dir": "Debian's Fashion-MNIST folder is looked up by itself",
    "device.flush_denormal": "the CPU always flushes subnormal floats to zero",
    "pretrain.output_refit_scope": "the refit fits the output layer alone",
    "train.anchor_release_epochs": "the anchor lets go at once after train.anchor_epochs",
    "train.checkpoint_every": "checkpoints follow the clock, train.checkpoint_every_s",
    "pretrain.stop_plateau": "the autoencoder's length is its step budget, pretrain.max_steps",
}


# Settings added since a release whose behaviour before them is not today's default: the value a run
# folder without them gets on resume, so it continues as it began.
ADDED_WITH_OLD_BEHAVIOUR = {
    "train.anchor_plateau": 0.0,  # the anchor let go right after train.anchor_epochs
    "train.free_epochs": None,  # free epochs ran on to train.epochs
    "pretrain.max_steps": None,  # the autoencoder ran all pretrain.epochs
}


def migrate(saved: DictConfig, now: DictConfig) -> DictConfig:
    """An older run folder's saved config in today's shape, so it resumes: the one place that knows
    how configs changed between releases.

    Retired settings (`RETIRED`) are dropped: nothing reads them, and today's config could not take
    them. Settings added since take today's default, which keeps the behaviour they were added to
    (e.g. `pretrain.init_draws=1`), or the value in `ADDED_WITH_OLD_BEHAVIOUR` where the default changed
    behaviour, so the run continues as it began. Each change is named in one line.
    """
    dropped = []
    for key in RETIRED:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(saved, parent) if parent else saved
        if isinstance(node, DictConfig) and leaf in node:
            dropped.append(f"{key}={node[leaf]}")
            del node[leaf]
    added = []
    for group in BACKFILLED:
        for key, value in (now.get(group) or {}).items():
            if group in saved and key not in saved[group]:
                saved[group][key] = ADDED_WITH_OLD_BEHAVIOUR.get(f"{group}.{key}", value)
                added.append(f"{group}.{key}")
    if dropped:
        report.console.print(f"note: settings retired since this run started are dropped: {', '.join(dropped)} "
                             f"({'; '.join(RETIRED[d.split('=', 1)[0]] for d in dropped)})",
                             highlight=False, soft_wrap=True)
    if added:
        report.console.print(f"note: settings added since this run started take their defaults: {', '.join(added)}",
                             highlight=False, soft_wrap=True)
    return saved


def kept_unless_named(saved: DictConfig | None, now: DictConfig, group: str, overrides: list[str]) -> DictConfig:
    """A resumed run's settings of `group`: the saved ones (today's defaults for keys added since), with
    only the keys this command names (`device.threads=1`) taken from it; naming the group itself
    (`device=cpu`) takes the whole new group. A resume that names nothing runs as the run began."""
    named = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    if saved is None or group in named:
        return now
    kept = OmegaConf.merge(now, saved)
    for key in named:
        if key.startswith(group + "."):
            OmegaConf.update(kept, key[len(group) + 1 :], OmegaConf.select(now, key[len(group) + 1 :]), merge=False)
    return kept


def device_changes(saved: DictConfig | dict, now: DictConfig | dict) -> str:
    """'threads None -> 1, ...' for each device setting a resume changes, '' for none.

    Thread counts, bf16 and compilation change how sums are split and rounded, so a run resumed
    with other ones is still correct but no longer bit-equal to an uninterrupted one.
    """
    keys = sorted((set(saved) | set(now)) - {"type"})  # another device type: `restore_generator` says so
    return ", ".join(f"{k} {saved.get(k)} -> {now.get(k)}" for k in keys if saved.get(k) != now.get(k))


def finished_earlier(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The report of a sweep job that already completed in `run_dir` with this very config, else None.

    A sweep started again into its own folder (`hydra.sweep.dir=...`, `make reproduce-table`) keeps
    the jobs it finished and runs only the rest.
    """
    saved = saved_json(run_dir / checkpoint.REPORT)
    same = saved.get("config") == OmegaConf.to_container(cfg, resolve=True)
    return saved if saved.get("status") == "completed" and same else None


def saved_json(path: Path) -> dict[str, Any]:
    """A run-folder JSON file's contents; {} when it is missing or unreadable."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def earlier_config(run_dir: Path) -> dict[str, Any] | None:
    """The config of the run whose files are in `run_dir` (its report, else its checkpoints), if any."""
    for name in (checkpoint.REPORT, checkpoint.CONFIG):
        if "config" in (saved := saved_json(run_dir / name)):
            return saved["config"]
    return None


def set_aside_another_config(cfg: DictConfig, run_dir: Path) -> None:
    """A folder reused with other settings (`hydra.sweep.dir`, `hydra.run.dir`) holds another config's run.
    Its files move to <parent>/.replaced/<name>-<n>/ so that run is neither resumed as this one nor
    overwritten."""
    saved = earlier_config(run_dir)
    if saved is None or saved == OmegaConf.to_container(cfg, resolve=True):
        return
    moved = [p for p in run_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log"]  # Hydra's, of this job
    n = 0
    while (target := run_dir.parent / checkpoint.REPLACED_DIR / f"{run_dir.name}-{n}").exists():
        n += 1
    target.mkdir(parents=True)
    for path in moved:
        path.rename(target / path.name)
    report.console.print(f"note: {run_dir} held a run with other settings; moved to {target}, this job starts afresh",
                         highlight=False, soft_wrap=True)


def run_task(cfg: DictConfig, run_dir: Path, in_sweep: bool = False) -> dict[str, Any]:
    from vade_cli.run import train_run

    changed = ""
    if cfg.resume:
        cfg, run_dir, changed = resume_config(cfg, list(HydraConfig.get().overrides.task))
    fresh_train = cfg.task == "train" and not cfg.resume
    done = finished_earlier(cfg, run_dir) if in_sweep and fresh_train else None
    if done is not None:
        report.console.print(f"job already completed in {run_dir}: kept, not run again", highlight=False)
        return done["final_elbo"]
    if fresh_train:
        set_aside_another_config(cfg, run_dir)
    if cfg.task == "train":
        result = train_run(cfg, run_dir)
        report.print_summary(result)
        if changed:  # after the run: a bad checkpoint must still fail in one line
            report.console.print(f"note: resumed with other device settings ({changed}); the numbers match an "
                                 "uninterrupted run to rounding, not bit for bit", soft_wrap=True)
        return result["final_elbo"]  # what a tuning sweeper (hydra/sweeper=optuna) maximises: label-free
    if cfg.task in ("predict", "sample"):
        from vade_cli import tasks

        return tasks.TASKS[cfg.task](cfg, run_dir)
    raise ConfigError(f"task must be one of train, predict, sample, got '{cfg.task}'")


def record_failure(run_dir: Path, message: str, cfg: DictConfig) -> None:
    """A failed sweep job still leaves a report, so the sweep table can name the failure."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        config = OmegaConf.to_container(cfg, resolve=False)
    report.write_report(run_dir, {"status": "failed", "error": message, "run_dir": str(run_dir), "config": config})


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_app(cfg: DictConfig) -> Any:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        return run_task(cfg, run_dir, in_sweep)
    except Interrupted as exc:
        code = 128 + (signal.SIGTERM if "SIGTERM" in str(exc) else signal.SIGINT)
        where = Path(str(cfg.resume)) if cfg.resume else run_dir
        fail(f"{exc}; checkpoint saved in {where / 'checkpoints'}; resume with: vade-run resume={where}", code)
    except (UserError, TrainingDiverged, OSError, OmegaConfBaseException) as exc:
        message = _message(exc)
        if not in_sweep:
            fail(message, 1 if isinstance(exc, TrainingDiverged) else 2)
        return _sweep_job_failed(run_dir, message, cfg, hydra_cfg.job.num)
    except Exception as exc:  # a bug or a CUDA error: a traceback alone, but a sweep must go on
        if not in_sweep:
            raise
        report.console.print_exception()
        return _sweep_job_failed(run_dir, f"{type(exc).__name__}: {one_line(exc)}", cfg, hydra_cfg.job.num)


def _sweep_job_failed(run_dir: Path, message: str, cfg: DictConfig, job_num: int) -> None:
    record_failure(run_dir, message, cfg)
    report.console.print(f"[bold red]job {job_num} failed:[/] {message}", highlight=False)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, UserError):
        target = exc.filename or "the output folder"
        return f"cannot write {target}: {exc.strerror or exc}; choose a writable folder (paths.output_root=...)"
    return one_line(exc)


def composition_message(exc: Exception) -> str:
    """Hydra's composition error in one line; a missing sweeper plugin names the extra that installs it."""
    message = one_line(exc)
    if "Could not find 'hydra/sweeper/optuna'" in message:
        return "hydra/sweeper=optuna needs the optuna extra, which is not installed: pip install 'vade-cli[optuna]'"
    return message


def main() -> None:
    """Console entry point: run Hydra, turn its composition errors into one line, report sweep failures."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let Hydra's errors reach us instead of printing a trace
    try:
        with slurm.one_line_errors():  # hydra/launcher=slurm: sbatch's refusal names the setting to change
            hydra_app()
    except slurm.SlurmError as exc:
        fail(str(exc), exc.code)
    except (HydraException, OmegaConfBaseException) as exc:
        fail(composition_message(exc))
    except OSError as exc:
        fail(_message(exc))
    from vade_cli.sweeps import callback

    if callback.LAST_SWEEP_FAILURES:
        fail(f"{callback.LAST_SWEEP_FAILURES} sweep job(s) failed; see the failed rows in table.md", 1)


if __name__ == "__main__":
    main()
