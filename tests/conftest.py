"""Shared fixtures: the real config, composed with Hydra's compose API and shrunk for speed.

Tests never call `@hydra.main`; they compose `vade_cli.conf`, apply overrides, and point every
output at `tmp_path`. Tests that need the real command run the installed `vade-run` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Small enough for seconds on 2 CPU cores, large enough to learn something.
TINY = ["device=cpu", "device.threads=1", "model=small", "pretrain=ae", "pretrain.init=gmm", "pretrain.epochs=2", "train.epochs=2", "report.figures=false"]


def compose_config(overrides: list[str], output_root: Path) -> DictConfig:
    with initialize_config_module(config_module="vade_cli.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_root = str(output_root)
        cfg.paths.cache_dir = str(output_root / "cache")
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg(*overrides, tiny=True) -> a composed config writing under tmp_path."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_config([*(TINY if tiny else []), *overrides], tmp_path)

    return make


def vade_run(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user would run it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    exe = Path(sys.executable).with_name("vade-run")
    cmd = [str(exe)] if exe.exists() else ["vade-run"]
    return subprocess.run(cmd + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def run_cli(args: list[str], monkeypatch) -> int:
    """The real `vade-run` entry point in-process (cheaper than a subprocess); returns its exit code."""
    from vade_cli import cli

    monkeypatch.setattr(sys, "argv", ["vade-run", *args])
    GlobalHydra.instance().clear()
    try:
        cli.main()
    except SystemExit as exit_info:
        return exit_info.code
    finally:
        GlobalHydra.instance().clear()
    return 0
