"""What both demo training scripts share: determinism and the training team's plain layout.

The training side is written as an independent team would write it (it does not use tilecast's
serving code); these helpers are that team's own, shared by its two scripts.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def make_deterministic(seed: int) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; these files are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, model: Any, *, steps: int, architecture: str) -> bytes:
    """``best_model.pth``: state_dict, step and architecture (name + params); returns its bytes."""
    buffer = io.BytesIO()  # in memory, so the archive's inner name does not vary with the path
    torch.save(
        {
            "state_dict": model.state_dict(),
            "step": steps,
            "architecture": {"name": architecture, "params": model.config},
        },
        buffer,
    )
    weights = buffer.getvalue()
    write_atomic(path, weights)
    return weights
