"""logger=csv|tensorboard|mlflow: what each tracker holds equals the run folder's own record, and a
tracker that fails never costs the run its files."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import pytest

from vade_cli import checkpoint, report, trackers
from vade_cli.errors import ConfigError
from vade_cli.run import train_run

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="the tensorboard extra is not installed")
needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="the mlflow extra is not installed")


def expected_scalars(run_dir) -> dict[str, dict[int, float]]:
    """metrics.jsonl as {tag: {epoch: value}}, the way the trackers name them."""
    out: dict[str, dict[int, float]] = {}
    for row in report.read_metrics_log(run_dir):
        for tag, value in trackers.row_scalars(row).items():
            out.setdefault(tag, {})[row["epoch"]] = value
    return out


def installed(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is not None]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One run with every installed logger at once (and figures, so artefacts exist): cfg, run folder, report."""
    from tests.conftest import TINY, compose_config

    root = tmp_path_factory.mktemp("tracked")
    names = ["csv", *installed("tensorboard", "mlflow")]
    cfg = compose_config([*TINY, f"logger=[{','.join(names)}]", "report.figures=true"], root)
    result = train_run(cfg, root / "run", progress_enabled=False)
    return cfg, root / "run", result


def test_csv_equals_metrics_jsonl(tracked_run):
    _, run_dir, _ = tracked_run
    rows = report.read_metrics_log(run_dir)
    with open(run_dir / trackers.CSV_FILE, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and {r["phase"] for r in table} == {"pretrain", "train"}
    for written, row in zip(table, rows):
        for key, value in row.items():
            assert written[key] == str(value)
        assert all(written[k] == "" for k in written.keys() - row.keys())


@needs_tensorboard
def test_tensorboard_event_file_equals_metrics_jsonl(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, result = tracked_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    expected = expected_scalars(run_dir)
    assert set(expected) <= set(events.Tags()["scalars"])
    for tag, by_epoch in expected.items():
        logged = {e.step: e.value for e in events.Scalars(tag)}
        assert logged.keys() == by_epoch.keys()
        for epoch, value in by_epoch.items():  # event files hold float32
            assert math.isclose(logged[epoch], value, rel_tol=1e-6, abs_tol=1e-6), (tag, epoch)
    assert events.Scalars("final/acc")[-1].value == pytest.approx(result["metrics"]["final"]["acc"], rel=1e-6)
    assert "figures/curves" in events.Tags()["images"]


@needs_mlflow
def test_mlflow_store_equals_metrics_jsonl(tracked_run):
    from mlflow.tracking import MlflowClient

    cfg, run_dir, result = tracked_run
    run_id = json.loads((run_dir / trackers.STATE_FILE).read_text())["mlflow_run_id"]
    client = MlflowClient(tracking_uri=str(cfg.logger.mlflow.tracking_uri))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == str(cfg.train.epochs)
    assert run.data.params["dataset.name"] == "digits"
    for tag, by_epoch in expected_scalars(run_dir).items():
        assert {m.step: m.value for m in client.get_metric_history(run_id, tag)} == by_epoch, tag
    assert run.data.metrics["final/acc"] == result["metrics"]["final"]["acc"]
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "figures")}
    assert {"report.json", "report.md", "figures/curves.png"} <= artifacts


def test_failing_tracker_keeps_the_run_and_its_files(make_cfg, tmp_path, monkeypatch, capsys):
    calls = []

    def breaks_on_second_epoch(self, rows, all_rows):
        calls.append(len(all_rows))
        if len(calls) == 2:
            raise OSError("disk of the tracker is full")
        original(self, rows, all_rows)

    original = trackers.CsvTracker.log_rows
    monkeypatch.setattr(trackers.CsvTracker, "log_rows", breaks_on_second_epoch)
    run_dir = tmp_path / "run"
    result = train_run(make_cfg("logger=csv"), run_dir, progress_enabled=False)
    assert result["status"] == "completed" and (run_dir / checkpoint.REPORT).is_file()
    assert len(report.read_metrics_log(run_dir)) == int(result["epochs"]) + 2  # two pretrain epochs
    assert len(calls) == 2  # switched off after the failure
    err = capsys.readouterr().err
    assert "logger csv failed" in err and "disk of the tracker is full" in err


def test_unknown_logger_and_missing_extra_are_one_line_errors(monkeypatch):
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match="logger must be among none, tensorboard, mlflow, csv, got 'wandb'"):
        trackers.check(OmegaConf.create({"wandb": {}}))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'vade-cli\[mlflow\]'"):
        trackers.check(OmegaConf.create({"mlflow": {}}))


@needs_mlflow
def test_resumed_run_continues_its_mlflow_run(make_cfg, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from tests.test_robustness import SYNTH, signal_self_on_call
    from vade_cli.errors import Interrupted

    cfg = make_cfg(*SYNTH, "logger=mlflow")
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        signal_self_on_call(patch, "negative_elbo", 5)
        with pytest.raises(Interrupted):
            train_run(cfg, run_dir, progress_enabled=False)
    client = MlflowClient(tracking_uri=str(cfg.logger.mlflow.tracking_uri))
    run_id = json.loads((run_dir / trackers.STATE_FILE).read_text())["mlflow_run_id"]
    assert client.get_run(run_id).info.status == "KILLED"
    train_run(cfg, run_dir, progress_enabled=False)
    experiment = client.get_experiment_by_name(str(cfg.logger.mlflow.experiment_name))
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
    assert client.get_run(run_id).info.status == "FINISHED"
    for tag, by_epoch in expected_scalars(run_dir).items():
        assert {m.step: m.value for m in client.get_metric_history(run_id, tag)} == by_epoch, tag
