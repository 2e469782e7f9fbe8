"""Experiment trackers (`logger=tensorboard|mlflow|csv`, several at once): copies of the run folder's record.

The run folder stays the record. Every tracker call comes after the run's own file has been written,
and a tracker that raises is switched off with a one-line warning, so no tracker can lose or spoil a
run's files. Per epoch each tracker gets the new rows of metrics.jsonl (`pretrain/<key>`,
`train/<key>` at step = epoch); once, the resolved config; at the end, the report's numbers and its
files (report.json, report.md, figures).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vade_cli import checkpoint
from vade_cli.errors import ConfigError
from vade_cli.report import console
from vade_cli.text import one_line

# Tracker name -> (the module it needs, the pip extra that installs it); csv needs nothing.
EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"), "csv": (None, None)}
# Where a resumed run finds the tracker runs it continues (the MLflow run id).
STATE_FILE = "trackers.json"
CSV_FILE = "metrics.csv"
# Row fields that say where a row belongs rather than what was measured.
ROW_KEYS = ("phase", "epoch")


def check(logger_cfg: DictConfig | None) -> list[str]:
    """The configured tracker names; a one-line error for an unknown one or a missing extra."""
    names = list(logger_cfg or {})
    for name in names:
        if name not in EXTRAS:
            raise ConfigError(f"logger must be among none, {', '.join(EXTRAS)}, got '{name}'")
        module, extra = EXTRAS[name]
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"logger={name} needs the {extra} extra, which is not installed: pip install 'vade-cli[{extra}]'")
    return names


def flat_params(tree: Any, prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 0.002}} -> {"train.lr": "0.002"}: the config as tracker parameters."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(tree) if isinstance(tree, (list, type(None))) else str(tree)}


def row_scalars(row: dict[str, Any]) -> dict[str, float]:
    """One metrics.jsonl row as `<phase>/<key>` scalars (numbers only)."""
    phase = row.get("phase", "train")
    return {f"{phase}/{key}": float(value) for key, value in row.items()
            if key not in ROW_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)}


def final_scalars(result: dict[str, Any]) -> dict[str, float]:
    """The report's headline numbers: final and init clustering scores, the final ELBO."""
    out = {f"final/{k}": float(v) for k, v in result["metrics"]["final"].items() if v is not None}
    out |= {f"init/{k}": float(v) for k, v in result["metrics"]["gmm_init"].items() if v is not None}
    if result.get("final_elbo") is not None:
        out["final/elbo"] = float(result["final_elbo"])
    return out


def report_files(run_dir: Path) -> list[Path]:
    names = [checkpoint.REPORT, checkpoint.REPORT_MD]
    files = [run_dir / n for n in names] + sorted((run_dir / checkpoint.FIGURES_DIR).glob("*.png"))
    return [f for f in files if f.is_file()]


# ---------------------------------------------------------------- one class per tracker


