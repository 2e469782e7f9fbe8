"""hparams_search=optuna_elbo: a 2-trial Optuna study that maximises the label-free objective each run returns."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from hydra.errors import MissingConfigException

from tests.conftest import TINY, run_cli
from vade_cli import cli, objective


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                    reason="the optuna extra is not installed")
def test_two_trial_study_keeps_the_highest_final_elbo(tmp_path, monkeypatch):
    sweep_dir = tmp_path / "study"
    code = run_cli(["-m", "hparams_search=optuna_elbo", "hydra.sweeper.n_trials=2", "dataset=synthetic", *TINY,
                    f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep_dir}"], monkeypatch)
    assert code == 0
    reports = [json.loads((sweep_dir / str(i) / "report.json").read_text()) for i in range(2)]
    values = [r["objective"]["value"] for r in reports]
    assert [r["objective"]["name"] for r in reports] == ["final_elbo", "final_elbo"]
    assert values == [r["final_elbo"] for r in reports]
    assert reports[0]["config"]["train"]["lr"] != reports[1]["config"]["train"]["lr"]  # Optuna chose them
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(values))
    best = values.index(max(values))
    assert f"Label-free choice (highest final_elbo): job {best}" in (sweep_dir / "table.md").read_text()


def test_objectives_are_label_free_and_validated(make_cfg, tmp_path):
    from vade_cli.errors import ConfigError
    from vade_cli.validate import check_config

    history = [{"loss": 80.0, "max_q": 0.9}, {"loss": 70.0, "max_q": 0.95}]
    assert objective.evaluate("final_elbo", history, {})["value"] == -70.0
    assert objective.evaluate("max_q", history, {})["value"] == 0.95
    assert objective.evaluate("init_log_likelihood", history, {"log_likelihood": -3.5})["value"] == -3.5
    assert objective.evaluate("final_elbo", [], {})["value"] is None
    with pytest.raises(ConfigError, match="objective must be one of final_elbo, init_log_likelihood, max_q, got 'acc'"):
        check_config(make_cfg("objective=acc"))


def test_missing_optuna_plugin_names_the_extra():
    exc = MissingConfigException("In 'hydra/config': Could not find 'hydra/sweeper/optuna'")
    assert cli.composition_message(exc) == (
        "hydra/sweeper=optuna needs the optuna extra, which is not installed: pip install 'vade-cli[optuna]'")


def test_a_run_saved_before_objective_existed_still_reports_one(make_cfg, tmp_path):
    """Resuming a run folder from an older version: its saved config has no `objective` (nor `logger`)."""
    from omegaconf import open_dict

    from vade_cli.run import train_run

    cfg = make_cfg()
    with open_dict(cfg):
        del cfg["objective"], cfg["logger"]
    result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["objective"] == {"name": "final_elbo", "value": result["final_elbo"]}
