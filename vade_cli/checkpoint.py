"""Run-folder files written so that a kill at any moment leaves the old or the new version, never half.

Every file goes to a temporary name in the same folder, is flushed and fsynced, then renamed over
the target (rename is atomic within one filesystem). Checkpoints carry a format tag so a foreign
or truncated file is named in a one-line error instead of a pickle traceback.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from vade_cli.errors import CheckpointError

FORMAT = "vade-cli/1"

# Run-folder layout, in one place.
CHECKPOINT_DIR = "checkpoints"
LAST = "checkpoints/last.pt"
PRETRAIN = "checkpoints/pretrain.pt"
CONFIG = "checkpoints/config.json"  # the config the checkpoints belong to: a reused sweep folder is checked against it
REPLACED_DIR = ".replaced"  # in a sweep folder: job files of another config, set aside, never tabulated
GMM_INIT_PT = "gmm_init.pt"
GMM_INIT_JSON = "gmm_init.json"
METRICS = "metrics.jsonl"
REPORT = "report.json"
REPORT_MD = "report.md"
FIGURES_DIR = "figures"


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write to a temporary name and rename over `path`; `durable` also fsyncs (survives power loss,
    not only a killed process), which costs milliseconds per call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save(path: Path, payload: dict[str, Any]) -> None:
    """torch.save a dict of tensors and plain values, atomically, tagged with the format."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by `save`; any other file gives a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, random bytes
        raise CheckpointError(
            f"cannot read checkpoint {path}: truncated or not a vade-cli checkpoint ({type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vade-cli checkpoint (format tag missing or unknown)")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path} holds a '{payload.get('kind')}' checkpoint, expected '{kind}'")
    return payload