class CsvTracker:
    """metrics.csv in the run folder: metrics.jsonl as one table (columns: the union of the rows' keys)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, state: dict[str, Any]) -> None:
        self.path = Path(cfg.path) if cfg.get("path") else run_dir / CSV_FILE
        self.rows: list[dict[str, Any]] = []

    def log_params(self, config: dict[str, Any]) -> None:
        pass  # the config is .hydra/config.yaml beside it

    def log_rows(self, rows: Sequence[dict[str, Any]], all_rows: Sequence[dict[str, Any]]) -> None:
        columns: dict[str, None] = {}
        for row in all_rows:
            columns.update(dict.fromkeys(row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(all_rows)
        checkpoint.atomic_write_text(self.path, buffer.getvalue(), durable=False)

    def log_final(self, result: dict[str, Any], files: list[Path]) -> None:
        pass  # report.json is beside it

    def close(self, status: str) -> None:
        pass


class TensorBoardTracker:
    """Event files under `<run folder>/tensorboard` (or `log_dir`): scalars, the config and report as text, figures."""

    def __init__(self, cfg: DictConfig, run_dir: Path, state: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(cfg.log_dir or run_dir / "tensorboard"))

    def log_params(self, config: dict[str, Any]) -> None:
        text = OmegaConf.to_yaml(OmegaConf.create(config))
        self.writer.add_text("config", "    " + text.replace("\n", "\n    "))

    def log_rows(self, rows: Sequence[dict[str, Any]], all_rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            for tag, value in row_scalars(row).items():
                self.writer.add_scalar(tag, value, global_step=int(row["epoch"]))
        self.writer.flush()

    def log_final(self, result: dict[str, Any], files: list[Path]) -> None:
        import matplotlib.image

        for tag, value in final_scalars(result).items():
            self.writer.add_scalar(tag, value, global_step=int(result["epochs"]))
        for path in files:
            if path.suffix == ".md":
                self.writer.add_text("report", path.read_text())
            elif path.suffix == ".png":
                image = matplotlib.image.imread(path)[..., :3]
                self.writer.add_image(f"figures/{path.stem}", image, dataformats="HWC")
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class MlflowTracker:
    """An MLflow run (store: `tracking_uri`, a local SQLite file under outputs/mlruns by default).

    Through `MlflowClient`, not the fluent API: no process-wide active run, so sweep jobs that share a
    process cannot log into each other's runs. A resumed run continues the same MLflow run.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, state: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        uri = str(cfg.tracking_uri)
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = state.get("mlflow_run_id")
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(str(cfg.experiment_name))
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
                str(cfg.experiment_name),
                artifact_location=Path(cfg.artifact_location).resolve().as_uri() if cfg.artifact_location else None,
            )
            run = self.client.create_run(experiment_id, run_name=str(cfg.run_name or run_dir.name),
                                         tags={"vade_cli.run_dir": str(run_dir.resolve())})
            self.run_id = state["mlflow_run_id"] = run.info.run_id
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def log_params(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if self.client.get_run(self.run_id).data.params:
            return  # a resumed run: its parameters were logged by the first session
        params = [Param(k, v[:6000]) for k, v in flat_params(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log_rows(self, rows: Sequence[dict[str, Any]], all_rows: Sequence[dict[str, Any]]) -> None:
        from mlflow.entities import Metric

        batch = [Metric(key, value, 0, int(row["epoch"])) for row in rows for key, value in row_scalars(row).items()]
        for start in range(0, len(batch), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=batch[start:start + 1000])

    def log_final(self, result: dict[str, Any], files: list[Path]) -> None:
        from mlflow.entities import Metric

        step = int(result["epochs"])
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, 0, step) for k, v in final_scalars(result).items()])
        for path in files:
            self.client.log_artifact(self.run_id, str(path), artifact_path=path.parent.name if path.suffix == ".png" else None)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


TRACKERS: dict[str, Callable[..., Any]] = {"csv": CsvTracker, "tensorboard": TensorBoardTracker, "mlflow": MlflowTracker}


# ---------------------------------------------------------------- the fan-out the run talks to


class Trackers:
    """Sends the run's record to every configured tracker; one that fails is dropped with a warning."""

    def __init__(self, logger_cfg: DictConfig | None, run_dir: Path, already_sent: int = 0) -> None:
        self.run_dir = run_dir
        self.sent = already_sent  # rows of metrics.jsonl the trackers have had (a resumed run's first session)
        self.state_path = run_dir / STATE_FILE
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.active: dict[str, Any] = {}
        for name in check(logger_cfg):
            self._call(name, lambda name=name: self.active.__setitem__(
                name, TRACKERS[name](logger_cfg[name], run_dir, self.state)))
        if self.state:
            checkpoint.atomic_write_json(self.state_path, self.state)

    def _call(self, name: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # a tracker's store, disk or network: the run and its folder carry on
            self.active.pop(name, None)
            console.print(f"[yellow]warning:[/] logger {name} failed and is off for the rest of this run "
                          f"({type(exc).__name__}: {one_line(exc, limit=200)}); the run folder keeps everything",
                          highlight=False, soft_wrap=True)

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.active.items()):
            self._call(name, lambda tracker=tracker: getattr(tracker, method)(*args))

    def log_params(self, config: dict[str, Any]) -> None:
        self._each("log_params", config)

    def log_rows(self, all_rows: Sequence[dict[str, Any]]) -> None:
        """Send the rows of metrics.jsonl not sent yet (the file is written first)."""
        if len(all_rows) > self.sent:
            self._each("log_rows", list(all_rows[self.sent:]), list(all_rows))
            self.sent = len(all_rows)

    def log_final(self, result: dict[str, Any]) -> None:
        self._each("log_final", result, report_files(self.run_dir))

    def close(self, status: str) -> None:
        self._each("close", status)


@contextmanager
def opened(logger_cfg: DictConfig | None, run_dir: Path, config: dict[str, Any], already_sent: int = 0,
           ) -> Iterator[Trackers]:
    """Trackers for one run, closed as FINISHED, or KILLED/FAILED when the run raises."""
    trackers = Trackers(logger_cfg, run_dir, already_sent)
    trackers.log_params(config)
    try:
        yield trackers
    except BaseException as exc:
        from vade_cli.errors import Interrupted

        trackers.close("KILLED" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "FAILED")
        raise
    trackers.close("FINISHED")
