"""Bad input ends with one clear line on stderr and exit code 2, before any work is written.

Each case runs the real `vade-run` entry point in-process (a subprocess per case would cost a torch
import each); the run folder may then hold only Hydra's own files.
"""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config, run_cli

HYDRA_OWN = {".hydra", "cli.log"}


def write_files(root):
    """Small broken data files, one per way a user's file can be wrong."""
    files = {}
    np.save(root / "good.npy", np.random.default_rng(0).random((30, 4)).astype(np.float32))
    files["empty"] = root / "empty.npy"
    np.save(files["empty"], np.zeros((0, 4), dtype=np.float32))
    files["text"] = root / "text.npy"
    files["text"].write_text("this is not an array\n")
    nan = np.random.default_rng(0).random((30, 4))
    nan[3, 1] = np.nan
    files["nan"] = root / "nan.npy"
    np.save(files["nan"], nan)
    inf = np.random.default_rng(0).random((30, 4))
    inf[0, 0] = np.inf
    files["inf"] = root / "inf.npz"
    np.savez(files["inf"], x=inf)
    files["labels"] = root / "labels.npz"
    np.savez(files["labels"], x=np.random.default_rng(0).random((30, 4)), y=np.arange(29) % 3)
    files["one"] = root / "one.npy"
    np.save(files["one"], np.ones((1, 4)))
    files["strings"] = root / "strings.csv"
    files["strings"].write_text("a,b,c\n1,2,x\n3,4,y\n5,6,z\n")
    files["corrupt_run"] = root / "corrupt_run"
    (files["corrupt_run"] / ".hydra").mkdir(parents=True)
    (files["corrupt_run"] / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(compose_config([], root)))
    (files["corrupt_run"] / "checkpoints").mkdir()
    (files["corrupt_run"] / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    files["foreign_run"] = root / "foreign_run"
    (files["foreign_run"] / ".hydra").mkdir(parents=True)
    (files["foreign_run"] / ".hydra" / "config.yaml").write_text("lr: 3\n")
    files["not_a_dir"] = root / "plain_file"
    files["not_a_dir"].write_text("")
    return files


CASES = {
    "misspelt dataset": (["dataset=mnsit"], "dataset"),
    "unknown device": (["device=tpu"], "device"),
    "misspelt key": (["train.epoch=3"], "epoch"),
    "n_clusters 0": (["n_clusters=0"], "n_clusters"),
    "n_clusters 1": (["n_clusters=1"], "n_clusters"),
    "n_clusters negative": (["n_clusters=-3"], "n_clusters"),
    "n_clusters above N": (["n_clusters=5000"], "n_clusters"),
    "epochs negative": (["train.epochs=-1"], "train.epochs"),
    "pretrain epochs 0": (["pretrain.epochs=0"], "pretrain.epochs"),
    "init draws 0": (["pretrain.init_draws=0"], "pretrain.init_draws"),
    # Retired settings are gone, not ignored: naming one is an unknown key.
    "retired objective": (["objective=max_q"], "objective"),
    "retired flush_denormal": (["device.flush_denormal=false"], "device.flush_denormal"),
    "retired debian_dir": (["dataset=fashion_mnist", "dataset.debian_dir=/tmp"], "dataset.debian_dir"),
    "align epochs negative": (["pretrain.align_epochs=-2"], "pretrain.align_epochs"),
    "step budget 0": (["pretrain.max_steps=0"], "pretrain.max_steps"),
    "min epochs negative": (["pretrain.min_epochs=-1"], "pretrain.min_epochs"),
    "batch size 0": (["train.batch_size=0"], "train.batch_size"),
    "batch size above N": (["train.batch_size=100000"], "train.batch_size"),
    "lr 0": (["train.lr=0"], "train.lr"),
    "lr negative": (["train.lr=-0.1"], "train.lr"),
    "lr not a number": (["train.lr=fast"], "lr"),
    "hidden empty": (["model.hidden=[]"], "model.hidden"),
    "hidden non-positive": (["model.hidden=[64,0]"], "model.hidden"),
    "latent size 0": (["model.latent_dim=0"], "model.latent_dim"),
    "unknown task": (["task=dance"], "task"),
    "file missing": (["dataset=file", "dataset.path={root}/nope.npy", "n_clusters=3"], "nope.npy"),
    "file empty": (["dataset=file", "dataset.path={empty}", "n_clusters=3"], "empty"),
    "file not an array": (["dataset=file", "dataset.path={text}", "n_clusters=3"], "text.npy"),
    "file with NaN": (["dataset=file", "dataset.path={nan}", "n_clusters=3"], "NaN"),
    "file with inf": (["dataset=file", "dataset.path={inf}", "n_clusters=3"], "inf"),
    "labels of wrong length": (["dataset=file", "dataset.path={labels}", "n_clusters=3"], "labels"),
    "one sample": (["dataset=file", "dataset.path={one}", "n_clusters=2"], "sample"),
    "string columns": (["dataset=file", "dataset.path={strings}", "n_clusters=2"], "column"),
    "file without n_clusters": (["dataset=file", "dataset.path={root}/good.npy"], "n_clusters"),
    "resume from a non-run": (["resume={root}"], "not a vade-cli run folder"),
    "resume from a foreign run": (["resume={foreign_run}"], "not a vade-cli run config"),
    "resume from a corrupt checkpoint": (["resume={corrupt_run}"], "last.pt"),
    "output folder not writable": (["hydra.run.dir={not_a_dir}/run"], "cannot write"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_one_line_exit_2(name, tmp_path, monkeypatch, capsys):
    files = write_files(tmp_path)
    args, expected = CASES[name]
    args = [a.format(root=tmp_path, **files) for a in args]
    run_dir = tmp_path / "run"
    if not any(a.startswith("hydra.run.dir") for a in args):
        args.append(f"hydra.run.dir={run_dir}")
    base = [] if args[0].startswith("resume=") else ["pretrain.epochs=1", "train.epochs=1"]
    code = run_cli(["device=cpu", *base, *args], monkeypatch)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and expected.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    if run_dir.exists():
        assert {p.name for p in run_dir.iterdir()} <= HYDRA_OWN


def test_cuda_without_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = run_cli(["device=cuda", f"hydra.run.dir={tmp_path}/run"], monkeypatch)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "CUDA" in err


def test_compile_on_the_cpu_without_a_compiler_is_one_line(tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    code = run_cli(["device=cpu", "device.compile=true", f"hydra.run.dir={tmp_path}/run"], monkeypatch)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "device.compile" in err and "g++" in err
    assert not (tmp_path / "run").exists() or {p.name for p in (tmp_path / "run").iterdir()} <= HYDRA_OWN
