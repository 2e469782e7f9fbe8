"""End to end: the composed real config through `train_run`, and once through the installed `vade-run`."""

import json
import math

import pytest

from tests.conftest import vade_run
from vade_cli import checkpoint, data, metrics, report, report_md, train
from vade_cli.device import Compute
from vade_cli.run import train_run

REPORT_KEYS = {"status", "metrics", "seed", "device", "timings", "versions", "config", "dataset", "n_clusters"}
GMM_KEYS = {"weights", "means", "variances", "log_likelihood", "metrics"}
EPOCH_KEYS = {"epoch", "loss", "recon", "kl_z", "kl_c", "lr", "acc", "nmi", "ari"}


def test_synthetic_clusters_are_recovered(make_cfg, tmp_path):
    """Pretraining and the prior's init find well-separated clusters (the init alone scores ~0.98 here)."""
    cfg = make_cfg("dataset=synthetic", "pretrain.epochs=15", "train.epochs=10")
    result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["metrics"]["final"]["acc"] >= 0.95


def _train_lines(run_dir):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["phase"] == "train"]


def _relative_change(before: dict, after: dict) -> float:
    moved = sum((after[k].float() - v.float()).pow(2).sum() for k, v in before.items())
    size = sum(v.float().pow(2).sum() for v in before.values())
    return float((moved / size).sqrt())


