"""Figures and report.md of a finished run: valid PNGs, a self-contained report, failures kept local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.container import BarContainer
from matplotlib.image import imread

from tests.conftest import TINY, compose_config
from vade_cli import checkpoint, data, figures, tasks
from vade_cli.run import train_run
from vade_cli.sweeps import figure, table

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


def sweep_rows() -> list[dict]:
    """Sweep-table rows as `table.aggregate` makes them: 3 seeds x 2 learning rates on digits, a failure."""
    jobs = []
    for lr, shift in (("0.001", 0.0), ("0.01", 0.1)):
        for seed, acc in ((0, 0.6), (1, 0.7), (2, 0.8)):
            jobs.append({
                "status": "completed", "dataset": {"name": "digits", "n_samples": 100}, "n_clusters": 10,
                "seed": seed, "final_elbo": -100.0 + acc, "init": {"partition_metrics": {"acc": 0.5 + shift}},
                "metrics": {"gmm_init": {"acc": 0.55 + shift}, "final": {"acc": acc + shift}},
                "_overrides": {"seed": str(seed), "train.lr": lr},
            })  # fmt: skip
    jobs.append({"status": "failed", "error": "boom", "config": {"dataset": {"name": "digits"}},
                 "_overrides": {"seed": "3", "train.lr": "0.01"}})  # fmt: skip
    return table.aggregate(jobs, ["train.lr"])


def drawn_figure(rows: list[dict], keys: list[str], path: Path, monkeypatch):
    """table_figure's Figure, kept for inspection, drawn on an Agg canvas as save_png drew it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    kept = {}

    def save(fig, to):
        kept["fig"] = fig
        return figures.save_png(fig, to)

    monkeypatch.setattr(figure, "save_png", save)
    assert figure.table_figure(rows, keys, path) == path
    assert_png(path, min_side=100)
    FigureCanvasAgg(kept["fig"]).draw()
    return kept["fig"]


def test_table_figure_rows_show_partition_init_and_vade_by_dataset_and_setting(tmp_path, monkeypatch):
    rows = sweep_rows()
    assert isinstance(rows[0]["rho_elbo_acc"], float) and rows[0]["kept_init"] == "3/3"  # columns not to show
    fig = drawn_figure(rows, ["train.lr"], tmp_path / "table.png", monkeypatch)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["digits train.lr=0.001", "digits train.lr=0.01", "digits train.lr=0.01 (failed)"]
    bars = {c.get_label(): [round(p.get_width(), 6) for p in c.patches]
            for c in ax.containers if isinstance(c, BarContainer)}
    assert bars == {
        "partition of the AE's latent means": [0.5, 0.6, 0.0],
        "AE + prior init": [0.55, 0.65, 0.0],
        "VaDE (mean ± std over seeds)": [0.7, 0.8, 0.0],
    }
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == list(bars)
    renderer = fig.canvas.get_renderer()
    legend_box = ax.get_legend().get_window_extent(renderer)
    for other in (ax.xaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()):
        assert not legend_box.overlaps(other.get_window_extent(renderer)), other.get_text()


def test_table_figure_legend_stays_clear_with_one_row_and_with_many(tmp_path, monkeypatch):
    one = sweep_rows()[:1]
    many = [{**one[0], "train.lr": str(i)} for i in range(12)]
    for rows in (one, many):
        fig = drawn_figure(rows, ["train.lr"], tmp_path / "table.png", monkeypatch)
        ax, renderer = fig.axes[0], fig.canvas.get_renderer()
        assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.xaxis.label.get_window_extent(renderer))
        assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_table_figure_accepts_partial_rows(tmp_path):
    rows = [{"dataset": "digits", "train.lr": "0.001", "acc_mean": 0.81}, {"dataset": "har", "status": "failed"}, {}]
    assert_png(figure.table_figure(rows, ["train.lr"], tmp_path / "table.png"), min_side=100)
    assert figure.row_label(rows[1], ["train.lr"]) == "har (failed)"
    assert figure.row_label(rows[2], ["train.lr"]) == "?"
