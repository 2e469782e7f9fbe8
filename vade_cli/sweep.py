"""A sweep's end: the Hydra callback that tabulates a multirun, and `python -m vade_cli.table DIR`.

Both read the sweep folder with `vade_cli.table` and write table.md, table.csv and, best effort,
table.png (`vade_cli.sweep_figure`). The callback also leaves a failed report.json for a job that
crashed past the CLI's own error handling, and counts failed jobs for `vade-run`'s exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vade_cli import checkpoint
from vade_cli.errors import UserError
from vade_cli.report import console
from vade_cli.table import CELL, SweepTable, build, selection_note, to_markdown, write
from vade_cli.text import one_line

# Failed jobs in the multirun that just ended; `vade-run` reads it to exit 1 after the sweep.
LAST_SWEEP_FAILURES = 0


# ---------------------------------------------------------------- writing


def write_all(table: SweepTable, stem: str = "table") -> list[Path]:
    """table.md and table.csv (atomically), then the optional figure, which may never fail the table."""
    written = write(table, stem)
    figure = draw_figure(table.rows, table.sweep_dir / f"{stem}.png")
    return written + ([figure] if figure else [])


def draw_figure(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """table.png, best effort: a failure is a warning, the table is already on disk."""
    try:
        # Imported here: matplotlib and scikit-learn would add about a second to every vade-run start.
        from vade_cli.sweep_figure import table_figure

        table_figure(list(rows), path)
    except Exception as exc:  # matplotlib, fonts, a figure bug: the table is already safe
        console.print(f"[yellow]warning:[/] {path.name} skipped: {type(exc).__name__}: {one_line(exc, **CELL)}")
        return None
    return path if path.is_file() else None


def write_table(sweep_dir: Path) -> SweepTable:
    table = build(sweep_dir)
    write_all(table)
    return table


# ---------------------------------------------------------------- Hydra callback


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

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global LAST_SWEEP_FAILURES
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            table = build(sweep_dir)
            LAST_SWEEP_FAILURES = table.failures
            paths = write_all(table)
        except Exception as exc:  # a table bug must not hide that the jobs finished
            console.print(
                f"[yellow]warning:[/] sweep table not written: {type(exc).__name__}: {one_line(exc, **CELL)}"
            )
            return
        console.print(to_markdown(table.rows, table.keys), markup=False, highlight=False, soft_wrap=True)
        note = selection_note(table.jobs, table.keys)
        if note:
            console.print(note, markup=False, highlight=False, soft_wrap=True)
        console.print(f"sweep table: {', '.join(str(p) for p in paths)}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- python -m vade_cli.table DIR (its main)


def latest_sweep(root: Path = Path("multirun")) -> Path | None:
    """The newest folder holding a multirun.yaml under `root`, for `make table` without DIR."""
    found = sorted(root.glob("**/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vade_cli.table",
        description="Tabulate a finished or interrupted sweep folder into table.md and table.csv.",
    )
    parser.add_argument(
        "dir", nargs="?", type=Path, help="sweep folder (default: the newest under ./multirun)"
    )
    args = parser.parse_args(argv)
    sweep_dir = args.dir or latest_sweep()
    if sweep_dir is None:
        print("error: no sweep folder given and none under ./multirun; pass DIR", file=sys.stderr)
        return 2
    try:
        table = write_table(sweep_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table.markdown, end="")
    print(f"wrote {sweep_dir / 'table.md'} and {sweep_dir / 'table.csv'}", file=sys.stderr)
    return 0

