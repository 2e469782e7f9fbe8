"""`make generalization`: the default recipe on many data sets, each through `dataset=file` as a user would.

Every set is written once as an .npz (`x`, `y`) in the form a user would bring it (raw 0-255 pixels,
unscaled table columns), then `vade-run dataset=file dataset.path=... n_clusters=K seed=S` runs in a
subprocess per set and seed with nothing else set, and one table sums it up: completed runs, the
partition's, the init's and VaDE's ACC (labels score only), how many seeds ended at or above their
own partition (less 1 point), and seconds per run. Sets whose files are absent are skipped and named.

    python -m vade_cli.generalization [--quick] [--seeds 0,1,2] [--jobs 2] [--out DIR] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vade_cli.checkpoint import atomic_write_text
from vade_cli.sweeps import table
from vade_cli.text import decimal
from vade_cli.validate import int_list_arg

# The benchmark files beside a development checkout (../shared/data); --data-dir names another folder.
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
Loaded = tuple[np.ndarray, np.ndarray] | None  # x and y as a user would have them; None when the files are absent
KEEP_MARGIN = 0.01  # a seed "keeps its partition" when VaDE ends no more than 1 point under it


def _sklearn(name: str) -> Callable[[Path], Loaded]:
    def load(root: Path) -> Loaded:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{name}")()
        return bunch.data, bunch.target

    return load


def _idx_test_split(folder: str) -> Callable[[Path], Loaded]:
    def load(root: Path) -> Loaded:
        from vade_cli.data.images import read_idx_pair

        path = root / folder
        return read_idx_pair(path, "test") if path.is_dir() else None  # raw uint8 [N,28,28]

    return load


def _usps(root: Path) -> Loaded:
    from omegaconf import OmegaConf

    from vade_cli import data

    if not (root / "usps" / "usps.h5").is_file():
        return None
    cfg = OmegaConf.load(Path(__file__).parent / "conf" / "dataset" / "usps.yaml")
    cfg.root = str(root / "usps")
    ds = data.load(cfg)  # already in [0,1], as the file holds it
    return ds.x, ds.y


def _faces(name: str) -> Callable[[Path], Loaded]:
    def load(root: Path) -> Loaded:
        path = root / "faces" / f"{name}.npz"
        if not path.is_file():
            return None
        with np.load(path) as f:
            return f["x"], f["y"]

    return load


def _synthetic(root: Path) -> Loaded:
    from omegaconf import OmegaConf

    from vade_cli import data

    ds = data.load(OmegaConf.load(Path(__file__).parent / "conf" / "dataset" / "synthetic.yaml"))
    return ds.x, ds.y


# name -> (loader giving x, y as a user would have them, or None when its files are absent)
SETS: dict[str, Callable[[Path], Loaded]] = {
    "digits-features": _sklearn("digits"),  # 0..16 integers
    "wine": _sklearn("wine"),
    "iris": _sklearn("iris"),
    "breast-cancer": _sklearn("breast_cancer"),
    "synthetic": _synthetic,
    "orl": _faces("orl"),  # 0..255 images
    "jaffe": _faces("jaffe"),
    "palm": _faces("palm"),  # unbounded features
    "usps": _usps,  # [0,1] pixels
    "mnist-10k": _idx_test_split("mnist"),  # 0..255 images
    "fashion-10k": _idx_test_split("fashion-mnist"),
}
QUICK_SETS = ("wine", "digits-features")
QUICK_SETTINGS = ("model=small", "pretrain.epochs=3", "train.epochs=2", "pretrain.init=kmeans", "report.figures=false")


def write_sets(names: Sequence[str], folder: Path, root: Path) -> tuple[dict[str, tuple[Path, int]], list[str]]:
    """The sets' .npz files (written once) and their class counts; names of the sets not available."""
    folder.mkdir(parents=True, exist_ok=True)
    written, missing = {}, []
    for name in names:
        path = folder / f"{name}.npz"
        if path.is_file():
            with np.load(path) as f:
                written[name] = (path, len(np.unique(f["y"])))
            continue
        loaded = SETS[name](root)
        if loaded is None:
            missing.append(name)
            continue
        x, y = loaded
        np.savez(path, x=x, y=y)
        written[name] = (path, len(np.unique(y)))
    return written, missing


