"""End to end: the composed real config through `train_run`, and once through the installed `vade-run`."""

import json

from tests.conftest import vade_run
from vade_cli.run import train_run

REPORT_KEYS = {"status", "metrics", "seed", "device", "timings", "versions", "config", "dataset", "n_clusters"}
GMM_KEYS = {"weights", "means", "variances", "log_likelihood", "metrics"}
EPOCH_KEYS = {"epoch", "loss", "recon", "kl_z", "kl_c", "lr", "acc", "nmi", "ari"}


def test_synthetic_clusters_are_recovered(make_cfg, tmp_path):
    cfg = make_cfg("dataset=synthetic", "pretrain.epochs=15", "train.epochs=10")
    result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["metrics"]["final"]["acc"] >= 0.95


def test_digits_run_writes_every_artefact(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    result = train_run(make_cfg("dataset=digits"), run_dir, progress_enabled=False)

    report = json.loads((run_dir / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report == json.loads(json.dumps(result))
    assert set(report["metrics"]["final"]) == {"acc", "nmi", "ari"}
    assert report["config"]["dataset"]["name"] == "digits" and report["n_clusters"] == 10

    gmm = json.loads((run_dir / "gmm_init.json").read_text())
    assert GMM_KEYS <= set(gmm)
    assert len(gmm["weights"]) == 10 and abs(sum(gmm["weights"]) - 1) < 1e-5
    assert set(gmm["metrics"]) == {"acc", "nmi", "ari"}
    assert (run_dir / "gmm_init.pt").is_file() and (run_dir / "checkpoints" / "last.pt").is_file()

    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if r["phase"] == "train"]
    assert [r["epoch"] for r in train_lines] == [1, 2]
    assert all(EPOCH_KEYS <= set(r) for r in train_lines)


def test_same_seed_same_numbers(make_cfg, tmp_path):
    a = train_run(make_cfg("dataset=synthetic", "pretrain.cache=false"), tmp_path / "a", progress_enabled=False)
    b = train_run(make_cfg("dataset=synthetic", "pretrain.cache=false"), tmp_path / "b", progress_enabled=False)
    assert a["metrics"] == b["metrics"]
    assert a["final_elbo"] == b["final_elbo"]


def test_installed_vade_run_from_another_folder(tmp_path):
    """The console script finds its packaged configs from any working directory."""
    proc = vade_run(
        ["model=small", "pretrain.epochs=2", "train.epochs=2", "report.figures=false",
         "model.hidden=[64,64,128]", "n_clusters=12", "device=cpu", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_clusters"] == 12 and report["config"]["model"]["hidden"] == [64, 64, 128]
    assert "AE + prior init" in proc.stderr and "VaDE" in proc.stderr
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


def test_digits_default_vade_holds_its_initialisation(make_cfg, tmp_path):
    """Seed 0, default settings: VaDE must not end below the AE+GMM initialisation it starts from."""
    result = train_run(make_cfg("dataset=digits", tiny=False), tmp_path / "run", progress_enabled=False)
    m = result["metrics"]
    assert m["final"]["acc"] >= m["gmm_init"]["acc"]
