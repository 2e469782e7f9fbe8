"""task=predict and task=sample: a trained run's weights reused, through the real command and in Python."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from tests.conftest import TINY, compose_config, vade_run
from vade_cli import data, metrics, tasks
from vade_cli.errors import CheckpointError, ConfigError, DataError
from vade_cli.run import train_run

DIGITS = ["dataset=digits", "dataset.limit=600"]


@pytest.fixture(scope="module")
def cli_digits_run(tmp_path_factory) -> Path:
    """A tiny digits run trained by `vade-run` itself, so its folder has Hydra's saved config."""
    root = tmp_path_factory.mktemp("tasks")
    run_dir = root / "train"
    proc = vade_run(
        [*TINY, *DIGITS, f"paths.output_root={root / 'out'}", f"hydra.run.dir={run_dir}"], cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir


def read_assignments(path: Path) -> tuple[list[str], np.ndarray]:
    header = path.read_text().splitlines()[0].split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def training_labels(run_dir: Path) -> np.ndarray:
    return data.load(tasks.saved_config(run_dir).dataset).y


def test_cli_predict_reproduces_the_reported_acc(cli_digits_run, tmp_path):
    reported = json.loads((cli_digits_run / "report.json").read_text())["metrics"]["final"]
    out = tmp_path / "predict"
    proc = vade_run(
        ["task=predict", f"checkpoint={cli_digits_run}", "device=cpu", f"hydra.run.dir={out}"], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(out / "assignments.csv") in proc.stderr.replace("\n", "")
    assert f"ACC {reported['acc']:.4f}" in proc.stderr

    header, table = read_assignments(out / "assignments.csv")
    k = json.loads((cli_digits_run / "report.json").read_text())["n_clusters"]
    assert header == ["index", "cluster", *(f"p_{c}" for c in range(k))]
    assert np.array_equal(table[:, 0], np.arange(len(table)))
    np.testing.assert_allclose(table[:, 2:].sum(axis=1), 1.0, atol=1e-4)
    assert np.array_equal(table[:, 2:].argmax(axis=1), table[:, 1])
    y = training_labels(cli_digits_run)
    assert metrics.cluster_acc(y, table[:, 1].astype(np.int64)) == reported["acc"]  # exactly


def test_python_predict_names_its_data_and_is_deterministic(cli_digits_run, make_cfg, tmp_path):
    reported = json.loads((cli_digits_run / "report.json").read_text())["metrics"]["final"]
    cfg = make_cfg(*DIGITS, "task=predict", f"checkpoint={cli_digits_run}")
    first = tasks.predict(cfg, tmp_path / "a")
    tasks.predict(cfg, tmp_path / "b")
    assert first["metrics"] == reported
    assert (tmp_path / "a" / "assignments.csv").read_bytes() == (
        tmp_path / "b" / "assignments.csv"
    ).read_bytes()
    assert json.loads((tmp_path / "a" / "report.json").read_text())["task"] == "predict"


def test_predict_survives_hydra_rewriting_the_training_folder(cli_digits_run, make_cfg, tmp_path):
    """A command run with hydra.run.dir=<training run> rewrites its .hydra/; report.json keeps the truth."""
    run_dir = tmp_path / "train"
    shutil.copytree(cli_digits_run, run_dir)
    (run_dir / ".hydra" / "config.yaml").write_text("task: sample\nmodel:\n  name: paper\n  hidden: [500]\n")
    reported = json.loads((run_dir / "report.json").read_text())["metrics"]["final"]
    summary = tasks.predict(make_cfg(*DIGITS, "task=predict", f"checkpoint={run_dir}"), tmp_path / "out")
    assert summary["metrics"] == reported


def test_predict_on_new_unlabelled_data_from_a_file(cli_digits_run, make_cfg, tmp_path):
    x = np.random.default_rng(0).uniform(size=(40, 64)).astype(np.float32)
    np.savez(tmp_path / "new.npz", x=x)
    cfg = make_cfg(
        "task=predict",
        f"checkpoint={cli_digits_run}",
        "dataset=file",
        f"dataset.path={tmp_path / 'new.npz'}",
        "dataset.likelihood=bernoulli",
        "dataset.scale=none",
    )
    summary = tasks.predict(cfg, tmp_path / "out")
    assert summary["metrics"] == {} and summary["dataset"]["n_samples"] == 40
    _, table = read_assignments(tmp_path / "out" / "assignments.csv")
    assert table.shape == (40, 2 + 10)


def test_predict_rejects_data_of_another_width(cli_digits_run, make_cfg, tmp_path):
    cfg = make_cfg("task=predict", f"checkpoint={cli_digits_run}", "dataset=synthetic")
    with pytest.raises(DataError, match="32 features but the model .* was trained on 64"):
        tasks.predict(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "assignments.csv").exists()


@pytest.mark.parametrize("task", ["predict", "sample"])
def test_checkpoint_must_be_a_trained_run_folder(task, make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="needs checkpoint="):
        tasks.TASKS[task](make_cfg(f"task={task}"), tmp_path / "out")
    with pytest.raises(CheckpointError, match="does not exist"):
        tasks.TASKS[task](make_cfg(f"task={task}", f"checkpoint={tmp_path / 'nowhere'}"), tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a trained vade-cli run folder"):
        tasks.TASKS[task](make_cfg(f"task={task}", f"checkpoint={tmp_path / 'empty'}"), tmp_path / "out")


@pytest.mark.slow  # a second process start for what the in-process tests above already pin down
def test_cli_bad_checkpoint_is_one_line(tmp_path):
    proc = vade_run(
        ["task=predict", f"checkpoint={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'o'}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sample_digits_draws_an_image_grid(cli_digits_run, make_cfg, tmp_path):
    summary = tasks.sample(
        make_cfg("task=sample", f"checkpoint={cli_digits_run}", "n_per_cluster=4"), tmp_path
    )
    png = tmp_path / "samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and min(imread(png).shape[:2]) > 100
    drawn = np.load(tmp_path / "samples.npz")
    assert drawn["x"].shape == (40, 64) and np.array_equal(drawn["cluster"], np.repeat(np.arange(10), 4))
    assert summary["n_clusters"] == 10


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    """Separable blobs and an autoencoder trained long enough for clean clusters."""
    root = tmp_path_factory.mktemp("synthetic")
    overrides = ["dataset=synthetic", "dataset.n_samples=400", "pretrain.epochs=12", "pretrain.batch_size=40"]
    cfg = compose_config([*TINY, *overrides, "train.epochs=5"], root)
    run_dir = root / "run"
    result = train_run(cfg, run_dir, progress_enabled=False)
    assert result["metrics"]["final"]["acc"] > 0.8, result["metrics"]
    return run_dir


def test_samples_come_from_the_requested_clusters(synthetic_run, make_cfg, tmp_path):
    cfg = make_cfg("task=sample", f"checkpoint={synthetic_run}", "n_per_cluster=50", "seed=3")
    tasks.sample(cfg, tmp_path / "a")
    drawn = np.load(tmp_path / "a" / "samples.npz")
    assert drawn["x"].shape == (5 * 50, 32) and np.array_equal(drawn["cluster"], np.repeat(np.arange(5), 50))
    assert not (tmp_path / "a" / "samples.png").exists()  # not image data

    saved = tasks.saved_config(synthetic_run)
    shape_of = tasks.data_shape(synthetic_run, saved, tasks.trained_weights(synthetic_run))
    model = tasks.load_model(saved, shape_of, tasks.trained_weights(synthetic_run), synthetic_run)
    back = model.predict(torch.as_tensor(drawn["x"])).numpy()
    for c in range(5):
        assert (back[drawn["cluster"] == c] == c).mean() > 0.5, c

    tasks.sample(cfg, tmp_path / "b")  # the same seed draws the same points
    assert np.array_equal(np.load(tmp_path / "b" / "samples.npz")["x"], drawn["x"])
    tasks.sample(
        make_cfg("task=sample", f"checkpoint={synthetic_run}", "n_per_cluster=50", "seed=4"), tmp_path / "c"
    )
    assert not np.array_equal(np.load(tmp_path / "c" / "samples.npz")["x"], drawn["x"])


def test_task_output_may_not_overwrite_the_training_run(synthetic_run, make_cfg):
    with pytest.raises(ConfigError, match="overwrite the training run"):
        tasks.sample(make_cfg("task=sample", f"checkpoint={synthetic_run}"), synthetic_run)
