"""SLURM sweeps (`hydra/launcher=slurm`): a real sweep, a preempted job, sbatch's refusal.

The tests marked `needs_slurm` submit to a real SLURM cluster, partition `debug`, as
`scripts/local-slurm.sh` sets one up on this machine (CI runs it); without `sbatch`, or without an
idle node, they skip. The others (the launcher's settings, the messages, the signal handling) need
no cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from tests.conftest import vade_run
from vade_cli import slurm
from vade_cli.train import StopRequest

TINY = ["model=small", "pretrain.epochs=2", "pretrain.init=kmeans", "train.epochs=2", "report.figures=false",
        "device=cpu", "device.threads=1"]  # fmt: skip
# mem_gb=1: two jobs side by side on a small machine (the default, 16 GB, suits a paper-sized run)
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=1",
         "hydra.launcher.timeout_min=10"]  # fmt: skip


def _no_cluster_reason() -> str | None:
    if shutil.which("sbatch") is None:
        return "no sbatch here: scripts/local-slurm.sh starts a one-node SLURM cluster"
    try:
        idle = subprocess.run(["sinfo", "-h", "-p", "debug", "-t", "idle", "-o", "%N"], capture_output=True,
                              text=True, timeout=20).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed ({exc}): is slurmctld running? scripts/local-slurm.sh starts it"
    return None if idle else "sinfo shows no idle node in partition debug: scripts/local-slurm.sh starts one"


NO_CLUSTER = _no_cluster_reason()
needs_slurm = pytest.mark.skipif(NO_CLUSTER is not None, reason=NO_CLUSTER or "")


def array_ids(sweep: Path) -> list[str]:
    """The SLURM job ids of a sweep's arrays, from submitit's folders (<sweep>/.submitit/<id>/)."""
    folder = sweep / ".submitit"
    names = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return sorted({name.split("_")[0] for name in names if re.fullmatch(r"\d+(_\d+)?", name)})


def cancel(sweep: Path) -> None:
    """A failed test leaves no job behind on the cluster."""
    ids = array_ids(sweep)
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"vade-run ended (code {proc.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def train_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if row.get("phase") == "train":
            rows.append(row)
    return rows


def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


# ---------------------------------------------------------------- a real cluster


@needs_slurm
def test_a_slurm_sweep_runs_each_job_and_tabulates_them(tmp_path):
    sweep = tmp_path / "sweep"
    try:
        proc = vade_run(["-m", *SLURM, "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=300)
    finally:
        cancel(sweep)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "table.md").is_file()
    assert [report(sweep / str(n))["status"] for n in (0, 1)] == ["completed", "completed"]
    assert [report(sweep / str(n))["seed"] for n in (0, 1)] == [0, 1]
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    for flag in ("--partition=debug", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=1GB", "--requeue",
                 "--signal=USR2@120", "--array=0-1"):  # fmt: skip
        assert flag in script, flag
    assert "sbatch: " not in proc.stderr


@pytest.mark.slow  # about a minute: two requeues; CI runs it with make test-slow
@needs_slurm
def test_a_preempted_job_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path):
    """seed=0,0: two identical jobs. Job 0 gets submitit's preemption/time-limit signal (SIGUSR2) and,
    once it runs again, SLURM's requeue (SIGTERM); job 1 runs through. Job 0 continues each time from
    its checkpoint in its own run folder, so both end with the same numbers."""
    sweep = tmp_path / "sweep"
    # 60 epochs, the first 30 anchored to the init's partition: both stops fall in the anchored stretch, and
    # the run ends in neither one cluster nor the init's partition (ACC ~0.26 here)
    args = ["-m", *SLURM, "seed=0,0", *TINY, "train.epochs=60", "train.anchor_epochs=30", f"hydra.sweep.dir={sweep}"]
    exe = Path(sys.executable).with_name("vade-run")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    with (tmp_path / "stdout").open("w") as out, (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen([str(exe) if exe.exists() else "vade-run", *args], cwd=tmp_path, stdout=out,
                                stderr=err, env={**env, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        try:
            array = wait_for(lambda: array_ids(sweep), 60, "the sweep's submission", proc)[0]
            job = f"{array}_0"
            first = len(wait_for(lambda: len(train_rows(sweep / "0")) >= 10 and train_rows(sweep / "0"), 120,
                                 "job 0's 10th VaDE epoch", proc))  # fmt: skip
            subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
            wait_for(lambda: len(train_rows(sweep / "0")) >= first + 10, 120,
                     "job 0 to run again and train 10 more epochs", proc)  # fmt: skip
            subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
            code = proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
            cancel(sweep)
    stderr = (tmp_path / "stderr").read_text()
    assert code == 0, stderr[-3000:]
    interrupted, through = report(sweep / "0"), report(sweep / "1")
    assert interrupted["status"] == through["status"] == "completed"
    assert (interrupted["timings"]["resumed_in"], through["timings"]["resumed_in"]) == ("train", None)
    assert interrupted["metrics"]["final"] == through["metrics"]["final"]
    assert interrupted["final_elbo"] == through["final_elbo"]
    assert interrupted["cluster_sizes"] == through["cluster_sizes"]
    assert max(through["cluster_sizes"]) < sum(through["cluster_sizes"])  # not one cluster: a real check
    assert [r["loss"] for r in train_rows(sweep / "0")] == [r["loss"] for r in train_rows(sweep / "1")]
    logs = sweep / ".submitit" / job
    job_err = "".join(p.read_text() for p in logs.glob("*_log.err"))
    job_out = "".join(p.read_text() for p in logs.glob("*_log.out"))
    assert "vade-cli: SIGUSR2: saving a checkpoint" in job_err
    assert job_err.count("checkpoint saved in") == 2  # each stop saved one
    assert job_out.count("Starting with JobEnvironment") == 3  # the first start and two requeues


@needs_slurm
def test_an_sbatch_refusal_is_one_error_line_naming_the_setting(tmp_path):
    sweep = tmp_path / "sweep"
    proc = vade_run(["-m", *SLURM, "hydra.launcher.partition=no_such_partition", "seed=0,1", *TINY,
                     f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    assert errors[0].startswith("error: sbatch refused the sweep's jobs: invalid partition specified: no_such_partition")
    assert "change hydra.launcher.partition (sinfo lists: " in errors[0] and "debug" in errors[0]
    assert "Traceback" not in output
    assert not array_ids(sweep)


# ---------------------------------------------------------------- no cluster needed


def launcher(*overrides: str):
    with initialize_config_module(config_module="vade_cli.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    return cfg.hydra.launcher


@pytest.mark.parametrize(
    ("overrides", "gpus", "cpus"),
    [((), 1, 4), (("device=cpu",), 0, 4), (("device=cpu", "device.threads=1"), 0, 1),
     (("device=cuda", "device.threads=8"), 1, 8), (("device=cpu", "hydra.launcher.gpus_per_node=2",
                                                    "hydra.launcher.cpus_per_task=3"), 2, 3)],
)  # fmt: skip
def test_gpus_and_cores_follow_the_device_unless_set(overrides, gpus, cpus):
    settings = launcher(*overrides)
    assert (settings.gpus_per_node, settings.cpus_per_task) == (gpus, cpus)
    assert settings.max_num_timeout > 0 and settings.additional_parameters.requeue is True


@pytest.mark.parametrize(
    ("stderr", "setting"),
    [("sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid "
      "partition name specified", "hydra.launcher.partition (sinfo lists: debug)"),
     ("sbatch: error: Invalid generic resource (gres) specification", "hydra.launcher.gpus_per_node"),
     ("sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: "
      "Requested node configuration is not available", "hydra.launcher.mem_gb"),
     ("sbatch: error: Batch job submission failed: More processors requested than permitted",
      "hydra.launcher.cpus_per_task"),
     ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some "
      "limit)", "hydra.launcher.timeout_min"),
     ("sbatch: error: Batch job submission failed: Requested node configuration is not available",
      "hydra.launcher.cpus_per_task, mem_gb or gpus_per_node")],
)  # fmt: skip
def test_sbatch_refusals_name_the_setting_to_change(stderr, setting, monkeypatch):
    from submitit.core.utils import FailedJobError

    monkeypatch.setattr(slurm, "_partitions", lambda: ["debug"])
    cause = subprocess.CalledProcessError(1, ["sbatch", "/x/.submission_file_1.sh"], output="", stderr=stderr)
    with pytest.raises(slurm.SlurmError) as info, slurm.one_line_errors():
        raise FailedJobError(stderr) from cause
    message = str(info.value)
    assert info.value.code == 2 and "\n" not in message
    assert message.startswith("sbatch refused the sweep's jobs: ") and f"change {setting}" in message
    assert "sbatch: error" not in message and "Batch job submission failed" not in message


def test_a_missing_sbatch_a_lost_job_and_a_failed_job_are_one_line_each():
    from submitit.core.utils import FailedJobError, UncompletedJobError

    with pytest.raises(slurm.SlurmError) as info, slurm.one_line_errors():
        raise FileNotFoundError(2, "No such file or directory", "sbatch")
    assert info.value.code == 2 and "sbatch not found" in str(info.value) and "local-slurm.sh" in str(info.value)
    with pytest.raises(slurm.SlurmError) as info, slurm.one_line_errors():  # submitit's own check
        raise RuntimeError('Could not detect "srun", are you indeed on a slurm cluster?')
    assert info.value.code == 2 and str(info.value).startswith("srun not found: ")

    lost = ("Job 12_0 (task: 0) with path /s/.submitit/12_0/12_0_0_result.pkl\nhas not produced any output "
            "(state: CANCELLED by 0)\nError stream produced:\n----------------------------------------\nsrun: error")
    with pytest.raises(slurm.SlurmError) as info, slurm.one_line_errors():
        raise UncompletedJobError(lost)
    assert info.value.code == 1
    assert str(info.value) == ("SLURM job 12_0 ended without a result (state: CANCELLED by 0); see "
                               "/s/.submitit/12_0/12_0_0_log.err")  # fmt: skip

    trace = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent "
             "call last):\n  File \"x.py\"\nValueError: bad\n----------------------\nYou can check full logs with "
             "'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - /s/12_0/12_0_0_log.err\n  - /s/12_0/12_0_0_log.out")
    with pytest.raises(slurm.SlurmError) as info, slurm.one_line_errors():
        raise FailedJobError(trace)
    assert (str(info.value), info.value.code) == ("a SLURM job failed: ValueError: bad; see /s/12_0/12_0_0_log.err", 1)

    for other in (KeyError("x"), RuntimeError("y"), FileNotFoundError(2, "No such file", "data.npz")):
        with pytest.raises(type(other)), slurm.one_line_errors():  # anything else passes through
            raise other


@pytest.fixture
def preempt_signal():
    """SIGUSR2 with a stand-in for submitit's handler, which requeues the job and exits; restored after."""
    previous = signal.getsignal(signal.SIGUSR2)
    calls = []

    def submitit_requeue(signum, frame):
        calls.append(signum)
        sys.exit(-1)

    signal.signal(signal.SIGUSR2, submitit_requeue)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_the_preemption_signal_stops_training_at_a_step_before_the_requeue(preempt_signal):
    slurm.checkpoint_before_requeue()
    stop = StopRequest()
    with stop.installed():
        signal.raise_signal(signal.SIGUSR2)  # no SystemExit: the loop saves and leaves by itself
        assert stop.signum == signal.SIGUSR2
    assert preempt_signal == [signal.SIGUSR2]


def test_the_preemption_signal_outside_training_is_submitits_alone(preempt_signal):
    slurm.checkpoint_before_requeue()
    with pytest.raises(SystemExit):
        signal.raise_signal(signal.SIGUSR2)
    assert preempt_signal == [signal.SIGUSR2]


def test_a_job_out_of_requeues_ends_with_submitits_reason():
    from submitit.core.utils import UncompletedJobError

    def submitit_gives_up(signum, frame):
        raise UncompletedJobError("Job not requeued because: timed-out too many times.")

    previous = signal.signal(signal.SIGUSR2, submitit_gives_up)
    try:
        slurm.checkpoint_before_requeue()
        with StopRequest().installed(), pytest.raises(UncompletedJobError, match="timed-out too many times"):
            signal.raise_signal(signal.SIGUSR2)  # the run fails with the reason (a failed row in the table)
    finally:
        signal.signal(signal.SIGUSR2, previous)
