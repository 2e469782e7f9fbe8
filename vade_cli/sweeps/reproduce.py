"""`make reproduce-table`: the paper's datasets over seeds, measured beside the published numbers.

The datasets whose files are present run as one sweep in a subprocess (exactly what a user would
type): `vade-run -m dataset=a,b seed=...` with the default recipe, or `experiment=a,b` with the
paper presets (`--recipe paper`), into <out>/, where the sweep callback writes its table.md and a
progress line; then every job is aggregated by `vade_cli.sweeps.table` into reproduce.md /
reproduce.csv beside it. Missing datasets are skipped and named, never fatal. The same command
again continues in the same folder: finished jobs are kept, the rest run.

    python -m vade_cli.sweeps.reproduce [--recipe default|paper] [--quick] [--seeds 0,1,2] [--out DIR] [OVERRIDES]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vade_cli import checkpoint
from vade_cli.sweeps import table
from vade_cli.text import one_line
from vade_cli.validate import int_list_arg

SOURCE = (
    "Jiang, Zheng, Tan, Tang, Zhou: Variational Deep Embedding: An Unsupervised and Generative "
    "Approach to Clustering, IJCAI 2017, Table 2"
)


@dataclass(frozen=True)
class Published:
    """One column of the paper's Table 2: clustering ACC in %, each the best of several runs."""

    name: str
    vade: float
    dec: float
    ae_gmm: float


# Keyed by our dataset names. Reuters (685K documents) and STL-10 (ResNet-50 features) have no
# dataset in vade-cli; they are listed so the caption can say what was left out.
PUBLISHED = {
    "mnist": Published("MNIST", vade=94.46, dec=84.30, ae_gmm=82.18),
    "har": Published("HHAR", vade=84.46, dec=79.86, ae_gmm=77.67),
    "reuters10k": Published("Reuters-10K", vade=79.83, dec=72.17, ae_gmm=70.13),
    "reuters": Published("Reuters", vade=79.38, dec=75.63, ae_gmm=70.98),
    "stl10": Published("STL-10", vade=84.45, dec=80.62, ae_gmm=79.83),
}


@dataclass(frozen=True)
class Plan:
    """One reproduce run: a single sweep of `key` (dataset or experiment) over the `names` whose data
    is present, with fixed `settings`.

    Each name is the dataset its reports carry, so rows match the paper by that name.
    """

    key: str
    names: tuple[str, ...]
    settings: tuple[str, ...] = ()


PAPER = Plan("experiment", ("mnist", "har", "reuters10k", "fashion_mnist", "usps"))
# What a user gets from `vade-run dataset=NAME`, on the same datasets, quickest first: the overnight table.
DEFAULT = Plan("dataset", ("reuters10k", "usps", "har", "mnist", "fashion_mnist"))
# Quick mode: the same pipeline end to end in seconds, on data that ships with the package.
QUICK = Plan(
    "dataset",
    ("digits", "synthetic"),
    ("dataset.limit=300", "model=small", "pretrain=ae", "pretrain.init=gmm", "pretrain.epochs=1", "train.epochs=1", "report.figures=false",
     "device=cpu", "device.threads=1"),  # one thread: a tiny model gains nothing from more, and loses under load
)  # fmt: skip
RECIPES = {"default": DEFAULT, "paper": PAPER}
SETUP = {  # what the caption says was run, by recipe (quick: --quick)
    "default": "the default recipe (`vade-run dataset=NAME`)",
    "paper": "the presets in vade_cli/conf/experiment/",
    "quick": "digits and synthetic data",
}


# ---------------------------------------------------------------- which datasets are here


def compose_job(plan: Plan, name: str, extra: Sequence[str]) -> Any:
    """One job's full config, composed as `vade-run` would (Hydra's own overrides left out)."""
    from hydra import compose, initialize_config_module

    task_extra = [o for o in extra if not o.lstrip("+~").startswith("hydra")]
    with initialize_config_module(config_module="vade_cli.conf", version_base="1.3"):
        return compose(config_name="config", overrides=[f"{plan.key}={name}", *plan.settings, *task_extra])


def missing_reason(plan: Plan, name: str, extra: Sequence[str] = ()) -> str | None:
    """None when the job's data loads; otherwise why not, in one line. Never downloads."""
    from hydra.errors import HydraException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from vade_cli import data
    from vade_cli.errors import UserError

    try:
        cfg = compose_job(plan, name, extra)
        with open_dict(cfg):
            if "download" in cfg.dataset:
                cfg.dataset.download = False  # a presence check must not fetch 50 MB as a side effect
        data.load(cfg.dataset)
    except (UserError, HydraException, OmegaConfBaseException, OSError) as exc:
        return one_line(exc, **table.CELL)
    return None


