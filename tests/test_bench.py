"""`python -m vade_cli.bench --quick`: every figure is there, positive, and set against both rooflines.

Timings are never asserted (the machine is shared); only that the benchmark runs and its numbers
are consistent with each other, so the code cannot rot between real runs.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from vade_cli.bench import cli, results
from vade_cli.bench.timing import Clock, Contender, measure
from vade_cli.device import Compute

ROOFLINES = {"roofline_fp32", "roofline_bf16"}
EVAL_ROOFLINES = {"eval_roofline_fp32", "eval_roofline_bf16"}
STEP_FIGURES = ROOFLINES | {"pretrain_step", "vade_step"}
EVAL_FIGURES = EVAL_ROOFLINES | {"eval_pass"}


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    """One quick run for the whole module; the thread count it sets is put back afterwards."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert cli.main(["--quick", "--device", "cpu", "--threads", "1", "--batch-sizes", "100,256", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


def test_every_figure_is_there_and_positive(result):
    names = {(f["name"], f["batch_size"]) for f in result["figures"]}
    assert {(n, bs) for n in STEP_FIGURES for bs in (100, 256)} <= names
    assert {n for n, _ in names} == STEP_FIGURES | EVAL_FIGURES
    for f in result["figures"]:
        assert f["samples_per_s"] > 0 and f["median_s"] > 0
        assert len(f["runs_s"]) == result["settings"]["repeats"]
        assert f["median_s"] == pytest.approx(statistics.median(f["runs_s"]))


def test_every_figure_is_set_against_both_rooflines(result):
    by_key = {(f["name"], f["batch_size"]): f for f in result["figures"]}
    for f in result["figures"]:
        assert set(f["rooflines"]) == {"fp32", "bf16"}
        for precision, r in f["rooflines"].items():
            roofline = by_key[(r["name"], f["batch_size"])]
            assert roofline["precision"] == precision
            assert r["samples_per_s"] == pytest.approx(roofline["samples_per_s"])
            assert r["ratio_of_medians"] == pytest.approx(f["samples_per_s"] / roofline["samples_per_s"])
            # the headline pairs each repeat with the roofline's timing in the same repeat (same work size)
            pairs = [rs / fs for fs, rs in zip(f["runs_s"], roofline["runs_s"], strict=True)]
            assert r["ratio"] == pytest.approx(statistics.median(pairs))
    steps = {r["name"] for f in result["figures"] if f["name"] in STEP_FIGURES for r in f["rooflines"].values()}
    evals = {r["name"] for f in result["figures"] if f["name"] in EVAL_FIGURES for r in f["rooflines"].values()}
    assert steps == ROOFLINES and evals == EVAL_ROOFLINES


def test_product_figures_run_in_the_precision_amp_bf16_resolves_to(result):
    # the default, auto, is what a run gets: bf16 where this CPU has it natively, else float32
    expected = "bf16" if Compute.from_config(None, torch.device("cpu")).bf16 else "fp32"
    assert result["amp_bf16"] == "auto" and result["precision"] == expected
    for f in result["figures"]:
        if f["name"] not in ROOFLINES | EVAL_ROOFLINES:
            assert f["precision"] == expected


def test_targets_include_the_three_targets(result):
    targets = {t["name"]: t for t in result["targets"]}
    assert {"vade_step@100 / fp32 roofline", "eval_pass samples/s",
            "epoch bookkeeping % of a default digits run"} <= set(targets)  # fmt: skip
    assert all(isinstance(t["met"], bool) for t in result["targets"])


def test_digits_run_uses_the_default_config_and_its_checkpoint_policy(result):
    d = result["digits_run"]
    assert (d["dataset"], d["n_samples"], d["batch_size"], d["steps_per_epoch"]) == ("digits", 1797, 100, 18)
    full = d["full_run"]
    assert (full["epochs"], full["checkpoint_every_s"]) == (100, 60.0)
    assert full["checkpoints"] >= 1  # the phase end's, at least: not one an epoch unless 100 epochs take 100 minutes
    assert d["loop_s"] > 0 and d["bare_s"] > 0 and d["epoch_s"] > 0 and d["checkpoint_s"] > 0 and d["callback_s"] > 0
    assert math.isfinite(d["projected_overhead_pct"]) and math.isfinite(d["projected_overhead_pct_best"])
    # the headline pairs each timed fit with the bare steps of its own repeat
    assert len(d["projected_overhead_pct_repeats"]) == result["settings"]["run_repeats"]
    assert d["projected_overhead_pct"] == pytest.approx(statistics.median(d["projected_overhead_pct_repeats"]))
    pairs = [100 * (lo / b - 1) for lo, b in zip(d["loop_runs_s"], d["bare_runs_s"], strict=True)]
    assert d["overhead_pct_paired"] == pytest.approx(statistics.median(pairs))
    assert d["projected_timed_parts_pct"] > 0  # callbacks and a checkpoint cost something, always


