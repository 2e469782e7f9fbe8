"""Older run folders resume: `cli.migrate` drops the settings vade-cli retired from a saved config.

Retired, for example: `objective` (a run returns its final ELBO), `dataset.debian_dir` (a constant
of the Fashion-MNIST loader), `device.flush_denormal` (always on on the CPU). Today's config refuses
them, so a saved config that holds them must lose them before it is merged with today's.
"""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY, compose_config, run_cli
from vade_cli import cli, pretrain

OLD_KEYS = {"objective": "max_q", "dataset.debian_dir": "/usr/share/datasets/fashion-mnist", "device.flush_denormal": False,
            "pretrain.output_refit_scope": "output", "train.anchor_release_epochs": 0, "train.checkpoint_every": None}  # fmt: skip


def absent(cfg, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return node is None or leaf not in node


def save_old_config(run_dir, cfg) -> None:
    """`cfg` as an older vade-cli saved it: today's keys plus the retired ones."""
    old = OmegaConf.create(OmegaConf.to_container(cfg))
    for key, value in OLD_KEYS.items():
        OmegaConf.update(old, key, value, force_add=True)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(old, run_dir / ".hydra" / "config.yaml")


@pytest.mark.parametrize("key", list(OLD_KEYS))
def test_retired_settings_are_not_in_todays_config(key, tmp_path):
    for device in ("auto", "cpu", "cuda"):
        cfg = compose_config([f"device={device}", "dataset=fashion_mnist"], tmp_path)
        assert absent(cfg, key), (device, key)
    assert key in cli.RETIRED


def test_a_saved_config_with_retired_settings_resumes_without_them(tmp_path, capsys):
    run_dir = tmp_path / "run"
    save_old_config(run_dir, compose_config(["pretrain.lr=0.5", "device=cpu"], tmp_path))
    now = compose_config([f"resume={run_dir}"], tmp_path)
    resumed, _, changed = cli.resume_config(now, [f"resume={run_dir}"])
    assert all(absent(resumed, key) for key in OLD_KEYS)
    assert resumed.pretrain.lr == 0.5 and resumed.device.type == "cpu"  # the rest of the saved config stands
    assert changed == ""  # a dropped device key is no device change
    notes = [line for line in capsys.readouterr().err.splitlines() if "retired" in line]
    assert len(notes) == 1
    assert all(f"{key}=" in notes[0] for key in OLD_KEYS), notes[0]


def test_migrate_leaves_a_current_config_alone(tmp_path, capsys):
    cfg = compose_config([], tmp_path)
    saved = OmegaConf.create(OmegaConf.to_container(cfg))
    assert cli.migrate(saved, cfg) == OmegaConf.create(OmegaConf.to_container(cfg))
    assert capsys.readouterr().err == ""


def test_an_older_run_folder_resumes_to_a_report(tmp_path, monkeypatch, capsys):
    """End to end: a finished run whose saved config holds retired keys resumes (`vade-run resume=`)."""
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    args = [*TINY, "dataset=synthetic", "dataset.n_samples=200", f"hydra.run.dir={run_dir}"]
    assert run_cli(args, monkeypatch) == 0
    first = json.loads((run_dir / "report.json").read_text())
    save_old_config(run_dir, OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    (run_dir / "report.json").unlink()
    capsys.readouterr()
    assert run_cli([f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume-call'}"], monkeypatch) == 0
    assert "settings retired since this run started are dropped" in capsys.readouterr().err
    again = json.loads((run_dir / "report.json").read_text())
    assert again["status"] == "completed" and again["metrics"] == first["metrics"]
    assert all(absent(OmegaConf.create(again["config"]), key) for key in OLD_KEYS)


def test_a_setting_added_since_keeps_the_behaviour_the_run_began_with(tmp_path, capsys):
    """A folder saved before `train.anchor_plateau` and `train.free_epochs` let the anchor go right after
    anchor_epochs and trained on to train.epochs, and one saved before `pretrain.max_steps` ran all the
    autoencoder's epochs: it resumes so."""
    cfg = compose_config([], tmp_path)
    saved = OmegaConf.create(OmegaConf.to_container(cfg))
    del saved.train["anchor_plateau"], saved.train["free_epochs"]
    del saved.pretrain["max_steps"], saved.pretrain["min_epochs"]
    migrated = cli.migrate(saved, cfg)
    assert migrated.train.anchor_plateau == 0.0 != cfg.train.anchor_plateau
    assert migrated.train.free_epochs is None and cfg.train.free_epochs == 0
    assert migrated.pretrain.max_steps is None and cfg.pretrain.max_steps == 4000
    assert pretrain.autoencoder_epochs(migrated.pretrain, 70_000) == migrated.pretrain.epochs
    assert "train.anchor_plateau" in capsys.readouterr().err
