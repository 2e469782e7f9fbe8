"""hparams_search=optuna_elbo: a 2-trial Optuna study that maximises the final ELBO each run returns (label-free)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from hydra.errors import MissingConfigException

from tests.conftest import TINY, run_cli
from vade_cli import cli


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                    reason="the optuna extra is not installed")
def test_two_trial_study_keeps_the_highest_final_elbo(tmp_path, monkeypatch, capsys):
    sweep_dir = tmp_path / "study"
    code = run_cli(["-m", "hparams_search=optuna_elbo", "hydra.sweeper.n_trials=2", "dataset=synthetic", *TINY,
                    f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep_dir}"], monkeypatch)
    assert code == 0
    reports = [json.loads((sweep_dir / str(i) / "report.json").read_text()) for i in range(2)]
    values = [r["final_elbo"] for r in reports]
    assert reports[0]["config"]["train"]["lr"] != reports[1]["config"]["train"]["lr"]  # Optuna chose them
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(values))
    best = values.index(max(values))
    assert f"- synthetic: job {best} (" in (sweep_dir / "table.md").read_text()  # the study's choice, in its table
    assert capsys.readouterr().err.count(f"- synthetic: job {best} (") == 1  # and on the console, once


def test_missing_optuna_plugin_names_the_extra():
    exc = MissingConfigException("In 'hydra/config': Could not find 'hydra/sweeper/optuna'")
    assert cli.composition_message(exc) == (
        "hydra/sweeper=optuna needs the optuna extra, which is not installed: pip install 'vade-cli[optuna]'")


def test_a_run_returns_its_final_elbo_to_the_sweeper(make_cfg, tmp_path):
    """What Optuna maximises: the run's final ELBO, also for a config saved before `logger` existed."""
    from omegaconf import open_dict

    cfg = make_cfg("dataset=synthetic")
    with open_dict(cfg):
        del cfg["logger"]
    value = cli.run_task(cfg, tmp_path / "run")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert isinstance(value, float) and value == report["final_elbo"]
    assert "objective" not in report and "objective" not in report["config"]  # one label-free number, no choice