def test_memory_is_reported(result):
    memory = result["memory"]
    assert memory["n_samples"] == result["settings"]["n_eval"]
    assert memory["peak_rss_bytes"] >= memory["rss_after_import_bytes"] > 0
    assert memory["peak_rss_gib"] == pytest.approx(memory["peak_rss_bytes"] / 2**30)
    assert "peak RSS GiB (full run)" in {t["name"] for t in result["targets"]}


def test_run_facts_are_recorded(result):
    assert result["device"] == "cpu" and result["threads"] == 1 and result["quick"] is True
    assert result["torch"] == torch.__version__
    assert result["network"]["hidden"] and result["settings"]["batch_sizes"] == [100, 256]


@pytest.mark.parametrize("bad", ["0,100", "a,b", ","])
def test_bad_batch_sizes_are_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(["--batch-sizes", bad])
    assert exc.value.code == 2
    assert "batch sizes" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--repeats", "--run-repeats", "--steps", "--threads"])
def test_counts_must_be_positive_integers(flag, capsys):
    for bad in ("0", "x"):
        with pytest.raises(SystemExit) as exc:
            cli.parse_args([flag, bad])
        assert exc.value.code == 2
        assert "must be a positive integer" in capsys.readouterr().err


def test_amp_bf16_flag_becomes_the_run_override():
    for value in ("auto", "true", "false"):
        assert f"device.amp_bf16={value}" in cli.config_overrides(cli.parse_args(["--amp-bf16", value]))
    with pytest.raises(SystemExit):
        cli.parse_args(["--amp-bf16", "yes"])


def test_checkpoints_follow_the_time_based_policy():
    # 100 epochs of 0.5 s, a checkpoint every 60 s: at 60 s, 120 s... and the phase end
    assert results.checkpoints_written(100, 0.5, 0.0, 60.0) == 1
    assert results.checkpoints_written(100, 1.0, 0.0, 60.0) == 2  # epoch 60, epoch 100
    assert results.checkpoints_written(10, 1.0, 0.0, 0.0) == 10  # every_s 0: every epoch


def test_projection_pays_start_up_once_epochs_every_epoch_and_checkpoints_as_written():
    # 10 ms over a 100 ms bare epoch is 10%, whatever the length
    assert results.projected_run(0.0, 0.11, 0.0, 0.1, 100, 60.0)["overhead_pct"] == pytest.approx(10.0)
    # a 0.5 s start-up and one 0.5 s checkpoint over 100 bare epochs of 0.1 s: 10%
    run = results.projected_run(0.5, 0.1, 0.5, 0.1, 100, 60.0)
    assert run["checkpoints"] == 1 and run["overhead_pct"] == pytest.approx(10.0)


def test_paired_speedup_cancels_a_slow_stretch_that_hits_both_halves_of_a_repeat():
    product = Contender("product", lambda: None, lambda: None, samples=100, seconds=[1.0, 4.0, 2.0])
    roofline = Contender("roofline", lambda: None, lambda: None, samples=100, seconds=[1.5, 6.0, 9.0])
    # every repeat but the last saw the product 1.5x faster; the medians (2.0 and 6.0) fall on different repeats
    assert results.paired_speedup(product, roofline) == pytest.approx(1.5)
    assert product.samples_per_s() / roofline.samples_per_s() == pytest.approx(3.0)


def test_repeats_alternate_which_contender_goes_first():
    """An order cost (the one after a checkpoint write pays for its flush) lands on each in turn."""
    order: list[str] = []
    contenders = [Contender(n, lambda n=n: order.append(n), lambda: None, 1) for n in ("loop", "bare")]
    measure(contenders, 4, Clock(torch.device("cpu")))
    assert order == ["loop", "bare", "bare", "loop", "loop", "bare", "bare", "loop"]
    assert [len(c.seconds) for c in contenders] == [4, 4]


def test_compile_without_a_compiler_is_refused_before_timing(capsys, monkeypatch):
    # device.compile on the CPU builds C++ kernels; the bench checks for a compiler as a run does
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert cli.main(["--quick", "--device", "cpu", "--compile"]) == 2
    assert "device.compile" in capsys.readouterr().err


def test_the_digits_run_gets_more_repeats_than_a_throughput():
    """Its figure is a difference of two noisy timings: by default three pairs for every throughput repeat."""
    assert cli.parse_args(["--repeats", "4"]).run_repeats == 3 * 4
    assert cli.parse_args(["--repeats", "4", "--run-repeats", "7"]).run_repeats == 7