# ---------------------------------------------------------------- running the sweep


def override_value(value: str) -> str:
    """Quote a value for Hydra's override grammar when it holds more than a plain path."""
    if re.fullmatch(r"[\w./-]+", value):
        return value
    return "'" + value.replace("'", "\\'") + "'"


def sweep_command(
    plan: Plan, names: Sequence[str], seeds: Sequence[int], out: Path, extra: Sequence[str]
) -> list[str]:
    """One `vade-run -m <key>=a,b seed=0,1,...` over every present name, run by this very interpreter."""
    return [
        sys.executable, "-m", "vade_cli.cli", "-m",
        f"{plan.key}={','.join(names)}",
        f"seed={','.join(str(s) for s in seeds)}",
        *plan.settings,
        *extra,
        f"hydra.sweep.dir={override_value(str(out.resolve()))}",
    ]  # fmt: skip


# ---------------------------------------------------------------- the comparison (pure)


def comparison_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sweep-table rows with the paper's numbers (ACC %) beside them where the paper has the dataset."""
    out = []
    for row in rows:
        paper = PUBLISHED.get(str(row["dataset"]))
        out.append({
            **row,
            "paper_name": paper.name if paper else None,
            "paper_vade_acc": paper.vade if paper else None,
            "paper_dec_acc": paper.dec if paper else None,
            "paper_ae_gmm_acc": paper.ae_gmm if paper else None,
        })  # fmt: skip
    return out


