"""README and the generated docs: short, generated where they quote numbers or defaults, never stale."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_readme_is_short_with_the_setup_commands_first():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    assert max(len(line) for line in lines) <= 250
    first = "\n".join(lines[:30])
    assert "make run" in first and "make test" in first


def test_readme_results_table_is_the_rendered_csv():
    check = subprocess.run([sys.executable, "scripts/results_table.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_configuration_reference_quotes_the_shipped_yaml():
    check = subprocess.run([sys.executable, "scripts/config_reference.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
