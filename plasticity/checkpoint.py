"""Checkpoint files: written atomically, read with `weights_only=True` so no stranger code runs.

A file is written to a temporary name unique to its process and thread, flushed to disk, then renamed,
so a reader never sees half a file and a failed write leaves nothing behind. A file is read only when
it is a torch zip archive whose entries are stored uncompressed, as `torch.save` writes them, so what
is read into memory is bounded by the file's size (a compressed entry could expand a thousandfold).
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from plasticity.errors import CheckpointError, file_error
from plasticity.models import ModelSpec, create_model
from plasticity.pruning.prune import apply_structure
from plasticity.train import FilterNormHistory

FORMAT = "plasticity/checkpoint"
VERSION = 1
MAX_BYTES = 4 * 2**30  # larger than any model of the registry (VGG-16 on ImageNet: 0.55 GB)


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
            model.load_state_dict(self.state_dict)  # strict: every weight present, with its shape
        except RuntimeError as exc:
            raise CheckpointError(
                f"the checkpoint's weights do not fit a {self.spec.name}: {_first_problem(exc)}"
            ) from None
        return model.to(device)


def _first_problem(exc: RuntimeError) -> str:
    """The first line of torch's list of mismatched weights (which lists every one, KBs of it)."""
    lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
    return lines[0][:200] + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else "")


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
    write_atomically(path, buffer.getbuffer())


def write_atomically(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to a temporary file beside `path` (named for this process and thread), flushed to disk,
    then rename: a reader never sees half a file, and a failed write leaves nothing behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except OSError as exc:
        raise file_error(exc, path.parent) from None
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a checkpoint; anything else (corrupt, truncated, a foreign pickle) is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own text would advise loading it with weights_only=False: never
        raise CheckpointError(
            f"{path} is not a readable plasticity checkpoint (it holds Python objects other than tensors, "
            "so it was not loaded)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, OSError):
        raise CheckpointError(f"{path} is not a readable plasticity checkpoint (damaged or truncated)") from None
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
        raise CheckpointError(
            f"{path} is a damaged plasticity checkpoint (missing or wrong {str(exc)[:100]})"
        ) from None


def _check_archive(path: Path) -> None:
    """A torch zip archive of stored entries no larger than MAX_BYTES, before torch reads any of it."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(f"{path} is {size / 2**30:.1f} GB, larger than any plasticity checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError(f"{path} is not a readable plasticity checkpoint (not a torch zip archive)") from None
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise CheckpointError(f"{path} is not a plasticity checkpoint (compressed entries; torch.save writes none)")
    if sum(entry.file_size for entry in entries) > size:
        raise CheckpointError(f"{path} is not a readable plasticity checkpoint (its entries claim more than its size)")
