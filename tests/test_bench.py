"""`python -m vade_cli.bench --quick`: every figure is there, positive, and set against its roofline.

Timings are never asserted (the machine is shared); only that the benchmark runs and its numbers
are consistent with each other, so the code cannot rot between real runs.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from vade_cli import bench

STEP_FIGURES = {"roofline", "pretrain_step", "vade_step"}
EVAL_FIGURES = {"eval_roofline", "eval_pass"}


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    """One quick run for the whole module; the thread count it sets is put back afterwards."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--device", "cpu", "--threads", "1", "--batch-sizes", "100,256", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


def test_every_figure_is_there_and_positive(result):
    names = {(f["name"], f["batch_size"]) for f in result["figures"]}
    assert {(n, bs) for n in STEP_FIGURES for bs in (100, 256)} <= names
    assert {n for n, _ in names} == STEP_FIGURES | EVAL_FIGURES
    for f in result["figures"]:
        assert f["samples_per_s"] > 0 and f["median_s"] > 0 and f["roofline_samples_per_s"] > 0
        assert len(f["runs_s"]) == result["settings"]["repeats"]
        assert f["median_s"] == pytest.approx(statistics.median(f["runs_s"]))


def test_ratios_are_figure_over_its_roofline(result):
    by_key = {(f["name"], f["batch_size"]): f for f in result["figures"]}
    for f in result["figures"]:
        roofline = by_key[(f["roofline"], f["batch_size"])]
        assert f["roofline_samples_per_s"] == pytest.approx(roofline["samples_per_s"])
        assert f["ratio"] == pytest.approx(f["samples_per_s"] / roofline["samples_per_s"])
    assert {f["roofline"] for f in result["figures"] if f["name"] in STEP_FIGURES} == {"roofline"}
    assert {f["roofline"] for f in result["figures"] if f["name"] in EVAL_FIGURES} == {"eval_roofline"}


def test_epoch_overhead_and_memory_are_reported(result):
    epoch, memory = result["epoch"], result["memory"]
    assert epoch["loop_s"] > 0 and epoch["bare_s"] > 0 and epoch["epoch_end_s"] > 0
    assert epoch["overhead_pct"] == pytest.approx(100 * (epoch["loop_s"] / epoch["bare_s"] - 1))
    assert epoch["overhead_pct_best"] == pytest.approx(100 * (min(epoch["loop_runs_s"]) / min(epoch["bare_runs_s"]) - 1))
    assert math.isfinite(epoch["projected_full_epoch_overhead_pct"])
    assert memory["n_samples"] == result["settings"]["n_eval"]
    assert memory["peak_rss_bytes"] >= memory["rss_after_import_bytes"] > 0
    assert memory["peak_rss_gib"] == pytest.approx(memory["peak_rss_bytes"] / 2**30)
    assert {t["name"] for t in result["targets"]} >= {"vade_step@100 / roofline", "peak RSS GiB (full run)"}
    assert all(isinstance(t["met"], bool) for t in result["targets"])


def test_run_facts_are_recorded(result):
    assert result["device"] == "cpu" and result["threads"] == 1 and result["quick"] is True
    assert result["torch"] == torch.__version__
    assert result["network"]["hidden"] and result["settings"]["batch_sizes"] == [100, 256]


@pytest.mark.parametrize("bad", ["0,100", "a,b", ","])
def test_bad_batch_sizes_are_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--batch-sizes", bad])
    assert exc.value.code == 2
    assert "batch sizes" in capsys.readouterr().err


def test_projection_pays_the_epoch_end_once_and_per_step_costs_per_step():
    # no per-step overhead: a 0.5 s epoch end over 100 steps of 0.1 s is 5%
    assert bench.projected_overhead(1.0, 0.5, 1.0, steps=10, full_steps=100) == pytest.approx(5.0)
    # 10 ms more per step on 100 ms steps is 10%, whatever the epoch's length
    assert bench.projected_overhead(1.1, 0.0, 1.0, steps=10, full_steps=700) == pytest.approx(10.0)


def test_bf16_and_compile_are_refused_on_the_cpu(capsys):
    # the training code honours device.amp_bf16/compile on CUDA only; a CPU figure "with bf16" would be a lie
    assert bench.main(["--quick", "--device", "cpu", "--bf16"]) == 2
    assert "CUDA-only" in capsys.readouterr().err
