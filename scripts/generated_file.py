"""Write a generated file, or with --check say in one line that the committed copy is stale."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, argv: list[str], target: str) -> int:
    """0 when written (or, with --check, when `path` already holds `text`); 1 and a line naming `make target`."""
    if "--check" not in argv:
        path.write_text(text)
        return 0
    if path.is_file() and path.read_text() == text:
        return 0
    print(f"{path.name} is out of date: run make {target}", file=sys.stderr)
    return 1
