"""The one-shot GPU check script, in its CPU dry mode: same plumbing, tiny settings."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # a small sweep, two runs and the tests' plumbing in subprocesses
def test_gpu_check_dry_run_writes_a_summary(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry", "--seeds", "0,1", "--jobs", "2",
         "--budget-s", "300", "--out", str(out)],
        capture_output=True, text=True, timeout=400, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {j: s["rc"] for j, s in summary["jobs"].items()} == {"sweep": 0, "parity_fp32": 0, "parity_fast": 0}
    assert [r["seed"] for r in summary["sweep"]] == [0, 1] and all(0 <= r["acc"] <= 1 for r in summary["sweep"])
    assert all(p is not None and p["epochs"] == 2 for p in summary["parity"].values())
    assert summary["sweep_acc"]["n"] == 2 and "| digits |" in summary["table_md"]
    assert (out / "summary.md").is_file() and (out / "logs.tar.gz").is_file()
