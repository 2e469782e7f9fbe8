"""Figures and report.md of a finished run: valid PNGs, a self-contained report, failures kept local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from tests.conftest import TINY, compose_config
from vade_cli import checkpoint, data, figures, sweep_figure, tasks
from vade_cli.run import train_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIGITS_FIGURES = ("samples.png", "confusion.png", "latent.png", "curves.png")
SMALL_DIGITS = ["dataset=digits", "dataset.limit=600", "report.figures=true"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny digits run with figures, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("figures")
    cfg = compose_config([*TINY, *SMALL_DIGITS], root)
    run_dir = root / "run"
    return run_dir, train_run(cfg, run_dir, progress_enabled=False)


def assert_png(path: Path, min_side: int = 150) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = imread(path)
    assert min(pixels.shape[:2]) >= min_side, (path, pixels.shape)
    assert pixels[..., :3].std() > 0.01, f"{path} is blank"
    return pixels


def test_every_figure_is_a_png_of_sensible_size(digits_run):
    run_dir, result = digits_run
    for name in DIGITS_FIGURES:
        pixels = assert_png(run_dir / "figures" / name)
        assert max(pixels.shape[:2]) <= 4000, (name, pixels.shape)
    listed = json.loads((run_dir / "report.json").read_text())["figures"]
    assert {Path(p).name for p in listed} == {*DIGITS_FIGURES, "report.md"}
    assert result["figures"] == listed
    assert not list((run_dir / "figures").glob(".*.tmp")), "a temporary file was left behind"


def test_report_md_is_readable_on_its_own(digits_run):
    run_dir, result = digits_run
    text = (run_dir / "report.md").read_text()
    for name in DIGITS_FIGURES:
        assert f"](figures/{name})" in text
        assert (run_dir / "figures" / name).is_file()  # the link resolves from the run folder
    assert f"{result['metrics']['final']['acc']:.4f}" in text
    assert f"{result['metrics']['gmm_init']['acc']:.4f}" in text
    assert "| AE + prior init |" in text and "| VaDE |" in text
    assert "digits" in text and "seed 0" in text and "cpu" in text


def test_a_failing_figure_leaves_the_others_and_the_numbers(digits_run, monkeypatch, tmp_path):
    """The run is finished, so train_run in a copy only re-evaluates and redraws."""
    source, result = digits_run
    run_dir = tmp_path / "copy"
    shutil.copytree(source, run_dir)
    shutil.rmtree(run_dir / "figures")
    (run_dir / "report.md").unlink()

    def broken(view, path):
        raise RuntimeError("no fonts today")

    monkeypatch.setitem(figures.DRAWERS, "latent.png", broken)
    cfg = compose_config([*TINY, *SMALL_DIGITS], tmp_path)
    again = train_run(cfg, run_dir, progress_enabled=False)

    assert again["metrics"]["final"] == result["metrics"]["final"]
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["status"] == "completed" and saved["metrics"]["final"] == result["metrics"]["final"]
    assert not (run_dir / "figures" / "latent.png").exists()
    for name in ("samples.png", "confusion.png", "curves.png"):
        assert_png(run_dir / "figures" / name)
    text = (run_dir / "report.md").read_text()
    assert "latent.png (RuntimeError: no fonts today)" in text
    assert "](figures/latent.png)" not in text


def test_write_all_failing_entirely_keeps_report_json(digits_run, monkeypatch, tmp_path):
    source, result = digits_run
    run_dir = tmp_path / "copy"
    shutil.copytree(source, run_dir)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(figures, "write_all", broken)
    again = train_run(compose_config([*TINY, *SMALL_DIGITS], tmp_path), run_dir, progress_enabled=False)
    assert again["figures"] == []
    assert json.loads((run_dir / "report.json").read_text())["metrics"] == result["metrics"]


def test_unlabelled_tabular_data_gets_cluster_sizes_and_silhouette(digits_run, tmp_path):
    """Without labels or an image shape: no confusion or samples figure, and report.md says why."""
    source, result = digits_run
    saved = tasks.saved_config(source)
    digits = data.load(saved.dataset)
    unlabelled = data.Dataset("plain", digits.x, None, digits.likelihood, None)
    model = tasks.load_model(saved, unlabelled, tasks.trained_weights(source), source)
    x = torch.as_tensor(unlabelled.x)
    pred = model.predict(x).numpy()
    (tmp_path / checkpoint.METRICS).write_text((source / checkpoint.METRICS).read_text())
    plain_result = {**result, "metrics": {"gmm_init": {}, "final": {}}, "dataset": {"name": "plain"}}

    written = figures.write_all(figures.RunView(tmp_path, model, unlabelled, x, pred, plain_result, saved))

    assert {p.name for p in written} == {"latent.png", "curves.png", "report.md"}
    text = (tmp_path / "report.md").read_text()
    assert "need labels" in text and "silhouette" in text and "| size |" in text
    assert "ACC |" not in text
    assert_png(tmp_path / "figures" / "latent.png")


def test_tsne_map_and_one_dimensional_latents():
    points = np.random.default_rng(0).normal(size=(60, 4))
    xy, centers = figures.project_2d(points, "tsne", seed=0, centers=points[:3])
    assert xy.shape == (60, 2) and centers is None  # t-SNE cannot place points it was not fit on
    xy, centers = figures.project_2d(points, "pca", seed=0, centers=points[:3])
    assert xy.shape == (60, 2) and centers.shape == (3, 2)
    xy, centers = figures.project_2d(points[:, :1], "pca", seed=0, centers=points[:3, :1])
    assert xy.shape == (60, 2) and centers.shape == (3, 2)


def test_table_figure_accepts_partial_rows(tmp_path):
    rows = [
        {"dataset": "mnist", "vade_acc_mean": 0.94, "vade_acc_std": 0.02, "published_acc": 0.9446},
        {
            "dataset": "digits",
            "train.lr": "0.001",
            "status": "completed",
            "acc_mean": 0.81,
            "gmm_acc_mean": 0.75,
        },
        {"dataset": "har", "status": "failed", "acc_mean": None, "paper_vade_acc": 84.46},  # percent
        {},  # nothing at all
    ]
    path = sweep_figure.table_figure(rows, tmp_path / "table.png")
    assert path == tmp_path / "table.png"
    assert_png(path, min_side=100)


def test_table_rows_are_labelled_by_their_setting():
    row = {
        "dataset": "digits",
        "train.lr": "0.001",
        "status": "failed",
        "runs": 2,
        "acc_mean": 0.5,
        "error": "x",
    }
    assert sweep_figure._row_label(row) == "digits train.lr=0.001 (failed)"
    assert sweep_figure._row_fraction({"paper_vade_acc": 84.46}, "paper_vade_acc") == pytest.approx(0.8446)
