"""Sweeps and tables (`vade_cli.sweeps`): the sweep table (callback and `python -m vade_cli.sweeps.table`),
failed jobs, the pretraining cache, the launchers (submitit's local executor for real), the paper
presets and `python -m vade_cli.sweeps.reproduce --quick`.

Real sweeps run the installed `vade-run -m` in a subprocess with tiny settings; everything that can
be checked on fabricated reports is checked in-process.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import REPO, compose_config, vade_run
from vade_cli import checkpoint, report
from vade_cli.run import train_run
from vade_cli.sweeps import callback, reproduce, table

# One epoch per phase on 200 samples: seconds per job, where process start-up dominates.
TINY_CLI = ["model=small", "pretrain=ae", "pretrain.init=gmm", "pretrain.epochs=1", "train.epochs=1", "report.figures=false", "device=cpu",
            "device.threads=1", "dataset.limit=200"]  # fmt: skip
METRIC_PATHS = {
    "gmm_acc": ("gmm_init", "acc"),
    "acc": ("final", "acc"),
    "nmi": ("final", "nmi"),
    "ari": ("final", "ari"),
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def fake_report(dataset: str, seed: int, acc: float, k: int = 3, **overrides: str) -> dict:
    """A completed job's report.json as run.train_run writes it, reduced to what tables read."""
    return {
        "status": "completed",
        "dataset": {"name": dataset, "n_samples": 100},
        "n_clusters": k,
        "seed": seed,
        "init": {"partition_metrics": {"acc": acc - 0.05}},
        "metrics": {"gmm_init": {"acc": acc - 0.1}, "final": {"acc": acc, "nmi": acc / 2, "ari": acc / 3}},
        "timings": {"total_s": 2.0 + seed},
        "_overrides": {"seed": str(seed), "dataset": dataset, **overrides},
    }


def fake_failure(dataset: str, seed: int, error: str, **overrides: str) -> dict:
    return {
        "status": "failed",
        "error": error,
        "config": {"seed": seed, "dataset": {"name": dataset}, "n_clusters": None},
        "_overrides": {"seed": str(seed), "dataset": dataset, **overrides},
    }


# ---------------------------------------------------------------- pure aggregation