def run_one(path: Path, k: int, seed: int, run_dir: Path, overrides: Sequence[str]) -> int:
    """One `vade-run` as a user would type it; a finished run (report.json) is not run again."""
    if (run_dir / "report.json").is_file():
        return 0
    cmd = [sys.executable, "-m", "vade_cli.cli", "dataset=file", f"dataset.path={path}", f"n_clusters={k}",
           f"seed={seed}", f"hydra.run.dir={run_dir}", *overrides]
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{seed}.log", "w") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode


def summarise(name: str, jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    done = [j for j in jobs if j.get("status") == table.COMPLETED]
    part, init, final, seconds = ([table.number_at(j, table.METRICS[m]) for j in done]
                                  for m in ("partition_acc", "gmm_acc", "acc", "wall_s"))
    kept = sum(f >= p - KEEP_MARGIN for p, f in zip(part, final) if p is not None and f is not None)
    errors = sorted({str(j.get("error", j.get("status")))[:80] for j in jobs if j not in done})
    return {
        "set": name, "completed": f"{len(done)}/{len(jobs)}",
        "likelihood": "/".join(sorted({str((j.get("dataset") or {}).get("likelihood")) for j in done})) or "-",
        "partition": _pct(part), "init": _pct(init), "vade": _pct(final),
        "kept": f"{kept}/{len(done)}", "ae_cached": f"{sum(bool(j.get('pretrain_cache_hit')) for j in done)}/{len(done)}",
        "s_per_run": decimal(table.summarize(seconds)["mean"], 0),
        "errors": "; ".join(errors),
    }


def _pct(values: Sequence[float | None]) -> str:
    stats = table.summarize(values)
    return table.pct(stats["mean"], stats["std"])


HEADER = ("set", "completed", "likelihood", "partition", "init", "vade", "kept", "ae_cached", "s_per_run", "errors")


def render(rows: Sequence[dict[str, Any]], seeds: Sequence[int], overrides: Sequence[str], missing: Sequence[str]) -> str:
    caption = (f"Defaults through `dataset=file`, seeds {','.join(map(str, seeds))}"
               + (f", with {' '.join(overrides)}" if overrides else "")
               + ". ACC % mean ± std over completed seeds; kept = seeds whose VaDE ACC ends at most 1 point "
               "under their own partition's; ae_cached = runs whose autoencoder came from the cache (their "
               "seconds leave its training out).")
    if missing:
        caption += f" Skipped (files absent): {', '.join(missing)}."
    body = table.markdown_table(HEADER, [[r[h] for h in HEADER] for r in rows], left=("set", "errors"))
    return f"{caption}\n\n{body}\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vade_cli.generalization", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="two small sets with tiny settings (a smoke test)")
    p.add_argument("--seeds", default="0,1,2", type=lambda t: int_list_arg(t, "--seeds", 0))
    p.add_argument("--jobs", default=2, type=int, help="runs at once, each on one thread")
    p.add_argument("--sets", default=None, help="comma-separated subset of: " + ", ".join(SETS))
    p.add_argument("--out", default=None, type=Path)
    p.add_argument("--data-dir", default=DATA_DIR, type=Path, help="folder with mnist/, fashion-mnist/, usps/, faces/")
    p.add_argument("overrides", nargs="*", help="vade-run overrides added to every run (a lever to compare)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.sets.split(",") if args.sets else list(QUICK_SETS if args.quick else SETS)
    unknown = [n for n in names if n not in SETS]
    if unknown:
        print(f"error: unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}", file=sys.stderr)
        return 2
    out = args.out or Path("multirun") / ("generalization-quick" if args.quick else "generalization")
    overrides = [*(QUICK_SETTINGS if args.quick else ()), *args.overrides]
    if args.jobs > 1:
        overrides.append("device.threads=1")
    sets, missing = write_sets(names, out / "data", args.data_dir)
    plan = [(n, s) for n in sets for s in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda job: run_one(*sets[job[0]], job[1], out / job[0] / str(job[1]), overrides), plan))
    rows = [summarise(n, [table.load_job(out / n / str(s)) for s in args.seeds]) for n in sets]
    text = render(rows, args.seeds, args.overrides, missing)
    atomic_write_text(out / "generalization.md", text)
    print(text)
    return 0 if all(r["completed"].split("/")[0] == r["completed"].split("/")[1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
