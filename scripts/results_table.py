"""Render README's results table from docs/results.csv, so the table cannot drift from the numbers it quotes.

    python scripts/results_table.py           # rewrite the table between README's markers
    python scripts/results_table.py --check   # exit 1 when README's table differs from the CSV

Each CSV row is one measured setting: the command that made it, and what `python -m
vade_cli.sweeps.table <folder>` (or `vade_cli.generalization`) printed for it.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from generated_file import write_or_check

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "docs" / "results.csv"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin (make readme-table renders docs/results.csv) -->", "<!-- results:end -->"
HEADER = ("data", "seeds", "partition", "init", "VaDE", "s per seed", "paper VaDE", "N2D", "command")


def render(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        cells = [r["data"], r["seeds"], r["partition"], r["init"], f"**{r['vade']}**", r["s_per_seed"],
                 r["paper_vade"] or "-", r["n2d"] or "-", f"`{r['command']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rendered_readme(readme: str, table: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str]) -> int:
    with CSV.open(newline="") as f:
        table = render(list(csv.DictReader(f)))
    return write_or_check(README, rendered_readme(README.read_text(), table), argv, "readme-table")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
