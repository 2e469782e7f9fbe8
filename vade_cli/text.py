"""Text helpers shared by the CLI, the run report, the figures' report and the sweep tables."""

from __future__ import annotations

import re
from typing import Any


def one_line(text: Any, limit: int | None = None, sep: str = "; ") -> str:
    """A message as one line: Hydra's and OmegaConf's multi-line errors folded, lines joined by `sep`.

    Hydra's option lists become "; available options for GROUP: a b c" and OmegaConf's trailing
    "full_key: ..." context is dropped. With `limit` (a table cell), runs of whitespace collapse to
    one space and the text is cut to `limit` characters, ending in "...".
    """
    flat = re.sub(r"\n\s*Available options in '([^']+)':", rf"{sep}available options for \1:", str(text))
    flat = re.sub(r"\n\t", " ", flat)
    flat = re.sub(r"\s*\n\s*", sep, flat.strip()).split(f"{sep}full_key:")[0]
    if limit is None:
        return flat
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def decimal(value: Any, digits: int = 4) -> str:
    """A number with `digits` decimals; '-' for anything that is not a number (None, a bool, a string)."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
