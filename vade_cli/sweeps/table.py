"""Sweep tables: every job's report.json -> one row per dataset and swept setting -> table.md, table.csv.

Reading a sweep folder, the aggregation (pure: job dicts in, row dicts out, so it can be tested
without runs), the Markdown/CSV rendering and the writing, with table.png drawn best effort
(`vade_cli.sweeps.figure`). The Hydra callback (`vade_cli.sweeps.callback`) calls it when a multirun
ends; `python -m vade_cli.sweeps.table DIR` (`make table DIR=...`) tabulates any sweep folder, an
interrupted one too.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from scipy.stats import spearmanr

from vade_cli import checkpoint
from vade_cli.errors import UserError
from vade_cli.report import console
from vade_cli.text import decimal, one_line

# Seeds are what rows average over; the dataset has a column of its own; threads change speed, not results.
NOT_GROUPED = ("seed", "dataset", "device.threads")
COMPLETED = "completed"
NO_REPORT = "no report.json: the job was interrupted, is still running, or crashed"
# Errors go in one table cell: one line (`text.one_line(message, **CELL)`), bounded.
CELL = {"limit": 300, "sep": " "}

# (row field, report path) for the numbers that are averaged over seeds.
METRICS = {
    "partition_acc": ("init", "partition_metrics", "acc"),
    "gmm_acc": ("metrics", "gmm_init", "acc"),
    "acc": ("metrics", "final", "acc"),
    "nmi": ("metrics", "final", "nmi"),
    "ari": ("metrics", "final", "ari"),
    "wall_s": ("timings", "total_s"),
}
# csv columns after `dataset` and the swept keys; fractions stay fractions here (machine-readable).
COLUMNS = (
    "status", "runs", "seeds", "n_samples", "n_clusters",
    "partition_acc_mean", "partition_acc_std", "gmm_acc_mean", "gmm_acc_std", "kept_init",
    "acc_mean", "acc_std", "acc_min", "acc_max",
    "nmi_mean", "nmi_std", "ari_mean", "ari_std", "wall_s_mean", "rho_elbo_acc", "rho_init_ll_acc", "error",
)  # fmt: skip
# Label-free scores whose rank correlation with ACC across seeds says whether they could pick seeds.
SCORE = ("final_elbo",)  # the label-free number a run returns to a tuning sweeper; higher is better
SELECTORS = {"rho_elbo_acc": SCORE, "rho_init_ll_acc": ("init", "log_likelihood")}


# ---------------------------------------------------------------- reading a sweep folder


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders under `sweep_dir` (its own .hydra/overrides.yaml or a report.json), in job order."""
    found = {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    found |= {p.parent for p in sweep_dir.rglob(checkpoint.REPORT)}
    own = (d for d in found if ".submitit" not in d.parts and checkpoint.REPLACED_DIR not in d.parts)
    return sorted(own, key=lambda d: _natural(d, sweep_dir))


def _natural(job_dir: Path, root: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort 2 before 10: Hydra names job folders by number."""
    parts = job_dir.relative_to(root).parts if job_dir != root else ()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def read_overrides(job_dir: Path) -> dict[str, str]:
    """The job's command-line overrides as {key: value}; '+' and '~' prefixes dropped."""
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    pairs = (str(item).split("=", 1) for item in items if "=" in str(item))
    return {key.lstrip("+~"): value for key, value in pairs}


def _job_config(job_dir: Path) -> dict[str, Any]:
    """The job's composed config, for jobs that died before writing a report."""
    try:
        cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    except (OSError, yaml.YAMLError, OmegaConfBaseException):  # missing or half-written
        return {}
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:  # an interpolation that only resolves inside the job
        return OmegaConf.to_container(cfg, resolve=False)


def load_job(job_dir: Path) -> dict[str, Any]:
    """The job's report.json, or a stand-in saying why there is none; `_overrides` attached."""
    path = job_dir / checkpoint.REPORT
    if path.is_file():
        try:
            job = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            job = {"status": "failed", "error": f"unreadable report.json ({type(exc).__name__})"}
    else:
        job = {"status": "incomplete", "error": NO_REPORT, "config": _job_config(job_dir)}
    job.setdefault("run_dir", str(job_dir))
    job["_overrides"] = read_overrides(job_dir)
    return job


def load_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a folder; pass a sweep folder such as multirun/<date>/<time>")
    jobs = [load_job(d) for d in find_job_dirs(sweep_dir)]
    if not jobs:
        raise UserError(
            f"{sweep_dir} holds no job folders (.hydra/overrides.yaml or report.json); pass a sweep folder"
        )
    return jobs


def sweep_keys(sweep_dir: Path) -> list[str]:
    """Keys the sweep itself swept (from multirun.yaml), even if an interrupted sweep ran only one value."""
    try:
        task = OmegaConf.load(Path(sweep_dir) / "multirun.yaml").hydra.overrides.task
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
    except (OSError, yaml.YAMLError, OmegaConfBaseException, HydraException):  # no multirun.yaml
        return []
    return [o.key_or_group for o in parsed if o.is_sweep_override()]


# ---------------------------------------------------------------- pure aggregation


def grouping_keys(jobs: Sequence[dict[str, Any]], swept: Sequence[str] = ()) -> list[str]:
    """Override keys that tell rows apart: swept ones plus any whose value differs between jobs."""
    seen: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in job.get("_overrides", {}).items():
            seen.setdefault(key, set()).add(value)
    missing = {k for k in seen if any(k not in job.get("_overrides", {}) for job in jobs)}
    varying = [k for k, values in seen.items() if len(values) > 1 or k in missing]
    keys = [*swept, *(k for k in varying if k not in swept)]
    return [k for k in keys if k not in NOT_GROUPED]


def dataset_name(job: dict[str, Any]) -> str:
    name = (job.get("dataset") or {}).get("name")
    if not name:
        name = ((job.get("config") or {}).get("dataset") or {}).get("name")
    return str(name) if name else "?"


def number_at(job: dict[str, Any], path: Sequence[str]) -> float | None:
    """The number at `path` in a report (a finite int or float), else None."""
    value: Any = job
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def summarize(values: Sequence[float | None]) -> dict[str, float | None]:
    """mean, sample std (n-1; 0 for one run), min, max of the values that exist."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "min": None, "max": None}
    std = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return {"mean": statistics.fmean(xs), "std": std, "min": min(xs), "max": max(xs)}


def seeds_text(seeds: Sequence[Any]) -> str:
    """0,1,2,3,4 -> '0-4': short enough for a table cell however many seeds ran."""
    spans: list[list[int]] = []
    for s in sorted({s for s in seeds if isinstance(s, int) and not isinstance(s, bool)}):
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _seed(job: dict[str, Any]) -> Any:
    seed = job.get("seed", (job.get("config") or {}).get("seed"))
    if seed is None and "seed" in job.get("_overrides", {}):
        seed = job["_overrides"]["seed"]
    try:
        return int(seed)
    except (TypeError, ValueError):
        return None


def _distinct(values: Sequence[Any]) -> Any:
    """One value when all jobs agree (the normal case); 'a/b' when they do not."""
    present = [v for v in dict.fromkeys(values) if v is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else "/".join(str(v) for v in present)


def make_row(
    setting: dict[str, str], status: str, error: str, jobs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """One table row for jobs that share dataset, swept setting, status and error."""
    k_values = [job.get("n_clusters", (job.get("config") or {}).get("n_clusters")) for job in jobs]
    row: dict[str, Any] = {
        **setting,
        "status": status,
        "runs": len(jobs),
        "seeds": seeds_text([_seed(j) for j in jobs]),
        "n_samples": _distinct([(j.get("dataset") or {}).get("n_samples") for j in jobs]),
        "n_clusters": _distinct([k if isinstance(k, int) else None for k in k_values]),
        "error": error,
    }
    for field_name, path in METRICS.items():
        stats = summarize([number_at(j, path) for j in jobs]) if status == COMPLETED else summarize([])
        for stat, value in stats.items():
            row[f"{field_name}_{stat}"] = value
    row["kept_init"] = kept_init(jobs) if status == COMPLETED else None
    for field_name, path in SELECTORS.items():
        row[field_name] = rank_correlation(jobs, path, METRICS["acc"]) if status == COMPLETED else None
    return row


def kept_init(jobs: Sequence[dict[str, Any]]) -> str | None:
    """'4/5': how many seeds ended at least at their own initialisation's ACC (issue #10's per-seed bar).

    Runs with `train.epochs=0` stop at their initialisation, so they are not counted: they would pass vacuously.
    """
    pairs = [(number_at(j, METRICS["gmm_acc"]), number_at(j, METRICS["acc"])) for j in jobs if j.get("epochs") != 0]
    scored = [(init, final) for init, final in pairs if init is not None and final is not None]
    return f"{sum(final >= init for init, final in scored)}/{len(scored)}" if scored else None


def rank_correlation(jobs: Sequence[dict[str, Any]], score: Sequence[str], target: Sequence[str]) -> float | None:
    """Spearman's rho across jobs between a label-free score and ACC; None below 3 runs or without labels."""
    pairs = [(a, b) for a, b in ((number_at(j, score), number_at(j, target)) for j in jobs) if a is not None and b is not None]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return None
    return float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)


