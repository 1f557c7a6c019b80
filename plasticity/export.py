"""A stored network out again, as a file that loads without plasticity: a state_dict, TorchScript, a
`torch.export` program, or ONNX (with the `onnx` extra). Every export is read back and run on a batch of
the data set's test images; its outputs must equal the network's within a tolerance.

The tolerance: the file is run by other kernels than the network was (TorchScript's and torch.export's
fused graphs, ONNX Runtime's own convolutions), which add the same products in another order, so float32
logits agree to about 1e-6 of their scale, not bit for bit. A file is accepted when every logit is within
`RTOL` of the largest logit's magnitude (and `ATOL`); a wrong weight or a wrong pruned shape is off by
orders of magnitude more.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from plasticity.checkpoint import load_checkpoint
from plasticity.data import load_dataset
from plasticity.errors import InvalidConfigError, PlasticityError
from plasticity.registry import Registry
from plasticity.store import RunStore

RTOL = 1e-4
ATOL = 1e-5
CHECK_BATCH = 8
CLASSIFIER_KINDS = ("prune", "train", "masks", "hbfp", "hbfp-round")
SCENE_KINDS = ("scene-train", "scene-prune")  # detectors and SegNets
EXPORTABLE_KINDS = CLASSIFIER_KINDS + SCENE_KINDS
DETECTOR_FORMATS = ("state-dict", "torchscript")
TASK_FORMATS = {"detection": DETECTOR_FORMATS, "segmentation": ("state-dict", "torchscript", "exported-program")}


class ExportError(PlasticityError):
    """An export that could not be written, or whose file does not compute what the network does."""


@dataclass(frozen=True)
class Format:
    """How a network is written to a file, and how that file is run again without plasticity."""

    name: str
    suffix: str
    save: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path, nn.Module], Callable[[torch.Tensor], torch.Tensor]]
    loads_with: str  # what a user runs to load the file, shown in the docs and the result


FORMATS: Registry[Format] = Registry("export format")


def list_formats() -> list[str]:
    return FORMATS.names()


def _save_state_dict(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, out)


def _load_state_dict(out: Path, model: nn.Module):
    """A state_dict needs the architecture's code: the check loads it into a fresh copy of the network."""
    fresh = copy.deepcopy(model)
    fresh.load_state_dict(torch.load(out, map_location="cpu", weights_only=True))
    return fresh


def _save_torchscript(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    with _quiet_torchscript():
        torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(out))


