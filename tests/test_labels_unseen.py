"""Labels are for reporting only: permuting them must change nothing but the scores."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from vade_cli import checkpoint, data
from vade_cli.run import train_run


def _run(make_cfg, tmp_path, name, monkeypatch, permute: bool, *overrides):
    real_load = data.load

    def load(cfg):
        ds = real_load(cfg)
        if permute:
            ds = dataclasses.replace(ds, y=np.random.default_rng(7).permutation(ds.y))
        return ds

    monkeypatch.setattr(data, "load", load)
    run_dir = tmp_path / name
    result = train_run(make_cfg("dataset=synthetic", "pretrain.cache=false", *overrides), run_dir, progress_enabled=False)
    return run_dir, result


@pytest.mark.parametrize("init", ["gmm", "kmeans"])
def test_permuted_labels_give_identical_training(make_cfg, tmp_path, monkeypatch, init):
    # epochs: held at the partition, half released, free (q(c|x) = p(c|z))
    extra = [f"pretrain.init={init}", "train.anchor_epochs=1", "train.epochs=3", "pretrain.epochs=10"]
    a_dir, a = _run(make_cfg, tmp_path, "a", monkeypatch, False, *extra)
    b_dir, b = _run(make_cfg, tmp_path, "b", monkeypatch, True, *extra)

    assert a["final_elbo"] == b["final_elbo"] and a["cluster_sizes"] == b["cluster_sizes"]
    assert a["metrics"]["final"]["acc"] > 0.5 > b["metrics"]["final"]["acc"]  # the labels really differed
    for rel in (checkpoint.LAST, checkpoint.GMM_INIT_PT):
        sa, sb = (checkpoint.load(d / rel, kind=None) for d in (a_dir, b_dir))
        tensors = sa["model"] if "model" in sa else {k: v for k, v in sa.items() if isinstance(v, torch.Tensor)}
        other = sb["model"] if "model" in sb else sb
        for key, value in tensors.items():
            assert torch.equal(value, other[key]), key

    def label_free(run_dir):
        rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("acc", "nmi", "ari")} for r in rows]

    assert label_free(a_dir) == label_free(b_dir)