def aggregate(jobs: Sequence[dict[str, Any]], keys: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows in order of first appearance; per setting the completed row first, then one row per failure."""
    groups: dict[tuple[str, ...], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for job in jobs:
        overrides = job.get("_overrides", {})
        setting = (dataset_name(job), *(overrides.get(k, "") for k in keys))
        status = str(job.get("status") or "failed")
        error = "" if status == COMPLETED else one_line(job.get("error") or status, **CELL)
        groups.setdefault(setting, {}).setdefault((status, error), []).append(job)
    rows = []
    for setting, outcomes in groups.items():
        named = dict(zip(["dataset", *keys], setting))
        ordered = sorted(outcomes.items(), key=lambda item: item[0][0] != COMPLETED)
        rows.extend(make_row(named, status, error, members) for (status, error), members in ordered)
    return rows


def count_failures(jobs: Sequence[dict[str, Any]]) -> int:
    return sum(1 for job in jobs if job.get("status") != COMPLETED)


# ---------------------------------------------------------------- rendering


def to_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ()) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=["dataset", *keys, *COLUMNS], extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def mean_std(mean: float | None, std: float | None, digits: int, scale: float = 1.0) -> str:
    """'mean ± std' (std 0 when missing), both scaled and with `digits` decimals; '-' without a mean."""
    if mean is None:
        return "-"
    return f"{decimal(scale * mean, digits)} ± {decimal(scale * (std or 0.0), digits)}"


def pct(mean: float | None, std: float | None) -> str:
    return mean_std(mean, std, 2, scale=100)


def frac(mean: float | None, std: float | None) -> str:
    return mean_std(mean, std, 3)


def pct_range(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"{100 * lo:.2f}–{100 * hi:.2f}"


def cell(value: Any) -> str:
    """A markdown cell: '-' for nothing, pipes escaped so an error message cannot break the table."""
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[Any]], left: Collection[str] = ()) -> str:
    """A GitHub markdown table: numbers right-aligned, the columns named in `left` (text) left-aligned."""
    align = ["---" if name in left else "---:" for name in header]
    lines = [header, align, *[[cell(v) for v in row] for row in body]]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines) + "\n"


def to_markdown(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ()) -> str:
    """The table alone: ACC in %, NMI and ARI in [0, 1]; status and error columns only when needed."""
    problems = any(r["status"] != COMPLETED for r in rows)
    header = ["dataset", *keys, *(["status"] if problems else []), "N", "K", "runs", "seeds",
              "partition ACC %", "init ACC %", "VaDE ACC %", "VaDE ≥ init", "VaDE ACC min–max", "NMI", "ARI", "wall s",
              "ρ(ELBO, ACC)", "ρ(init LL, ACC)"]  # fmt: skip
    body = []
    for r in rows:
        body.append([
            r["dataset"], *(r.get(k) for k in keys), *([r["status"]] if problems else []),
            r["n_samples"], r["n_clusters"], r["runs"], r["seeds"],
            pct(r["partition_acc_mean"], r["partition_acc_std"]), pct(r["gmm_acc_mean"], r["gmm_acc_std"]),
            pct(r["acc_mean"], r["acc_std"]), r["kept_init"], pct_range(r["acc_min"], r["acc_max"]), frac(r["nmi_mean"], r["nmi_std"]),
            frac(r["ari_mean"], r["ari_std"]), decimal(r["wall_s_mean"], 1),
            *(None if r[k] is None else f"{r[k]:+.2f}" for k in SELECTORS),
        ])  # fmt: skip
        if problems:
            body[-1].append(r["error"])
    if problems:
        header.append("error")
    return markdown_table(header, body, left={"dataset", *keys, "status", "error"})


def caption(jobs: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """What the numbers are: how many jobs, how they were grouped, which std, which units."""
    done = sum(1 for j in jobs if j.get("status") == COMPLETED)
    failed = sum(1 for j in jobs if j.get("status") == "failed")
    incomplete = len(jobs) - done - failed
    counts = f"{len(jobs)} jobs: {done} completed, {failed} failed" + (
        f", {incomplete} incomplete" if incomplete else ""
    )
    grouped = "dataset" + "".join(f", {k}" for k in keys)
    return (
        f"{counts}. One row per {grouped}; numbers are mean ± std over the completed runs' seeds "
        "(sample std, n-1; 0 for one run). ACC in %, NMI and ARI in [0, 1]; init is the prior's own "
        "predictions after it was initialised from the autoencoder's latent means (pretrain.init), before VaDE training. wall s: mean seconds per run "
        "(short when the autoencoder came from the pretraining cache). ρ: Spearman rank correlation across "
        "seeds between a label-free score (final ELBO; the init's log-likelihood of the latent means) and "
        "VaDE ACC, shown from 3 runs on: near +1 means the score would pick the better seeds without labels."
    )


def selection_note(jobs: Sequence[dict[str, Any]], keys: Sequence[str] = ()) -> str:
    """Per dataset, the job the final ELBO would pick without labels, beside the best-ACC job: what
    tuning without labels costs.

    ELBOs are compared only between jobs on the same data: the same dataset and the same value of
    any `dataset.*` key the sweep varied. Data with fewer than two scored jobs gets no line; the ACC
    side appears only when the jobs have labels to report. Empty when no data has a choice to make.
    """
    same_data = [k for k in keys if k.startswith("dataset.")]
    setting = [k for k in keys if k not in same_data]  # what tells a dataset's jobs apart
    by_data: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        if job.get("status") == COMPLETED and number_at(job, SCORE) is not None:
            overrides = job.get("_overrides", {})
            data = " ".join([dataset_name(job), *(f"{k}={overrides.get(k, '')}" for k in same_data)])
            by_data.setdefault(data, []).append(job)
    acc = METRICS["acc"]
    lines, with_labels = [], False
    for data, scored in by_data.items():
        if len(scored) < 2:
            continue
        chosen = max(scored, key=lambda j: number_at(j, SCORE))
        line = f"- {data}: {_job_label(chosen, setting)}, final ELBO {decimal(number_at(chosen, SCORE), 4)}"
        with_acc = [j for j in scored if number_at(j, acc) is not None]
        if chosen in with_acc:
            with_labels = True
            best = max(with_acc, key=lambda j: number_at(j, acc))
            line += (f", ACC {decimal(100 * number_at(chosen, acc), 2)} %; best ACC: {_job_label(best, setting)}, "
                     f"ACC {decimal(100 * number_at(best, acc), 2)} %")
        lines.append(line + "\n")
    if not lines:
        return ""
    beside = ", beside the best-ACC job (labels, for reporting only)" if with_labels else ""
    return f"Label-free choice per dataset (the highest final ELBO among its jobs){beside}:\n\n" + "".join(lines)


def _job_label(job: dict[str, Any], keys: Sequence[str]) -> str:
    """'job 3 (train.lr=0.001 seed=1)': the folder and the settings that tell the jobs apart."""
    overrides = job.get("_overrides", {})
    named = " ".join(f"{k}={overrides[k]}" for k in [*keys, "seed"] if k in overrides)
    return f"job {Path(str(job.get('run_dir', '?'))).name}" + (f" ({named})" if named else "")


# ---------------------------------------------------------------- writing


@dataclass
class SweepTable:
    sweep_dir: Path
    jobs: list[dict[str, Any]]
    keys: list[str]
    rows: list[dict[str, Any]]
    markdown: str
    failures: int


def build(sweep_dir: Path) -> SweepTable:
    """Read every job under `sweep_dir` and aggregate (nothing written)."""
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    keys = grouping_keys(jobs, sweep_keys(sweep_dir))
    rows = aggregate(jobs, keys)
    markdown = f"# VaDE sweep {sweep_dir}\n\n{caption(jobs, keys)}\n\n{to_markdown(rows, keys)}"
    note = selection_note(jobs, keys)
    if note:
        markdown += f"\n{note}"
    return SweepTable(sweep_dir, jobs, keys, rows, markdown, count_failures(jobs))


def write(table: SweepTable, stem: str = "table") -> list[Path]:
    """table.md and table.csv in the sweep folder (atomically), then the figure, which may never fail the table."""
    md, csv_path = table.sweep_dir / f"{stem}.md", table.sweep_dir / f"{stem}.csv"
    checkpoint.atomic_write_text(md, table.markdown)
    checkpoint.atomic_write_text(csv_path, to_csv(table.rows, table.keys))
    figure = draw_figure(table.rows, table.keys, table.sweep_dir / f"{stem}.png")
    return [md, csv_path] + ([figure] if figure else [])


def draw_figure(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: Path) -> Path | None:
    """table.png, best effort: a failure is a warning, the table is already on disk."""
    try:
        # Imported here: matplotlib would add about a second to every vade-run start.
        from vade_cli.sweeps.figure import table_figure

        table_figure(list(rows), list(keys), path)
    except Exception as exc:  # matplotlib, fonts, a figure bug: the table is already safe
        console.print(f"[yellow]warning:[/] {path.name} skipped: {type(exc).__name__}: {one_line(exc, **CELL)}")
        return None
    return path if path.is_file() else None


def write_table(sweep_dir: Path) -> SweepTable:
    table = build(sweep_dir)
    write(table)
    return table


# ---------------------------------------------------------------- python -m vade_cli.sweeps.table DIR


def latest_sweep(root: Path = Path("multirun")) -> Path | None:
    """The newest folder holding a multirun.yaml under `root`, for `make table` without DIR."""
    found = sorted(root.glob("**/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vade_cli.sweeps.table",
        description="Tabulate a finished or interrupted sweep folder into table.md, table.csv and table.png.",
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


if __name__ == "__main__":  # `python -m vade_cli.sweeps.table DIR`, the command `make table` runs
    sys.exit(main())