def test_vade_training_improves_on_an_imperfect_initialisation(make_cfg, tmp_path):
    """VaDE training itself must do the work: from a half-trained autoencoder (init ACC ~0.71),
    20 epochs raise the ELBO, move the networks and the prior, and end with a higher ACC.

    fp32 (no bf16 autocast) so the numbers do not depend on the CPU; with train.lr near 0 every
    assertion after the first fails.
    """
    run_dir = tmp_path / "run"
    cfg = make_cfg("dataset=synthetic", "pretrain.epochs=5", "train.epochs=20", "pretrain.cache=false",
                   "device.amp_bf16=false")
    result = train_run(cfg, run_dir, progress_enabled=False)
    init_acc, final_acc = result["metrics"]["gmm_init"]["acc"], result["metrics"]["final"]["acc"]
    assert init_acc < 0.9, "the initialisation must leave room to improve, or this test proves nothing"

    elbo = [-r["loss"] for r in _train_lines(run_dir)]
    assert len(elbo) == 20 and elbo[-1] > elbo[0] + 5.0, elbo

    trained = checkpoint.load(run_dir / checkpoint.LAST, kind="train")["model"]
    pretrained = checkpoint.load(run_dir / checkpoint.PRETRAIN, kind="pretrain")["model"]
    prefix = {"body": "encoder.body", "mean": "encoder.mean", "decoder": "decoder"}
    as_vade = {f"{prefix[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v for k, v in pretrained.items()}
    assert _relative_change(as_vade, trained) > 0.01
    init = checkpoint.load(run_dir / checkpoint.GMM_INIT_PT, kind="gmm_init")
    assert _relative_change({"prior.mu": init["means"]}, trained) > 0.01

    assert final_acc > init_acc, (init_acc, final_acc)


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
        ["model=small", "pretrain=ae", "pretrain.init=gmm", "pretrain.epochs=2", "train.epochs=2",
         "report.figures=false", "model.hidden=[64,64,128]", "n_clusters=12", "device=cpu", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_clusters"] == 12 and report["config"]["model"]["hidden"] == [64, 64, 128]
    assert "AE + prior init" in proc.stderr and "VaDE" in proc.stderr
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow  # a whole default run: 300 autoencoder epochs
def test_digits_default_vade_keeps_what_its_partition_found(make_cfg, tmp_path):
    """Seed 0, default settings on the CPU: VaDE ends no more than 1 point under the partition it
    starts from. Pinned to 2 threads and no figures so it measures the default pipeline, not the machine."""
    cfg = make_cfg("dataset=digits", "device=cpu", "device.threads=2", "report.figures=false", tiny=False)
    result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["metrics"]["final"]["acc"] >= result["init"]["partition_metrics"]["acc"] - 0.01


def test_init_snapshot_scores_what_training_starts_from(make_cfg, tmp_path, monkeypatch):
    """gmm_init.json's ACC is the ACC of the model's own predictions when training begins."""
    seen = {}
    real_fit = train.fit

    def fit(model, x, cfg, seed, *args, compute=None, **kwargs):
        with (compute or Compute(x.device)).autocast():  # the path run.evaluate takes
            seen["pred"] = model.predict(x).cpu().numpy()
        return real_fit(model, x, cfg, seed, *args, compute=compute, **kwargs)

    monkeypatch.setattr(train, "fit", fit)
    cfg = make_cfg("dataset=synthetic")
    train_run(cfg, tmp_path / "run", progress_enabled=False)

    snapshot = json.loads((tmp_path / "run" / "gmm_init.json").read_text())
    at_start = metrics.scores(data.load(cfg.dataset).y, seen["pred"])
    assert at_start["acc"] == snapshot["metrics"]["acc"]
    assert at_start == snapshot["metrics"]


def test_zero_vade_epochs_stop_at_the_initialisation(make_cfg, tmp_path):
    """train.epochs=0 is the AE + init baseline: the prior's own predictions are the result, the
    autoencoder's epochs are in metrics.jsonl, and the summary shows no VaDE row that only repeats them."""
    run_dir = tmp_path / "run"
    result = train_run(make_cfg("dataset=synthetic", "train.epochs=0"), run_dir, progress_enabled=False)
    assert result["epochs"] == 0 and result["final_elbo"] is None
    assert result["metrics"]["final"] == result["metrics"]["gmm_init"]
    rows = report.read_metrics_log(run_dir)
    assert [r["phase"] for r in rows] == ["pretrain"] * 2  # TINY's pretrain.epochs=2, no train rows
    with report.console.capture() as captured:
        report.print_summary(result)
    assert "│ AE + prior init" in captured.get() and "│ VaDE" not in captured.get()


def test_gaussian_likelihood_end_to_end(make_cfg, tmp_path):
    """Real-valued features with the Gaussian decoder: the run completes with a finite ELBO."""
    run_dir = tmp_path / "run"
    result = train_run(make_cfg("dataset=synthetic", "dataset.likelihood=gaussian"), run_dir, progress_enabled=False)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "completed" and report["dataset"]["likelihood"] == "gaussian"
    assert math.isfinite(report["final_elbo"]) and report["final_elbo"] == result["final_elbo"]
    assert all(math.isfinite(r["loss"]) for r in _train_lines(run_dir))
    assert set(report["metrics"]["final"]) == {"acc", "nmi", "ari"}


def test_a_resumed_run_says_which_session_its_times_count(make_cfg, tmp_path):
    """Run again into a finished run's folder: it resumes from the last checkpoint with nothing left to
    train, keeps the first session's pretraining time and says that its wall time is its own."""
    run_dir = tmp_path / "run"
    first = train_run(make_cfg("dataset=synthetic"), run_dir, progress_enabled=False)
    again = train_run(make_cfg("dataset=synthetic"), run_dir, progress_enabled=False)
    assert first["timings"]["resumed_in"] is None and again["timings"]["resumed_in"] == "train"
    assert again["timings"]["pretrain_s"] == first["timings"]["pretrain_s"]
    assert again["metrics"] == first["metrics"]
    with report.console.capture() as captured:
        report.print_summary(again)
    assert "this session, resumed during VaDE training" in captured.get()
    assert "in an earlier session" in captured.get()
    with report.console.capture() as captured:
        report.print_summary(first)
    assert "session" not in captured.get()
    assert report_md.RESUMED_NOTES["train"] in report_md._timing_section(again)
    assert not any("Resumed" in line for line in report_md._timing_section(first))


def test_init_draws_reach_the_report(make_cfg, tmp_path):
    """Several init draws give one partition, and report.json says how much the draws agreed."""
    result = train_run(make_cfg("dataset=synthetic", "train.epochs=0", "pretrain.init=kmeans", "pretrain.init_draws=3"),
                       tmp_path / "run", progress_enabled=False)
    agreement = result["init"]["draws_agreement"]
    assert 0.0 < agreement <= 1.0
    snapshot = json.loads((tmp_path / "run" / "gmm_init.json").read_text())
    assert snapshot["draws_agreement"] == agreement
    assert len(snapshot["draws_metrics"]) == 3 and all(set(m) == {"acc", "nmi", "ari"} for m in snapshot["draws_metrics"])
