"""A sweep's end: the Hydra callback (conf/config.yaml `hydra.callbacks.sweep_table`) that tabulates a multirun.

It reads the sweep folder and writes table.md, table.csv and table.png with `vade_cli.sweeps.table`.
It also leaves a failed report.json for a job that crashed past the CLI's own error handling, and
counts failed jobs for `vade-run`'s exit code.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vade_cli import checkpoint
from vade_cli.report import console
from vade_cli.sweeps.table import CELL, build, selection_note, to_markdown, write
from vade_cli.text import one_line

# Failed jobs in the multirun that just ended; `vade-run` reads it to exit 1 after the sweep.
LAST_SWEEP_FAILURES = 0


# ---------------------------------------------------------------- Hydra callback


def planned_jobs(sweep_dir: Path) -> int | None:
    """How many jobs the sweep's command asks for (the product of its swept values); None for a tuner's."""
    try:
        task = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task  # the command, not this job's
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
        return math.prod(len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override())
    except Exception:  # an interval or another sweep a sweeper samples has no fixed count
        return None


def progress_line(sweep_dir: Path, planned: int | None, now: float) -> str:
    """'sweep: 3/10 jobs done (1 failed), about 12 min left', read from the sweep folder.

    Counted from the report.json files on disk, so jobs of parallel launchers, and jobs kept from an
    earlier start of the same sweep, all count; the time left extrapolates this start's pace.
    """
    paths = sorted(sweep_dir.glob(f"*/{checkpoint.REPORT}"))
    if not planned or not paths:
        return ""
    failed = sum(json.loads(p.read_text()).get("status") != "completed" for p in paths)
    text = f"sweep: {len(paths)}/{planned} jobs done" + (f" ({failed} failed)" if failed else "")
    start_file = sweep_dir / "multirun.yaml"  # written when this start of the sweep began
    started = start_file.stat().st_mtime if start_file.is_file() else None
    ran_here = [p for p in paths if started is not None and p.stat().st_mtime >= started]
    if ran_here and len(paths) < planned:
        per_job = (now - started) / len(ran_here)
        text += f", about {per_job * (planned - len(paths)) / 60:.0f} min left"
    return text


def _record_crash(config: DictConfig, job_return: JobReturn) -> None:
    """An exception the CLI did not turn into a report still leaves a failed report.json to tabulate."""
    if job_return.status != JobStatus.FAILED:
        return
    run_dir = Path(str(config.hydra.runtime.output_dir))
    if (run_dir / checkpoint.REPORT).is_file():
        return
    try:
        _ = job_return.return_value  # Hydra re-raises the job's exception here
        return
    except Exception as exc:  # whatever the job raised is what the table should name
        error = one_line(f"{type(exc).__name__}: {exc}", **CELL)
    task = OmegaConf.to_container(job_return.cfg, resolve=False) if job_return.cfg is not None else {}
    checkpoint.atomic_write_json(
        run_dir / checkpoint.REPORT,
        {"status": "failed", "error": error, "run_dir": str(run_dir), "config": task},
    )


class SweepTableCallback(Callback):
    """Tabulates the sweep folder once every job has ended; counts failures for `vade-run`'s exit code."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global LAST_SWEEP_FAILURES
        LAST_SWEEP_FAILURES = 0

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        try:
            _record_crash(config, job_return)
        except Exception as exc:  # the job's own error is the one to report, not ours
            console.print(f"[yellow]warning:[/] failed job not recorded: {type(exc).__name__}: {exc}")
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        line = progress_line(Path(str(sweep_dir)), planned_jobs(Path(str(sweep_dir))), time.time()) if sweep_dir else ""
        if line:
            console.print(line, highlight=False, soft_wrap=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global LAST_SWEEP_FAILURES
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            table = build(sweep_dir)
            LAST_SWEEP_FAILURES = table.failures
            paths = write(table)
        except Exception as exc:  # a table bug must not hide that the jobs finished
            console.print(
                f"[yellow]warning:[/] sweep table not written: {type(exc).__name__}: {one_line(exc, **CELL)}"
            )
            return
        console.print(to_markdown(table.rows, table.keys), markup=False, highlight=False, soft_wrap=True)
        note = selection_note(table.jobs, table.keys)
        if note:
            console.print(note.rstrip(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"sweep table: {', '.join(str(p) for p in paths)}", highlight=False, soft_wrap=True)