def _load_torchscript(out: Path, model: nn.Module):
    with _quiet_torchscript():
        return torch.jit.load(str(out))


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """torch marks TorchScript deprecated (in favour of torch.export) with a warning per call; it still
    works, and docs/own-models.md says which format to prefer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _save_exported_program(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    if len(example) == 1:  # torch.export takes a batch of one for a constant one
        example = example.expand(2, *example.shape[1:])
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(out))


def _save_onnx(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    _onnx_runtime()  # the extra is checked before any work
    torch.onnx.export(
        model,
        (example,),
        str(out),
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )


def _load_onnx(out: Path, model: nn.Module):
    session = _onnx_runtime().InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def _onnx_runtime():
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'plasticity[onnx]'") from None
    return onnxruntime


FORMATS.register("state-dict")(
    Format("state-dict", ".pt", _save_state_dict, _load_state_dict, "torch.load(FILE, weights_only=True)")
)
FORMATS.register("torchscript")(
    Format("torchscript", ".pt", _save_torchscript, _load_torchscript, "torch.jit.load(FILE)")
)
FORMATS.register("exported-program")(
    Format(
        "exported-program",
        ".pt2",
        _save_exported_program,
        lambda out, _: torch.export.load(str(out)).module(),
        "torch.export.load(FILE).module()",
    )
)
FORMATS.register("onnx")(Format("onnx", ".onnx", _save_onnx, _load_onnx, "onnxruntime.InferenceSession(FILE)"))


def export_model(model: nn.Module, batch: torch.Tensor, fmt: str, out: Path | str, *, detector: bool = False) -> dict:
    """Write `model` to `out` in format `fmt`, load the file back and check its outputs on `batch`. A
    `detector` (torchvision's detection API: a list of images in, a dict of boxes, labels and scores per
    image out) is scripted rather than traced, and compared box for box."""
    how = FORMATS.get(fmt)
    if detector and fmt not in DETECTOR_FORMATS:
        raise ExportError(
            f"a detector exports as {' or '.join(DETECTOR_FORMATS)}: how many boxes its post-processing keeps "
            f"depends on the image, which {fmt} cannot express here"
        )
    out = Path(out).expanduser()
    model = model.cpu().eval().to(memory_format=torch.contiguous_format)
    batch = batch.cpu().contiguous()
    save = _save_scripted if detector and fmt == "torchscript" else how.save
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        save(model, batch, out)
        with torch.no_grad():
            if detector:
                expected = _detections(model(list(batch)))
                got = _detections(how.load(out, model)(list(batch)))
            else:
                expected, got = model(batch), how.load(out, model)(batch)
    except PlasticityError:
        raise
    except Exception as exc:  # the exporters' own errors: an op they cannot write, say
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise ExportError(f"the {fmt} export failed: {exc.__class__.__name__}: {first_line}") from None
    same_shape = got.shape == expected.shape
    difference = float((got - expected).abs().max()) if same_shape and expected.numel() else 0.0
    tolerance = ATOL + RTOL * (float(expected.abs().max()) if expected.numel() else 0.0)
    if not same_shape or not difference <= tolerance:
        found = f"largest difference {difference:.3g}" if same_shape else f"outputs of shape {tuple(got.shape)}"
        raise ExportError(
            f"the {fmt} file at {out} does not compute what the network does: {found} on {len(batch)} test images "
            f"(tolerance {tolerance:.3g}, expected shape {tuple(expected.shape)})"
        )
    return {
        "format": fmt,
        "out": str(out),
        "bytes": out.stat().st_size,
        "loads_with": how.loads_with,
        "checked_images": len(batch),
        "max_abs_diff": difference,
        "tolerance": tolerance,
    }


def _save_scripted(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    with _quiet_torchscript():
        torch.jit.save(torch.jit.script(model), str(out))


def _detections(output) -> torch.Tensor:
    """A detector's output as one tensor: every image's boxes, scores and labels. A scripted detector
    returns (losses, detections)."""
    detections = output[1] if isinstance(output, tuple) else output
    return torch.cat([torch.cat([d["boxes"].flatten(), d["scores"], d["labels"].float()]) for d in detections])


def export_run(store: RunStore, key: str, fmt: str, out: Path | str) -> dict:
    """The network of the stored run `key` (a pruned and fine-tuned one, or a base) written to `out`."""
    FORMATS.get(fmt)  # an unknown format fails before the checkpoint is read
    run = store.get(key)
    if run is None:
        raise InvalidConfigError(f"no run {key!r} in {store.path}; `plasticity runs` lists the keys")
    if run.kind not in EXPORTABLE_KINDS:
        raise InvalidConfigError(f"run {key} is a {run.kind} run; export takes {', '.join(EXPORTABLE_KINDS)} runs")
    if not run.done or run.checkpoint is None or not run.checkpoint.exists():
        raise InvalidConfigError(f"run {key} is {run.status} and has no network stored; finish it first")
    if run.kind in SCENE_KINDS:
        from plasticity.tasks.runs import stored_network  # torchvision's detection code loads only here

        model, batch, detector = stored_network(store, run.kind, run.config)
        return {"key": key, "kind": run.kind, **export_model(model, batch, fmt, out, detector=detector)}
    checkpoint = load_checkpoint(run.checkpoint)
    model = checkpoint.build_model("cpu")
    batch = _test_batch(checkpoint.config)
    return {"key": key, "kind": run.kind, **export_model(model, batch, fmt, out)}


def _test_batch(config: dict) -> torch.Tensor:
    """The first test images of the run's data set, normalised as the network reads them."""
    base = config.get("base", config)
    while isinstance(base.get("base"), dict):  # an HBFP round's config holds its run's, which holds the base
        base = base["base"]
    data = load_dataset(base["dataset"])
    return data.normalize(data.test.images[:CHECK_BATCH])


def exported_bytes(store: RunStore, key: str, fmt: str) -> bytes:
    """The checked export of run `key` as bytes (for a download), written through a temporary file."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{key}{FORMATS.get(fmt).suffix}"
        export_run(store, key, fmt, out)
        return out.read_bytes()