def _paper(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def results_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ["dataset", "paper's name", "N", "K", "runs", "seeds",
              "VaDE ACC % (ours)", "VaDE best (ours)", "VaDE (paper, best)",
              "init ACC % (ours)", "AE+GMM (paper)", "DEC (paper)", "NMI (ours)", "ARI (ours)", "wall s"]  # fmt: skip
    body = [
        [r["dataset"], r["paper_name"], r["n_samples"], r["n_clusters"], r["runs"], r["seeds"],
         table.pct(r["acc_mean"], r["acc_std"]), None if r["acc_max"] is None else f"{100 * r['acc_max']:.2f}",
         _paper(r["paper_vade_acc"]), table.pct(r["gmm_acc_mean"], r["gmm_acc_std"]),
         _paper(r["paper_ae_gmm_acc"]), _paper(r["paper_dec_acc"]),
         table.frac(r["nmi_mean"], r["nmi_std"]), table.frac(r["ari_mean"], r["ari_std"]),
         None if r["wall_s_mean"] is None else f"{r['wall_s_mean']:.1f}"]
        for r in rows
    ]  # fmt: skip
    return table.markdown_table(header, body, left={"dataset", "paper's name"})


def caption(seeds: Sequence[int], recipe: str) -> str:
    """Where the published numbers come from, and why ours are not the same kind of number."""
    seed_list = ",".join(str(s) for s in seeds)
    text = (
        f"Published numbers: {SOURCE} (clustering ACC, %). The paper reports its best run; we report "
        f"mean ± std (sample std, n-1) over seeds {seed_list} with {SETUP[recipe]}: compare the paper's number with "
        "our best run ('VaDE best'), and read our mean as what a typical run gives. Our init is the prior "
        "initialised (pretrain.init) on the latent means of our end-to-end pretrained autoencoder, before VaDE "
        "training; the paper's AE+GMM used a stacked denoising autoencoder, pretrained layer-wise."
    )
    if recipe == "quick":
        text += (
            " Quick mode: tiny settings (model=small, one epoch per phase, a few hundred samples): "
            "a check that the pipeline runs end to end, not a reproduction."
        )
    return text


def render_markdown(
    rows: Sequence[dict[str, Any]], skipped: dict[str, str], seeds: Sequence[int], recipe: str
) -> str:
    """reproduce.md: the comparison, what was skipped and why, and every failure with its error."""
    done = [r for r in rows if r["status"] == table.COMPLETED]
    parts = ["# VaDE: measured beside the published numbers\n", caption(seeds, recipe) + "\n"]
    parts.append(results_table(done) if done else "No dataset finished a run.\n")
    unrun = [
        f"{p.name} (VaDE {p.vade:.2f})"
        for key, p in PUBLISHED.items()
        if key not in {r["dataset"] for r in done}
    ]
    if unrun:
        parts.append("Published but not measured here: " + ", ".join(unrun) + ".\n")
    if skipped:
        parts.append(
            "Skipped, data files not found:\n\n" + "".join(f"- {k}: {v}\n" for k, v in skipped.items())
        )
    failed = [r for r in rows if r["status"] != table.COMPLETED]
    if failed:
        body = [[r["dataset"], r["status"], r["runs"], r["seeds"], r["error"]] for r in failed]
        parts.append(
            "Failed jobs:\n\n"
            + table.markdown_table(
                ["dataset", "status", "runs", "seeds", "error"], body, left={"dataset", "status", "error"}
            )
        )
    return "\n".join(parts)


CSV_FIELDS = (
    "dataset", "paper_name", "status", "runs", "seeds", "n_samples", "n_clusters",
    "acc_mean", "acc_std", "acc_min", "acc_max", "paper_vade_acc",
    "gmm_acc_mean", "gmm_acc_std", "paper_ae_gmm_acc", "paper_dec_acc",
    "nmi_mean", "nmi_std", "ari_mean", "ari_std", "wall_s_mean", "error",
)  # fmt: skip


def render_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Ours as fractions (like report.json), the paper's as the % it prints."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


# ---------------------------------------------------------------- command line


def parse_seeds(text: str) -> list[int]:
    return int_list_arg(text, "seeds", 0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vade_cli.sweeps.reproduce",
        description="Run the paper's datasets over seeds for every one present; tabulate beside the paper.",
    )
    parser.add_argument(
        "--recipe", choices=tuple(RECIPES), default="default",
        help="default: `vade-run dataset=NAME`; paper: the presets (`experiment=NAME`)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="digits and synthetic, tiny settings (seconds)")
    parser.add_argument(
        "--seeds", type=parse_seeds, default=[0, 1, 2, 3, 4], help="comma-separated (0,1,2,3,4)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: multirun/reproduce/<recipe>-seeds-<seeds>[-<overrides' hash>])",
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra vade-run overrides for every sweep, e.g. device=cuda"
    )
    return parser.parse_args(argv)


def default_out(recipe: str, seeds: Sequence[int], overrides: Sequence[str] = ()) -> Path:
    """One folder per command (recipe, seeds, overrides), so the same command again continues where it
    stopped, and another never meets its checkpoints."""
    name = f"{recipe}-seeds-{'-'.join(str(s) for s in seeds)}"
    if overrides:
        name += "-" + hashlib.sha1("\0".join(overrides).encode()).hexdigest()[:8]
    return Path("multirun") / "reproduce" / name


def present_datasets(plan: Plan, extra: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The names whose data loads, and the others with the reason, each named on stderr."""
    present, skipped = [], {}
    for name in plan.names:
        reason = missing_reason(plan, name, extra)
        if reason is None:
            present.append(name)
        else:
            skipped[name] = reason
            print(f"reproduce: skipping {name}: {reason}", file=sys.stderr)
    return present, skipped


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every job ran, 1 when some failed, 2 when no dataset was present at all."""
    args = parse_args(argv)
    recipe = "quick" if args.quick else args.recipe
    out = args.out or default_out(recipe, args.seeds, args.overrides)
    plan = QUICK if args.quick else RECIPES[recipe]
    present, skipped = present_datasets(plan, args.overrides)
    jobs: list[dict[str, Any]] = []
    if present:
        cmd = sweep_command(plan, present, args.seeds, out, args.overrides)
        print(f"reproduce: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=False)  # failed jobs become failed rows; the table is written regardless
        jobs = table.load_jobs(out) if out.is_dir() and table.find_job_dirs(out) else []
    rows = comparison_rows(table.aggregate(jobs, keys=()))
    checkpoint.atomic_write_text(out / "reproduce.md", render_markdown(rows, skipped, args.seeds, recipe))
    checkpoint.atomic_write_text(out / "reproduce.csv", render_csv(rows))
    print((out / "reproduce.md").read_text(), end="")
    print(f"wrote {out / 'reproduce.md'} and {out / 'reproduce.csv'}", file=sys.stderr)
    if not present:
        return 2
    return 1 if table.count_failures(jobs) or len(jobs) < len(present) * len(args.seeds) else 0


if __name__ == "__main__":
    sys.exit(main())
