"""SLURM sweeps (`hydra/launcher=slurm`, conf/hydra/launcher/slurm.yaml): preemption and sbatch's errors.

Inside each job, `SlurmJobCallback` makes submitit's preemption/time-limit signal (SIGUSR2) stop a
training run the way SIGTERM does, so the run saves a checkpoint at its next step before submitit
requeues the job; the requeued job runs again in the same run folder and `run.train_run` resumes from
its checkpoints. SIGTERM (SLURM's own preemption or requeue) needs nothing here: the run saves and
exits, and SLURM requeues the job (sbatch --requeue).

In `vade-run` itself, `one_line_errors` turns sbatch's refusal into one line naming the setting to
change, and a job that ended without a result into one line naming its log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vade_cli.text import one_line

# sbatch's words -> the launcher setting to change (first match wins)
SETTINGS = (
    (r"partition", "hydra.launcher.partition"),
    (r"gres|gpu", "hydra.launcher.gpus_per_node (0 on a CPU-only partition, with device=cpu)"),
    (r"memory|\bmem\b", "hydra.launcher.mem_gb"),
    (r"processors|cpu", "hydra.launcher.cpus_per_task (it follows device.threads)"),
    (r"time limit", "hydra.launcher.timeout_min"),
    (r"account", "hydra.launcher.account"),
    (r"qos", "hydra.launcher.qos"),
    (r"node configuration is not available",
     "hydra.launcher.cpus_per_task, mem_gb or gpus_per_node (one asks for more than a node of the partition has)"),
)  # fmt: skip


NO_SRUN = 'Could not detect "srun"'  # submitit's RuntimeError off a SLURM cluster


class SlurmError(Exception):
    """A SLURM sweep could not be submitted (code 2) or a job of it ended without a result (code 1)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Around `vade-run`: sbatch's and submitit's errors become a `SlurmError` with a one-line message."""
    try:
        yield
    except Exception as exc:
        message = error_message(exc)
        if message is None:
            raise
        raise SlurmError(*message) from None
    finally:
        if isinstance(sys.stderr, _WithoutSbatchEcho):  # a sweep that failed before its end left it there
            sys.stderr = sys.stderr.stream


def error_message(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit code) for submitit's errors; None for anything else."""
    missing = exc.filename if isinstance(exc, FileNotFoundError) else "srun" if isinstance(exc, RuntimeError) and NO_SRUN in str(exc) else None
    if missing in ("sbatch", "srun"):
        return (f"{missing} not found: hydra/launcher=slurm runs where SLURM's commands are (a login node); to "
                "try it on this machine: sudo scripts/local-slurm.sh"), 2
    if not type(exc).__module__.startswith("submitit"):
        return None
    cause = exc.__cause__
    if isinstance(cause, subprocess.CalledProcessError) and str(cause.cmd[0]).endswith("sbatch"):
        return sbatch_message(cause.stderr or str(exc)), 2
    text = str(exc)
    log = next((word for word in text.split() if word.endswith("_log.err")), None)
    lost = re.search(r"Job (\S+) \(task: \d+\) with path (\S+)", text)
    if lost:  # no result: killed, cancelled, or it left without one
        state = re.search(r"\(state: ([^)]*)\)", text)
        log = log or re.sub(r"_result\.pkl$", "_log.err", lost.group(2))
        return f"SLURM job {lost.group(1)} ended without a result (state: {state.group(1) if state else '?'}); see {log}", 1
    parts = text.split("----------------------")
    if len(parts) >= 3 and parts[1].strip():  # the job raised: its trace's last line
        return f"a SLURM job failed: {parts[1].strip().splitlines()[-1]}{f'; see {log}' if log else ''}", 1
    return f"SLURM: {one_line(text, limit=300)}", 1


def sbatch_message(stderr: str) -> str:
    """sbatch's refusal, e.g. 'sbatch: error: invalid partition specified: gpu', as one line with the setting."""
    reasons = []
    for line in stderr.strip().splitlines():
        reason = re.sub(r"^sbatch:\s*error:\s*", "", line.strip())
        reason = re.sub(r"^Batch job submission failed:\s*", "", reason)
        if reason and reason not in reasons:
            reasons.append(reason)
    said = "; ".join(reasons) or "no reason given"
    setting = next((s for pattern, s in SETTINGS if re.search(pattern, said, re.IGNORECASE)), None)
    if setting is None:
        return f"sbatch refused the sweep's jobs: {said}; check the hydra.launcher settings (conf/hydra/launcher/slurm.yaml)"
    if setting == "hydra.launcher.partition":
        partitions = _partitions()
        setting += f" (sinfo lists: {', '.join(partitions)})" if partitions else " (sinfo lists the partitions)"
    return f"sbatch refused the sweep's jobs: {said}; change {setting}"


def _partitions() -> list[str]:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(set(out.split()))


class _WithoutSbatchEcho:
    """sys.stderr without the sbatch lines submitit prints before it raises (the error line repeats them)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        dropped, self._dropped = self._dropped, text.startswith("sbatch: ")
        if self._dropped or (dropped and text == "\n"):
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class SlurmJobCallback(Callback):
    """The Hydra callback of conf/hydra/launcher/slurm.yaml; its arguments are lookup tables for that file."""

    def __init__(self, gpus_for_device: Any = None, cpus_unless_threads: Any = None) -> None:
        self._stderr: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not isinstance(sys.stderr, _WithoutSbatchEcho):
            self._stderr = sys.stderr
            sys.stderr = _WithoutSbatchEcho(sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._stderr is not None and isinstance(sys.stderr, _WithoutSbatchEcho):
            sys.stderr = self._stderr

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and "SLURM_JOB_ID" in os.environ:
            checkpoint_before_requeue()

    def __getstate__(self) -> dict[str, Any]:  # pickled into each job: no stream
        return {"_stderr": None}


def checkpoint_before_requeue() -> None:
    """Wrap submitit's handler of its requeue signal: a training run first sets its stop flag (as SIGTERM
    would), so it saves a checkpoint at its next step and exits, while submitit requeues the job."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    from vade_cli.train import StopRequest

    signum = SlurmJobEnvironment._usr_sig()
    requeue = signal.getsignal(signum)
    if not callable(requeue):
        return

    def handler(received: int, frame: Any) -> None:
        stop = signal.getsignal(signal.SIGTERM)
        if not isinstance(getattr(stop, "__self__", None), StopRequest):
            requeue(received, frame)  # not training: submitit's own handling (requeue now, exit)
            return
        stop(received, frame)
        try:  # submitit dumps the job for its restart, runs `scontrol requeue`, then sys.exit; or it raises
            requeue(received, frame)  # "not requeued because: timed-out too many times", which ends the run
        except SystemExit:  # requeued: leave through the training loop, which saves first
            print(f"vade-cli: {signal.Signals(received).name}: saving a checkpoint; the job continues from it "
                  "once SLURM starts it again", file=sys.stderr, flush=True)

    signal.signal(signum, handler)
