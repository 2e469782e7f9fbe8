"""`make generalization`: the defaults through `dataset=file` as a user types them, tabulated per set."""

from __future__ import annotations

import numpy as np

from vade_cli import generalization


def test_quick_mode_runs_every_set_as_a_user_would_and_tabulates_it(tmp_path):
    code = generalization.main(["--quick", "--seeds", "0", "--jobs", "2", "--out", str(tmp_path)])
    assert code == 0
    text = (tmp_path / "generalization.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| set", "| ---"))]
    assert [r.split("|")[1].strip() for r in rows] == list(generalization.QUICK_SETS)
    for name in generalization.QUICK_SETS:
        assert (tmp_path / name / "0" / "report.json").is_file()
        cmd = (tmp_path / name / "0" / ".hydra" / "overrides.yaml").read_text()
        assert "dataset=file" in cmd and f"dataset.path={tmp_path / 'data' / name}.npz" in cmd
    assert "| wine | 1/1 | gaussian |" in text  # standardised table columns: the Gaussian decoder
    assert "| digits-features | 1/1 | bernoulli |" in text  # 0..16 integers: Bernoulli on x / 16
    # a finished run is not run again: the table comes back the same from the folder
    assert generalization.main(["--quick", "--seeds", "0", "--out", str(tmp_path)]) == 0


def test_a_seed_keeps_its_partition_within_one_point():
    def job(partition, final):
        return {"status": "completed", "init": {"partition_metrics": {"acc": partition}},
                "metrics": {"gmm_init": {"acc": partition}, "final": {"acc": final}}, "timings": {"total_s": 1.0},
                "dataset": {"likelihood": "gaussian"}}

    row = generalization.summarise("x", [job(0.90, 0.895), job(0.90, 0.88), {"status": "failed", "error": "boom"}])
    assert row["completed"] == "2/3" and row["kept"] == "1/2" and "boom" in row["errors"]
    assert row["vade"] == f"{100 * np.mean([0.895, 0.88]):.2f} ± {100 * np.std([0.895, 0.88], ddof=1):.2f}"
