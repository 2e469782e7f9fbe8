"""Interruptions, kills and NaNs: a run never loses finished work or leaves a corrupt file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import TINY, compose_config, run_cli, vade_run
from vade_cli import checkpoint, report, train
from vade_cli.errors import CheckpointError, Interrupted, TrainingDiverged
from vade_cli.model import VaDE
from vade_cli.run import train_run

SYNTH = ["dataset=synthetic", "dataset.n_samples=300", "pretrain.epochs=3", "train.epochs=4", "pretrain.cache=false"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run that every interrupted-and-resumed run must match exactly."""
    root = tmp_path_factory.mktemp("reference")
    result = train_run(compose_config([*TINY, *SYNTH], root), root / "ref", progress_enabled=False)
    return {**result, "run_dir": root / "ref"}


def signal_self_on_call(monkeypatch, method: str, call: int, signum=signal.SIGTERM):
    """Patch VaDE.<method> so that its `call`-th invocation sends `signum` to this process."""
    original = getattr(VaDE, method)
    count = {"n": 0}

    def patched(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), signum)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(VaDE, method, patched)


@pytest.mark.parametrize(
    "method,call",
    [("autoencoder_loss", 2), ("autoencoder_loss", 4), ("negative_elbo", 1), ("negative_elbo", 5), ("negative_elbo", 10)],
    ids=["pretrain-epoch1", "pretrain-epoch2-mid", "train-first-step", "train-epoch2-mid", "train-last-epoch"],
)
def test_interrupted_then_resumed_equals_uninterrupted(make_cfg, tmp_path, monkeypatch, method, call, reference):

    with monkeypatch.context() as patch:
        signal_self_on_call(patch, method, call)
        with pytest.raises(Interrupted, match="SIGTERM"):
            train_run(make_cfg(*SYNTH), tmp_path / "run", progress_enabled=False)
    assert not (tmp_path / "run" / "report.json").exists()
    resumed = train_run(make_cfg(*SYNTH), tmp_path / "run", progress_enabled=False)

    assert resumed["metrics"] == reference["metrics"]
    assert resumed["final_elbo"] == reference["final_elbo"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert lines == (reference["run_dir"] / "metrics.jsonl").read_text().splitlines()


@pytest.mark.slow  # two real vade-run processes
def test_sigterm_subprocess_then_vade_run_resume(tmp_path):
    """The real command: SIGTERM mid-training prints how to resume; `resume=` finishes with the same numbers."""
    args = ["device=cpu", "model=small", "pretrain=ae", "pretrain.init=gmm", *SYNTH[:-2], "pretrain.epochs=2", "train.epochs=40", "report.figures=false"]
    ref = vade_run([*args, f"hydra.run.dir={tmp_path}/ref"], cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr[-1500:]

    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    exe = os.path.join(os.path.dirname(sys.executable), "vade-run")
    proc = subprocess.Popen([exe, *args, f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        log = run_dir / "metrics.jsonl"
        if log.exists() and '"phase": "train"' in log.read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-1500:]
    assert f"vade-run resume={run_dir}" in err and len(err.strip().splitlines()[-1]) > 0
    assert (run_dir / "checkpoints" / "last.pt").is_file() and not (run_dir / "report.json").exists()

    resumed = vade_run([f"resume={run_dir}", f"hydra.run.dir={tmp_path}/resume-call"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    a = json.loads((tmp_path / "ref" / "report.json").read_text())
    b = json.loads((run_dir / "report.json").read_text())
    assert a["metrics"] == b["metrics"] and a["final_elbo"] == b["final_elbo"]


WRITER = """
import sys, torch
from vade_cli import checkpoint
path, json_path = sys.argv[1], sys.argv[2]
big = {v: torch.full((400_000,), float(v)) for v in (1, 2)}
i = 0
print("ready", flush=True)
while True:
    v = 1 + i % 2
    checkpoint.save(path, {"kind": "train", "version": v, "weights": big[v]})
    checkpoint.atomic_write_json(json_path, {"version": v, "values": [v] * 20000})
    i += 1
"""


@pytest.mark.slow  # repeated real kills of a subprocess
def test_sigkill_never_leaves_a_corrupt_file(tmp_path):
    """Kill a writer at random moments: each file is always a whole old or a whole new version."""
    path, json_path = tmp_path / "last.pt", tmp_path / "report.json"
    checked = 0
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(json_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.037 * attempt)
        proc.kill()
        proc.wait()
        if path.exists() and json_path.exists():
            checked += 1
            payload = checkpoint.load(path, kind="train")
            assert torch.equal(payload["weights"], torch.full((400_000,), float(payload["version"])))
            doc = json.loads(json_path.read_text())
            assert doc["values"] == [doc["version"]] * 20000
    assert checked >= 6  # the kills landed after the first writes, so the checks above really ran


def test_truncated_and_foreign_checkpoints_are_named(tmp_path):
    good = tmp_path / "good.pt"
    checkpoint.save(good, {"kind": "train", "x": torch.ones(1000)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": torch.ones(3)}, foreign)
    for bad in (truncated, foreign):
        with pytest.raises(CheckpointError, match=bad.name):
            checkpoint.load(bad)


def _poison_from(monkeypatch, first: int, last: float) -> None:
    """NaN in the input of VaDE's steps number `first` to `last` (counted from 1)."""
    original = VaDE.negative_elbo
    calls = {"n": 0}

    def poisoned(self, x, eps, anchor=None):
        calls["n"] += 1
        if first <= calls["n"] <= last:
            x = x.clone()
            x[0, 0] = float("nan")
        return original(self, x, eps, anchor)

    monkeypatch.setattr(VaDE, "negative_elbo", poisoned)


def test_one_nan_step_restarts_the_phase_from_its_last_good_epoch_with_a_smaller_lr(make_cfg, tmp_path, monkeypatch, caplog):
    _poison_from(monkeypatch, 7, 7)  # epoch 3 of 3-step epochs, its first step
    cfg = make_cfg(*SYNTH, "train.epochs=4", "train.warmup_epochs=0", "train.lr_decay=1.0")
    with caplog.at_level("WARNING"):
        result = train_run(cfg, tmp_path / "run", progress_enabled=False)
    assert result["status"] == "completed" and result["epochs"] == 4
    assert "restarted at epoch 1 with the lr x0.1" in caplog.text  # small data: the last copy is the phase's start
    lrs = [row["lr"] for row in report.read_metrics_log(tmp_path / "run") if row["phase"] == "train"]
    assert lrs == pytest.approx([cfg.train.lr * 0.1] * 4)


def test_nan_that_persists_ends_in_one_message_and_keeps_the_last_good_checkpoint(make_cfg, tmp_path, monkeypatch):
    _poison_from(monkeypatch, 7, float("inf"))
    with pytest.raises(TrainingDiverged, match=r"NaN/inf .* at epoch 1, step 0, also after 3 restarts.*set train.lr lower"):
        train_run(make_cfg(*SYNTH, "train.checkpoint_every_s=0"), tmp_path / "run", progress_enabled=False)
    last = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt", kind="train")
    assert last["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_single_non_finite_weight_is_found(bad):
    model = VaDE(n_features=8, n_clusters=3, hidden=[16], latent_dim=2)
    assert train._parameters_finite(model)
    with torch.no_grad():
        model.decoder.out.weight[5, 1] = bad  # one entry among many finite ones
    assert not train._parameters_finite(model)


def test_checkpoints_follow_the_clock_not_every_epoch(make_cfg, tmp_path, monkeypatch):
    """Default policy: with the interval not yet passed, training writes last.pt once, at the phase end."""
    writes = []
    real_save = checkpoint.save

    def counting(path, payload):
        writes.append((payload.get("kind"), payload.get("epoch")))
        real_save(path, payload)

    monkeypatch.setattr(checkpoint, "save", counting)
    train_run(make_cfg(*SYNTH, "train.epochs=4", "train.checkpoint_every_s=3600"), tmp_path / "run",
              progress_enabled=False)
    assert [w for w in writes if w[0] == "train"] == [("train", 4)]
    writes.clear()
    train_run(make_cfg(*SYNTH, "train.epochs=4", "train.checkpoint_every_s=0"), tmp_path / "run2", progress_enabled=False)
    assert [w for w in writes if w[0] == "train"] == [("train", e) for e in (1, 2, 3, 4)]


def test_resume_from_another_device_reseeds_the_stream_and_says_so(caplog):
    """A CUDA generator's state cannot load into a CPU generator: restart the stream from the seed and position."""
    from vade_cli.train import restore_generator

    gen = torch.Generator().manual_seed(5)
    same = {"generator": torch.Generator().manual_seed(9).get_state(), "generator_device": "cpu"}
    restore_generator(gen, same, epoch=3, step=1)
    assert torch.equal(gen.get_state(), same["generator"])

    foreign = {"generator": torch.zeros(16, dtype=torch.uint8), "generator_device": "cuda"}
    gen = torch.Generator().manual_seed(5)
    with caplog.at_level("WARNING"):
        restore_generator(gen, foreign, epoch=3, step=1)
    first = torch.rand(3, generator=gen)
    gen2 = torch.Generator().manual_seed(5)
    restore_generator(gen2, foreign, epoch=3, step=1)
    assert torch.equal(first, torch.rand(3, generator=gen2))  # deterministic given seed and position
    assert "resumed on cpu from a cuda checkpoint" in caplog.text


def resumer_of_a_saved_run(saved_overrides: list[str], tmp_path):
    """A run folder holding only the config composed from `saved_overrides`, and a function that
    resolves `vade-run resume=<it> <overrides>` into resume_config's (config, run folder, changes)."""
    from omegaconf import OmegaConf

    from vade_cli.cli import resume_config

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_config(saved_overrides, tmp_path), run_dir / ".hydra" / "config.yaml")

    def resume(*overrides: str):
        return resume_config(compose_config([*overrides, f"resume={run_dir}"], tmp_path), [f"resume={run_dir}", *overrides])

    return resume


def test_resume_names_the_device_settings_it_changes(tmp_path):
    """device.threads may change on resume (it is how a run runs), but it costs bit-equality, so
    resume_config names such changes; another device type is left to `restore_generator`'s warning."""
    resume = resumer_of_a_saved_run(["device=auto"], tmp_path)
    assert resume("device=cpu")[2] == ""
    resumed, _, changed = resume("device=cpu", "device.threads=1", "device.amp_bf16=false")
    assert changed == "amp_bf16 auto -> False, threads None -> 1"
    assert resumed.device.threads == 1


def test_resume_keeps_the_saved_device_settings_it_is_not_told_to_change(tmp_path):
    """A run begun with device.threads=1 (beside another job) resumes on 1 thread, not on all cores,
    unless the resume command names another count; what it names is the only change."""
    resume = resumer_of_a_saved_run(
        ["device=cpu", "device.threads=1", "device.amp_bf16=false", "report.figures=false"], tmp_path)
    resumed, _, changed = resume()
    assert (resumed.device.threads, resumed.device.amp_bf16, resumed.report.figures, changed) == (1, False, False, "")
    resumed, _, changed = resume("device.threads=2")
    assert (resumed.device.threads, resumed.device.amp_bf16, changed) == (2, False, "threads 1 -> 2")


def test_vade_run_resumed_with_other_threads_ends_with_the_rounding_note(tmp_path, monkeypatch, capsys):
    """The note reaches the user, as one line, after the resumed run's summary."""
    monkeypatch.chdir(tmp_path)
    args = ["device=cpu", *TINY, *SYNTH, "report.figures=false", f"hydra.run.dir={tmp_path / 'run'}"]
    with monkeypatch.context() as patch:
        signal_self_on_call(patch, "negative_elbo", 5)
        assert run_cli(args, monkeypatch) == 128 + signal.SIGTERM
    capsys.readouterr()
    resume = [f"resume={tmp_path / 'run'}", f"hydra.run.dir={tmp_path / 'resume-call'}"]
    assert run_cli([*resume, "device.threads=2"], monkeypatch) == 0  # TINY runs on 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    notes = [line for line in lines if "other device settings" in line]
    assert len(notes) == 1 and "threads 1 -> 2" in notes[0] and notes[0].endswith("not bit for bit")
    assert lines[-1] == notes[0]  # last, after the summary


def test_a_run_saved_before_a_setting_existed_resumes_with_its_default(tmp_path, capsys, monkeypatch):
    """Run folders outlive releases: a key added since the run began takes today's default, said in one line."""
    from omegaconf import OmegaConf

    from vade_cli import report
    from vade_cli.cli import resume_config

    monkeypatch.setattr(report.console, "width", 40)  # a narrow terminal or a log file must not split the note

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    old = OmegaConf.create(OmegaConf.to_container(compose_config(["pretrain.lr=0.5"], tmp_path)))
    del old.pretrain["init_draws"]
    OmegaConf.save(old, run_dir / ".hydra" / "config.yaml")
    resumed, _, _ = resume_config(compose_config([f"resume={run_dir}"], tmp_path), [f"resume={run_dir}"])
    assert resumed.pretrain.init_draws == 1 and resumed.pretrain.lr == 0.5  # the saved settings still win
    added = [line for line in capsys.readouterr().err.splitlines() if "settings added" in line]
    assert added == ["note: settings added since this run started take their defaults: pretrain.init_draws"]