def test_rows_group_by_dataset_and_swept_keys_and_average_over_seeds():
    jobs = [fake_report(ds, s, acc, **{"train.lr": lr})
            for ds in ("a", "b") for lr in ("0.1", "0.2") for s, acc in ((0, 0.5), (1, 0.7), (2, 0.9))]  # fmt: skip
    keys = table.grouping_keys(jobs)
    assert keys == ["train.lr"]  # seed is averaged over; the dataset has its own column
    rows = table.aggregate(jobs, keys)
    assert [(r["dataset"], r["train.lr"]) for r in rows] == [
        ("a", "0.1"),
        ("a", "0.2"),
        ("b", "0.1"),
        ("b", "0.2"),
    ]
    row = rows[0]
    assert (row["runs"], row["seeds"], row["n_samples"], row["n_clusters"]) == (3, "0-2", 100, 3)
    assert row["acc_mean"] == pytest.approx(0.7)
    assert row["acc_std"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert (row["acc_min"], row["acc_max"]) == (0.5, 0.9)
    assert row["gmm_acc_mean"] == pytest.approx(0.6)
    assert row["wall_s_mean"] == pytest.approx(3.0)
    md = table.to_markdown(rows, keys)
    assert "| a | 0.1 | 100 | 3 | 3 | 0-2 | 65.00 ± 20.00 | 60.00 ± 20.00 | 70.00 ± 20.00 | 3/3 | 50.00–90.00 |" in md
    assert "status" not in md.splitlines()[0]  # no failure, no status column


def test_the_table_counts_the_seeds_that_kept_their_initialisation():
    jobs = [fake_report("a", s, 0.8) for s in range(3)]
    jobs[1]["metrics"]["gmm_init"]["acc"] = 0.85  # this seed ended below its own start
    (row,) = table.aggregate(jobs, [])
    assert row["kept_init"] == "2/3"
    assert row["partition_acc_mean"] == pytest.approx(0.75)
    assert "| 2/3 |" in table.to_markdown([row])
    for job in jobs:  # train.epochs=0: the runs stopped at their init, so there is nothing to count
        job["epochs"] = 0
    (row,) = table.aggregate(jobs, [])
    assert row["kept_init"] is None


def test_a_failed_job_is_its_own_row_with_its_error_and_the_rest_stand():
    jobs = [
        fake_report("a", 0, 0.8),
        fake_failure("a", 1, "bad | value\nsecond line"),
        fake_report("a", 2, 0.6),
    ]
    rows = table.aggregate(jobs, [])
    assert [(r["status"], r["runs"], r["seeds"]) for r in rows] == [
        ("completed", 2, "0,2"),
        ("failed", 1, "1"),
    ]
    assert rows[0]["acc_mean"] == pytest.approx(0.7)
    assert rows[1]["acc_mean"] is None and rows[1]["error"] == "bad | value second line"
    assert table.count_failures(jobs) == 1
    md = table.to_markdown(rows)
    assert "| a | failed |" in md and "bad \\| value second line |" in md  # the pipe cannot break the table
    assert read_csv_text(table.to_csv(rows))[1]["error"] == "bad | value second line"


def read_csv_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def with_elbos(jobs: list[dict], elbos: list[float]) -> list[dict]:
    for num, (job, elbo) in enumerate(zip(jobs, elbos)):
        job |= {"final_elbo": elbo, "run_dir": f"sweep/{num}"}
    return jobs


def test_the_label_free_choice_is_named_beside_the_best_acc_job():
    jobs = with_elbos([fake_report("a", 0, acc, **{"train.lr": lr}) for acc, lr in ((0.9, "0.1"), (0.6, "0.2"), (0.7, "0.3"))],
                      [-80.0, -70.0, -75.0])  # fmt: skip
    note = table.selection_note(jobs, ["train.lr"])
    (line,) = [ln for ln in note.splitlines() if ln.startswith("- ")]
    assert line.startswith("- a: job 1 (train.lr=0.2 seed=0), final ELBO -70")
    assert "ACC 60.00 %; best ACC: job 0 (train.lr=0.1 seed=0), ACC 90.00 %" in line
    for job in jobs:  # no labels: the choice alone
        job["metrics"]["final"]["acc"] = None
    assert "ACC" not in table.selection_note(jobs, ["train.lr"])
    assert table.selection_note(jobs[:1]) == ""  # nothing to choose between


def test_the_label_free_choice_is_made_per_dataset_never_across_them():
    """ELBOs of different data are not comparable: each dataset gets its own choice, named once."""
    jobs = with_elbos([fake_report(ds, s, acc) for ds, s, acc in
                       (("digits", 0, 0.3), ("synthetic", 0, 0.99), ("digits", 1, 0.35), ("synthetic", 1, 0.9))],
                      [-850.0, -1200.0, -860.0, -1100.0])  # fmt: skip
    note = table.selection_note(jobs)
    assert [ln for ln in note.splitlines() if ln.startswith("- ")] == [
        "- digits: job 0 (seed=0), final ELBO -850.0000, ACC 30.00 %; best ACC: job 2 (seed=1), ACC 35.00 %",
        "- synthetic: job 3 (seed=1), final ELBO -1100.0000, ACC 90.00 %; best ACC: job 1 (seed=0), ACC 99.00 %",
    ]
    assert note.count("Label-free choice") == 1
    # A swept dataset.* key is other data too; a failed job or one without an ELBO is never chosen.
    jobs = with_elbos([fake_report("digits", 0, 0.3, **{"dataset.limit": n}) for n in ("100", "100", "200")],
                      [-10.0, -20.0, -1.0])  # fmt: skip
    jobs.append(fake_failure("digits", 1, "boom", **{"dataset.limit": "100"}) | {"final_elbo": 0.0})
    jobs.append(fake_report("digits", 2, 0.3, **{"dataset.limit": "100"}) | {"final_elbo": None})
    lines = [ln for ln in table.selection_note(jobs, ["dataset.limit"]).splitlines() if ln.startswith("- ")]
    assert lines == ["- digits dataset.limit=100: job 0 (seed=0), final ELBO -10.0000, ACC 30.00 %; "
                     "best ACC: job 0 (seed=0), ACC 30.00 %"]  # fmt: skip


def test_seed_lists_are_compressed_into_spans():
    assert table.seeds_text([4, 0, 1, 2, 7, 8, 10]) == "0-2,4,7-8,10"
    assert table.seeds_text([None, 3]) == "3"


def test_callback_writes_the_table_and_counts_failures(tmp_path):
    for num, job in enumerate([fake_report("a", 0, 0.8), fake_failure("a", 1, "boom")]):
        (tmp_path / str(num) / ".hydra").mkdir(parents=True)
        overrides = [f"{k}={v}" for k, v in job.pop("_overrides").items()]
        (tmp_path / str(num) / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
        (tmp_path / str(num) / "report.json").write_text(json.dumps(job))
    hook = callback.SweepTableCallback()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    hook.on_multirun_start(config)
    hook.on_multirun_end(config)
    assert callback.LAST_SWEEP_FAILURES == 1
    assert "| a | failed |" in (tmp_path / "table.md").read_text()
    hook.on_multirun_start(config)  # the next sweep starts from zero
    assert callback.LAST_SWEEP_FAILURES == 0


def test_a_job_that_crashed_unexpectedly_still_leaves_a_failed_report(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    crashed = JobReturn(cfg=OmegaConf.create({"seed": 3}), status=JobStatus.FAILED)
    crashed.return_value = RuntimeError("CUDA error: an illegal memory access\nwas encountered")
    config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    callback.SweepTableCallback().on_job_end(config, crashed)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and report["config"]["seed"] == 3
    assert report["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"


# ---------------------------------------------------------------- real sweeps


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real 2 seeds x 2 datasets sweep, shared by the tests that read its table."""
    root = tmp_path_factory.mktemp("tiny_sweep")
    sweep = root / "sweep"
    proc = vade_run(
        ["-m", "seed=0,1", "dataset=digits,synthetic", *TINY_CLI, f"hydra.sweep.dir={sweep}"], cwd=root
    )
    return sweep, proc


def test_sweep_table_rows_match_the_jobs_reports(tiny_sweep):
    sweep, proc = tiny_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((sweep / str(n) / "report.json").read_text()) for n in range(4)]
    rows = read_csv(sweep / "table.csv")
    assert [r["dataset"] for r in rows] == ["digits", "synthetic"]
    for row in rows:
        mine = [r for r in reports if r["dataset"]["name"] == row["dataset"]]
        assert (row["status"], row["runs"], row["seeds"], row["n_samples"]) == (
            "completed",
            "2",
            "0-1",
            "200",
        )
        assert (
            int(row["n_clusters"]) == mine[0]["n_clusters"] == {"digits": 10, "synthetic": 5}[row["dataset"]]
        )
        for name, (stage, metric) in METRIC_PATHS.items():
            values = [r["metrics"][stage][metric] for r in mine]
            assert float(row[f"{name}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(row[f"{name}_std"]) == pytest.approx(statistics.stdev(values))
        accs = [r["metrics"]["final"]["acc"] for r in mine]
        assert (float(row["acc_min"]), float(row["acc_max"])) == pytest.approx((min(accs), max(accs)))
        walls = [r["timings"]["total_s"] for r in mine]
        assert float(row["wall_s_mean"]) == pytest.approx(statistics.fmean(walls))
    md = (sweep / "table.md").read_text()
    assert "4 jobs: 4 completed, 0 failed" in md and "| digits | 200 | 10 | 2 | 0-1 |" in md
    assert "table.md" in proc.stderr  # the callback says where the table went
    # The label-free choice: one line per dataset, among that dataset's jobs only, printed once.
    assert md.count("Label-free choice") == proc.stderr.count("Label-free choice") == 1
    for name in ("digits", "synthetic"):
        mine = [n for n, r in enumerate(reports) if r["dataset"]["name"] == name]
        chosen = max(mine, key=lambda n: reports[n]["final_elbo"])
        line = f"- {name}: job {chosen} (seed={reports[chosen]['seed']}), final ELBO "
        assert md.count(line) == proc.stderr.count(line) == 1
    assert (sweep / "table.png").read_bytes().startswith(b"\x89PNG")


def test_table_command_rebuilds_the_same_table_from_the_folder(tiny_sweep):
    """`python -m vade_cli.sweeps.table DIR` as a user types it, with every warning an error: the
    module runs once (no import circle makes runpy find it imported already)."""
    sweep, _ = tiny_sweep
    expected = {name: (sweep / name).read_text() for name in ("table.md", "table.csv")}
    for name in (*expected, "table.png"):
        (sweep / name).unlink()
    proc = subprocess.run([sys.executable, "-W", "error", "-m", "vade_cli.sweeps.table", str(sweep)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr
    assert {name: (sweep / name).read_text() for name in expected} == expected
    assert (sweep / "table.png").read_bytes().startswith(b"\x89PNG")
    assert proc.stdout == expected["table.md"]


def test_the_sweeps_package_imports_point_one_way():
    """callback -> table -> figure, reproduce -> table, lazy imports included: no circle, and
    `python -m vade_cli.sweeps.table` never finds its own module imported already."""
    import ast

    edges = {}
    for path in sorted((REPO / "vade_cli" / "sweeps").glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        edges[path.stem] = {n.split(".")[2] for n in names if n.startswith("vade_cli.sweeps.")}
    assert edges == {"__init__": set(), "callback": {"table"}, "figure": set(), "reproduce": {"table"}, "table": {"figure"}}


def test_make_targets_name_modules_that_exist():
    """`make table`, `make reproduce-table`...: each `python -m` module in the Makefile can be run."""
    import importlib.util
    import re

    modules = re.findall(r"\$\(PYTHON\) -m (vade_cli[\w.]*)", (REPO / "Makefile").read_text())
    assert "vade_cli.sweeps.table" in modules and "vade_cli.sweeps.reproduce" in modules
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None and (spec.submodule_search_locations is None
                                     or importlib.util.find_spec(f"{module}.__main__")), module


def test_an_interrupted_sweep_can_still_be_tabulated(tiny_sweep, tmp_path):
    sweep, _ = tiny_sweep
    partial = tmp_path / "partial"
    shutil.copytree(sweep, partial, ignore=shutil.ignore_patterns("table.*"))
    (partial / "3" / "report.json").unlink()  # job 3 (synthetic, seed 1) was killed mid-run
    result = table.write_table(partial)
    assert result.failures == 1
    rows = read_csv(partial / "table.csv")
    assert [(r["dataset"], r["status"], r["runs"]) for r in rows] == [
        ("digits", "completed", "2"), ("synthetic", "completed", "1"), ("synthetic", "incomplete", "1")
    ]  # fmt: skip
    assert rows[2]["error"] == table.NO_REPORT and rows[2]["seeds"] == "1"


def test_table_command_names_a_folder_without_jobs(tmp_path):
    assert table.main([str(tmp_path)]) == 2
    assert table.main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow  # a whole sweep in subprocesses: make test-slow
def test_a_failing_job_is_a_failed_row_and_vade_run_exits_1(tmp_path):
    """dataset=file without a path fails validation; the synthetic job's numbers still stand."""
    sweep = tmp_path / "sweep"
    proc = vade_run(["-m", "dataset=synthetic,file", *TINY_CLI, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 sweep job(s) failed" in proc.stderr
    rows = {r["dataset"]: r for r in read_csv(sweep / "table.csv")}
    assert rows["synthetic"]["status"] == "completed" and float(rows["synthetic"]["acc_mean"]) > 0
    assert rows["file"]["status"] == "failed" and "n_clusters is not set" in rows["file"]["error"]
    assert "| file | failed |" in (sweep / "table.md").read_text()


@pytest.mark.slow  # a whole sweep in subprocesses: make test-slow
def test_submitit_local_sweep_runs_jobs_in_their_own_processes_and_is_tabulated(tmp_path):
    sweep = tmp_path / "sweep"
    proc = vade_run(
        ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0,1", "dataset=synthetic",
         *TINY_CLI, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2  # one executor process per job
    rows = read_csv(sweep / "table.csv")
    assert [(r["dataset"], r["status"], r["runs"], r["seeds"]) for r in rows] == [
        ("synthetic", "completed", "2", "0-1")
    ]


# ---------------------------------------------------------------- pretraining cache


def test_pretraining_cache_hits_for_the_same_data_model_and_seed_only(make_cfg, tmp_path):
    base = (
        "device.threads=1",
        "dataset=synthetic",
        "dataset.n_samples=300",
        "pretrain.epochs=1",
        "train.epochs=1",
    )
    cache = tmp_path / "cache" / "pretrain"
    first = train_run(make_cfg(*base), tmp_path / "runs" / "first", progress_enabled=False)
    assert not first["pretrain_cache_hit"] and len(list(cache.glob("*.pt"))) == 1

    again = train_run(make_cfg(*base, "train.lr=0.001"), tmp_path / "runs" / "again", progress_enabled=False)
    assert again["pretrain_cache_hit"]  # VaDE's own settings are not part of the key
    assert again["metrics"]["gmm_init"] == first["metrics"]["gmm_init"]  # the same autoencoder, the same GMM
    with report.console.capture() as captured:
        report.print_summary(again)
    assert "(cached autoencoder)" in captured.get()

    for change in ("dataset.limit=200", "model.latent_dim=5", "seed=1"):
        run = train_run(make_cfg(*base, change), tmp_path / "runs" / change, progress_enabled=False)
        assert not run["pretrain_cache_hit"], change
    assert len(list(cache.glob("*.pt"))) == 4

    off = train_run(
        make_cfg(*base, "pretrain.cache=false"), tmp_path / "runs" / "off", progress_enabled=False
    )
    assert not off["pretrain_cache_hit"] and len(list(cache.glob("*.pt"))) == 4  # neither read nor written


def test_concurrent_writers_of_one_cache_key_leave_one_valid_file(tmp_path):
    path = tmp_path / "pretrain" / "samekey.pt"

    def write(value: float) -> None:
        for _ in range(5):
            checkpoint.save(
                path, {"kind": "autoencoder", "model": {"w": torch.full((300, 300), value)}, "history": []}
            )

    threads = [threading.Thread(target=write, args=(float(i),)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    weights = checkpoint.load(path, kind="autoencoder")["model"]["w"]
    assert weights.unique().numel() == 1  # wholly one writer's file, never a mix
    assert [p.name for p in path.parent.iterdir()] == ["samekey.pt"]  # no temporary files left behind


# ---------------------------------------------------------------- presets and reproduce


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("mnist", {"dataset.name": "mnist", "n_clusters": 10, "train.epochs": 300, "train.batch_size": 100,
                   "train.lr": 0.002, "train.lr_decay": 0.9, "train.lr_decay_every": 10, "train.lr_min": 0.0002}),
        ("har", {"dataset.name": "har", "n_clusters": 6, "train.epochs": 120, "train.lr": 0.002,
                 "train.prior_lr": 2e-5, "train.lr_decay": 0.9, "train.lr_decay_every": 10, "model.obs_variance": 0.1}),
        ("reuters10k", {"dataset.name": "reuters10k", "n_clusters": 4, "train.epochs": 15, "train.lr": 0.002,
                        "train.lr_decay": 0.5, "train.lr_decay_every": 5, "model.obs_variance": 0.5}),
        ("fashion_mnist", {"dataset.name": "fashion_mnist", "n_clusters": 10, "train.epochs": 300,
                           "pretrain.name": "dec_adam", "pretrain.optimizer": "adam", "pretrain.lr": 0.001,
                           "pretrain.init_draws": 5}),
        ("usps", {"dataset.name": "usps", "n_clusters": 10, "train.epochs": 300}),
    ],
)  # fmt: skip
def test_experiment_presets_hold_the_paper_settings(preset, expected, tmp_path):
    cfg = compose_config([f"experiment={preset}"], tmp_path)
    assert {key: OmegaConf.select(cfg, key) for key in expected} == expected
    assert list(cfg.model.hidden) == [500, 500, 2000] and cfg.model.latent_dim == 10


@pytest.mark.parametrize(
    ("launcher", "target"),
    [("slurm", "submitit_launcher.SlurmLauncher"), ("joblib", "joblib_launcher.JoblibLauncher")],
)
def test_launchers_compose_with_settings_to_override(launcher, target):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="vade_cli.conf", version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True
        )
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":  # what a cluster user sets: present, sensible, overridable
        assert "partition" in cfg.hydra.launcher
        for key in ("gpus_per_node", "timeout_min", "mem_gb", "cpus_per_task"):
            assert cfg.hydra.launcher[key] > 0


def test_published_numbers_sit_beside_the_measured_ones():
    row = table.aggregate([fake_report("mnist", s, acc, k=10) for s, acc in ((0, 0.90), (1, 0.92))])
    rows = reproduce.comparison_rows(row)
    assert (rows[0]["paper_name"], rows[0]["paper_vade_acc"], rows[0]["paper_dec_acc"]) == (
        "MNIST",
        94.46,
        84.30,
    )
    md = reproduce.render_markdown(rows, {"har": "HAR files not found"}, [0, 1], "paper")
    assert "| mnist | MNIST | 100 | 10 | 2 | 0-1 | 91.00 ± 1.41 | 92.00 | 94.46 |" in md
    assert "IJCAI 2017, Table 2" in md and "best run" in md and "mean ± std" in md
    assert "- har: HAR files not found" in md and "Reuters (VaDE 79.38)" in md
    fields = read_csv_text(reproduce.render_csv(rows))[0]
    assert (fields["paper_vade_acc"], fields["acc_max"]) == ("94.46", "0.92")


def test_a_dataset_without_files_is_skipped_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("VADE_DATA_DIR", str(tmp_path))  # an empty data folder: nothing to find
    assert "not found" in reproduce.missing_reason(reproduce.PAPER, "har")
    assert reproduce.missing_reason(reproduce.QUICK, "digits") is None  # digits ship with scikit-learn


def test_one_sweep_covers_every_present_preset():
    cmd = reproduce.sweep_command(
        reproduce.PAPER, ["mnist", "usps"], [0, 1, 2], Path("/tmp/my runs"), ["device=cuda"]
    )
    assert cmd[1:4] == ["-m", "vade_cli.cli", "-m"]
    assert cmd[4:] == ["experiment=mnist,usps", "seed=0,1,2", "device=cuda", "hydra.sweep.dir='/tmp/my runs'"]


def test_the_default_recipe_table_runs_what_a_user_types_on_the_papers_datasets(tmp_path):
    """`make reproduce-table` (recipe default): `vade-run dataset=NAME`, exactly, on every dataset a preset has."""
    assert set(reproduce.DEFAULT.names) == set(reproduce.PAPER.names) and reproduce.DEFAULT.settings == ()
    job = reproduce.compose_job(reproduce.DEFAULT, "usps", [])
    typed = compose_config(["dataset=usps"], tmp_path)
    assert {k: job[k] for k in job if k != "paths"} == {k: typed[k] for k in typed if k != "paths"}
    assert job.train != reproduce.compose_job(reproduce.PAPER, "usps", []).train  # the preset: another recipe
    cmd = reproduce.sweep_command(reproduce.DEFAULT, ["usps", "mnist"], [0, 1], Path("/tmp/r"), [])
    assert cmd[4:6] == ["dataset=usps,mnist", "seed=0,1"]
    assert "the default recipe (`vade-run dataset=NAME`)" in reproduce.render_markdown([], {}, [0, 1], "default")


def test_the_same_reproduce_command_continues_in_the_same_folder():
    """Interrupted overnight, `make reproduce-table SEEDS=...` again finds the jobs it finished (kept by the CLI)."""
    args = reproduce.parse_args(["--seeds", "0,1,2"])
    assert (args.recipe, args.quick) == ("default", False)
    first = reproduce.default_out("default", args.seeds)
    assert first == reproduce.default_out("default", [0, 1, 2]) == Path("multirun/reproduce/default-seeds-0-1-2")
    assert reproduce.default_out("paper", [0, 1, 2]) != first != reproduce.default_out("default", [0, 1])
    other = reproduce.default_out("default", [0, 1, 2], ["pretrain.epochs=5"])  # other settings: other checkpoints
    assert other != first and other == reproduce.default_out("default", [0, 1, 2], ["pretrain.epochs=5"])


@pytest.mark.slow  # a whole sweep in subprocesses: make test-slow
def test_reproduce_quick_runs_end_to_end(tmp_path, monkeypatch):
    """`python -m vade_cli.sweeps.reproduce --quick` (main() here; the sweep itself is a real vade-run)."""
    monkeypatch.chdir(tmp_path)  # the sweep's pretraining cache lands in ./outputs
    out = tmp_path / "reproduce"
    assert reproduce.main(["--quick", "--seeds", "0,1", "--out", str(out)]) == 0
    md = (out / "reproduce.md").read_text()
    assert "IJCAI 2017, Table 2" in md and "Quick mode" in md
    rows = read_csv(out / "reproduce.csv")
    assert [(r["dataset"], r["status"], r["runs"]) for r in rows] == [("digits", "completed", "2"),
                                                                     ("synthetic", "completed", "2")]  # fmt: skip
    assert (out / "table.md").is_file()  # the sweep's own table, from the callback


def test_the_progress_line_counts_reports_on_disk_and_extrapolates_this_starts_pace(tmp_path):
    import os

    (tmp_path / "multirun.yaml").write_text("hydra: {overrides: {task: ['seed=0,1,2,3', 'dataset=digits,usps']}}\n")
    assert callback.planned_jobs(tmp_path) == 8
    started = (tmp_path / "multirun.yaml").stat().st_mtime
    kept = tmp_path / "0" / "report.json"  # finished before this start
    kept.parent.mkdir()
    kept.write_text(json.dumps({"status": "completed"}))
    os.utime(kept, (started - 100, started - 100))
    assert callback.progress_line(tmp_path, 8, started + 60) == "sweep: 1/8 jobs done"  # no pace yet
    for job, status in (("1", "completed"), ("2", "failed")):
        (tmp_path / job).mkdir()
        (tmp_path / job / "report.json").write_text(json.dumps({"status": status}))
        os.utime(tmp_path / job / "report.json", (started + 30, started + 30))
    # two jobs ran in this start's 10 minutes: five more take 25
    assert callback.progress_line(tmp_path, 8, started + 600) == "sweep: 3/8 jobs done (1 failed), about 25 min left"


@pytest.mark.slow  # a whole sweep in subprocesses: make test-slow
def test_a_sweep_started_again_in_its_folder_keeps_its_finished_jobs(tmp_path):
    args = ["-m", "dataset=synthetic", *TINY_CLI, f"paths.output_root={tmp_path / 'out'}", f"hydra.sweep.dir={tmp_path / 'sw'}"]
    first = vade_run([*args, "seed=0"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report_0 = tmp_path / "sw" / "0" / "report.json"
    written = report_0.stat().st_mtime_ns
    again = vade_run([*args, "seed=0,1"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    said = again.stdout + again.stderr
    assert "job already completed" in said and report_0.stat().st_mtime_ns == written
    assert json.loads((tmp_path / "sw" / "1" / "report.json").read_text())["status"] == "completed"
    assert "sweep: 2/2 jobs done" in said
    # The folder reused with other settings: job 0's seed-0 run (checkpoints and all) is set aside, not resumed.
    other = vade_run([*args, "seed=2"], cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    report = json.loads(report_0.read_text())
    assert (report["config"]["seed"], report["timings"]["resumed_in"]) == (2, None)
    aside = tmp_path / "sw" / ".replaced" / "0-0"
    assert json.loads((aside / "report.json").read_text())["config"]["seed"] == 0
    assert (aside / "checkpoints" / "last.pt").is_file() and "other settings" in other.stdout + other.stderr
    assert [r["seeds"] for r in read_csv(tmp_path / "sw" / "table.csv")] == ["1-2"]  # the set-aside run is no row
