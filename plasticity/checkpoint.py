"""Checkpoint files: written atomically, read with `weights_only=True` so no stranger code runs."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from plasticity.errors import CheckpointError
from plasticity.models import ModelSpec, create_model
from plasticity.pruning.prune import apply_structure
from plasticity.train import FilterNormHistory

FORMAT = "plasticity/checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    spec: ModelSpec
    config: dict  # the run's whole configuration
    state_dict: dict[str, torch.Tensor]
    structure: dict[str, list[int]] = field(default_factory=dict)  # conv -> surviving original filters
    history: FilterNormHistory | None = None

    def build_model(self, device: torch.device | str = "cpu") -> nn.Module:
        """The network, pruned to `structure`, with the saved weights."""
        model = create_model(ModelSpec(**{**self.spec.to_dict(), "pretrained": False}))
        if self.structure:
            example = torch.zeros(1, self.spec.in_channels, self.spec.image_size, self.spec.image_size)
            apply_structure(model, self.structure, example)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"the checkpoint's weights do not fit a {self.spec.name}: {exc}") from None
        return model.to(device)


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write the checkpoint atomically (`write_atomically`)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": checkpoint.spec.to_dict(),
        "config": checkpoint.config,
        "structure": checkpoint.structure,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in checkpoint.state_dict.items()},
        "history": checkpoint.history.state_dict() if checkpoint.history is not None else None,
    }
    buffer = io.BytesIO()  # not a file name: torch names the archive after it, and the bytes must not vary
    torch.save(payload, buffer)
    write_atomically(path, buffer.getvalue())


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a checkpoint; anything else (corrupt, truncated, a foreign pickle) is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(f"{path} is not a readable plasticity checkpoint ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a plasticity checkpoint (no {FORMAT!r} marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}; this plasticity reads {VERSION}"
        )
    try:
        history = payload["history"]
        return Checkpoint(
            spec=ModelSpec(**payload["spec"]),
            config=payload["config"],
            state_dict=payload["state_dict"],
            structure={k: list(v) for k, v in payload["structure"].items()},
            history=FilterNormHistory.from_state_dict(history) if history is not None else None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is a damaged plasticity checkpoint (missing or wrong {exc})") from None
