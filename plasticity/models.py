"""Models by name, each built for a data set's channels, image size and classes.

`create_model("lenet5", in_channels=1, num_classes=10, image_size=28)` builds one; names of the
form `torchvision:<name>` build torchvision's ImageNet models (with `pretrained=True`, their
weights, fetched once into torch's hub cache). A user's own network is named by its factory,
`module.path:factory` or `path/to/file.py:factory`, a function that takes the number of classes and
returns an `nn.Module`; a file's name carries the hash of its content (`...py:factory@3f2a...`), so
a run's key changes when the file does. `read_weights` reads a user's weights file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import pickle
import re
import sys
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from plasticity.errors import DatasetUnavailableError, InvalidConfigError, UnknownNameError
from plasticity.registry import Registry

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    """What a model is built for: stored with every checkpoint so it can be rebuilt."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    width: float = 1.0
    pretrained: bool = False

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "width": self.width,
            "pretrained": self.pretrained,
        }


MODELS: Registry[Callable[[ModelSpec], nn.Module]] = Registry("model")
TORCHVISION_PREFIX = "torchvision:"


def list_models() -> list[str]:
    return MODELS.names() + MODELS.families()


def create_model(spec: ModelSpec) -> nn.Module:
    if spec.width <= 0:
        raise InvalidConfigError(f"width must be positive; got {spec.width}")
    if is_user_model(spec.name):
        return _user_model(spec)
    factory = MODELS.get(spec.name)
    if spec.pretrained and not getattr(factory, "pretrained_weights", False):
        raise InvalidConfigError(
            f"{spec.name} has no pretrained weights; pretrained weights exist for {TORCHVISION_PREFIX}<name> models"
        )
    return factory(spec)


def classifier_layer(model: nn.Module) -> nn.Module:
    """The last Linear layer: its outputs are the classes and are never pruned."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidConfigError("the model has no Linear classifier layer")
    return linears[-1]


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """Caffe's LeNet (conv 20 -> conv 50 -> fc 500 -> classes), the network of the HBFP paper.

    A ReLU follows each pooled convolution (Caffe's has none there) so that activation
    criteria such as APoZ see the rectified outputs they were defined on. Images smaller than
    28 pixels get padded convolutions, so the 8x8 digits still fit.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        pad = 0 if spec.image_size >= 28 else 2
        c1, c2, hidden = _scaled(20, spec.width), _scaled(50, spec.width), _scaled(500, spec.width)
        self.conv1 = nn.Conv2d(spec.in_channels, c1, 5, padding=pad)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=pad)
        size = ((spec.image_size + 2 * pad - 4) // 2 + 2 * pad - 4) // 2
        self.fc1 = nn.Linear(c2 * size * size, hidden)
        self.fc2 = nn.Linear(hidden, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(nn.functional.max_pool2d(self.conv1(x), 2))
        x = nn.functional.relu(nn.functional.max_pool2d(self.conv2(x), 2))
        x = nn.functional.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


_VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@MODELS.register("vgg16")
class VGG16(nn.Module):
    """CIFAR-style VGG-16 with BatchNorm; `width` scales every layer.

    Pooling stops once the feature map is 1x1, so it also builds for 28x28 and smaller images.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = spec.in_channels, spec.image_size
        for item in _VGG16_PLAN:
            if item == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            out = _scaled(item, spec.width)
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nn.functional.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNets of He et al. (6n+2 layers, 16-32-64 channels), projection shortcuts."""

    def __init__(self, spec: ModelSpec, depth: int):
        super().__init__()
        n = (depth - 2) // 6
        widths = [_scaled(c, spec.width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(spec.in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_planes = [], widths[0]
        for stage, planes in enumerate(widths):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


MODELS.register("resnet20")(lambda spec: CifarResNet(spec, 20))
MODELS.register("resnet56")(lambda spec: CifarResNet(spec, 56))


@MODELS.register("mobilenet_v2")
def _mobilenet_v2(spec: ModelSpec) -> nn.Module:
    """torchvision's MobileNetV2 with a stride-1 stem, so small images keep some resolution."""
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(num_classes=spec.num_classes, width_mult=spec.width)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(spec.in_channels, stem.out_channels, 3, 1, 1, bias=False)
    return model


class _GreyToRGB(nn.Module):
    """Lets a 3-channel ImageNet model read 1-channel images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


@MODELS.register_family(TORCHVISION_PREFIX)
def _torchvision_model(spec: ModelSpec) -> nn.Module:
    import torchvision

    name = spec.name.removeprefix(TORCHVISION_PREFIX)
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise UnknownNameError("torchvision model", name, known)
    if spec.width != 1.0:
        raise InvalidConfigError("width scaling applies to plasticity's own models, not to torchvision's")
    if spec.pretrained:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
        model = fetched_weights(name, url, lambda: torchvision.models.get_model(name, weights="DEFAULT"))
    else:
        model = torchvision.models.get_model(name, weights=None)
    _replace_head(model, spec.num_classes)
    if spec.in_channels == 1:
        model = nn.Sequential(_GreyToRGB(), model)
    elif spec.in_channels != 3:
        raise InvalidConfigError(f"torchvision models read 1- or 3-channel images, not {spec.in_channels}")
    return model


def fetched_weights(name: str, url: str, fetch: Callable[[], T]) -> T:
    """`fetch()`, which reads torchvision's pretrained weights of `name` (from `url`) from torch's hub cache
    or downloads them into it. torchvision unpickles its files in full: one already in the cache is read
    with `weights_only=True` first, so a file holding anything but tensors is refused unopened. A cache
    without the file on a machine offline is a one-line error."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.exists():
        read_weights(cached)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # torch.hub says "Downloading" on stdout, which --json owns
            return fetch()
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise DatasetUnavailableError(
            f"the pretrained weights of {name} are not in torch's hub cache and could not be downloaded "
            f"({exc.__class__.__name__}: {exc}); connect once, or train from scratch without --pretrained"
        ) from None


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear for one with `num_classes` outputs (kept if it already fits)."""
    head = classifier_layer(model)
    if head.out_features == num_classes:
        return
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is head:
                setattr(parent, child_name, nn.Linear(head.in_features, num_classes))
                return


_torchvision_model.pretrained_weights = True  # type: ignore[attr-defined]


# --- the user's own network and weights ----------------------------------------------------------------

HASH_DIGITS = 12  # of a file's SHA-1, in its name: enough to tell two versions of one file apart
_HEX = re.compile(rf"[0-9a-f]{{{HASH_DIGITS}}}")
_USER_MODULES: dict[str, types.ModuleType] = {}  # a file's module per (path, hash), loaded once


def is_user_model(name: str) -> bool:
    """`module.path:factory` or `path/to/file.py:factory` (not a registered name or family)."""
    return ":" in name and name not in MODELS


def file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:HASH_DIGITS]


def _existing_file(text: str, what: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise InvalidConfigError(f"no {what} file at {path}")
    return path


def hashed_path(text: str, what: str) -> str:
    """`/abs/path@<hash of its content>`; a text that carries a hash already is a stored run's, naming the
    version it was made with, and is kept as it is."""
    path, _, recorded = text.rpartition("@")
    if path and _HEX.fullmatch(recorded):
        return text
    path = _existing_file(text, what)
    return f"{path}@{file_hash(path)}"


def canonical_model_name(name: str) -> str:
    """The one spelling of a model name that runs are keyed by: a file-based factory as
    `/abs/file.py:factory@<hash of the file>`; every other name as it is."""
    if not is_user_model(name):
        return name
    target, factory, recorded = _parts(name)
    if not _is_file(target) or recorded:
        return name
    path = _existing_file(target, "model")
    return f"{path}:{factory}@{file_hash(path)}"


def _parts(name: str) -> tuple[str, str, str]:
    """ "net.py:make@3f2a..." -> ("net.py", "make", "3f2a...")."""
    target, _, factory = name.rpartition(":")
    factory, _, recorded = factory.partition("@")
    if not target or not factory.isidentifier():
        raise InvalidConfigError(f"write your model as module.path:factory or path/to/file.py:factory; got {name!r}")
    return target, factory, recorded


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target


def _user_model(spec: ModelSpec) -> nn.Module:
    if spec.width != 1.0 or spec.pretrained:
        raise InvalidConfigError(f"{spec.name} is your own network: it has no width multiplier or pretrained weights")
    factory = _factory(spec.name)
    try:
        model = factory(spec.num_classes)
    except Exception as exc:  # the user's code: any error is theirs to read, on one line
        raise InvalidConfigError(f"{spec.name}({spec.num_classes}) raised {exc.__class__.__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise InvalidConfigError(f"{spec.name} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _factory(name: str) -> Callable[[int], nn.Module]:
    target, factory, recorded = _parts(name)
    module = _load_file(target, recorded) if _is_file(target) else _import(target)
    function = getattr(module, factory, None)
    if not callable(function):
        raise InvalidConfigError(f"{target} has no function {factory}")
    return function


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module's own code raises
        raise InvalidConfigError(f"cannot import {module_name}: {exc.__class__.__name__}: {exc}") from None


def _load_file(target: str, recorded: str) -> types.ModuleType:
    path = verified_file(f"{target}@{recorded}" if recorded else target, "model")
    key = hashed_path(str(path), "model")
    if key not in _USER_MODULES:
        spec = importlib.util.spec_from_file_location(f"plasticity_user_model_{key[-HASH_DIGITS:]}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[spec.name]
            raise InvalidConfigError(f"cannot load {path}: {exc.__class__.__name__}: {exc}") from None
        _USER_MODULES[key] = module
    return _USER_MODULES[key]


def verified_file(text: str, what: str) -> Path:
    """The file a `hashed_path` names, checked to be the version it was made with."""
    path, _, recorded = text.rpartition("@")
    if not (path and _HEX.fullmatch(recorded)):
        return _existing_file(text, what)
    found = _existing_file(path, what)
    if (digest := file_hash(found)) != recorded:
        raise InvalidConfigError(
            f"the {what} file {found} has changed since this run was made (content {recorded}, now {digest}); "
            "name the file again to make a new base from it"
        )
    return found


def read_weights(path: Path | str) -> dict[str, torch.Tensor]:
    """The state_dict in a weights file: a bare state_dict (torchvision's own weights files), or a training
    checkpoint holding one under `model`, `state_dict` or `model_state_dict` (torchvision's reference
    scripts save `{"model": ..., "optimizer": ..., "args": Namespace}`). Read with `weights_only=True`;
    argparse's Namespace, plain data, is the one class besides tensors that is let through."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise InvalidConfigError(f"{path} is not a readable weights file ({first_line})") from None
    for candidate in (payload, *(payload.get(k) for k in ("model", "state_dict", "model_state_dict"))):
        if isinstance(candidate, dict) and candidate and all(isinstance(v, torch.Tensor) for v in candidate.values()):
            return {k.removeprefix("module."): v for k, v in candidate.items()}  # DataParallel's prefix
        if not isinstance(payload, dict):
            break
    raise InvalidConfigError(f"{path} holds no state_dict (a dict of tensors, or one under 'model' or 'state_dict')")


def load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into `model`. A classifier of another number of classes keeps its fresh initialisation
    (ImageNet weights for a 10-class task); any other mismatch names the parameters."""
    target = model[1] if isinstance(model, nn.Sequential) and isinstance(model[0], _GreyToRGB) else model
    head = classifier_layer(target)
    load_fitting(target, state, next(name for name, module in target.named_modules() if module is head) + ".")


def load_fitting(target: nn.Module, state: dict[str, torch.Tensor], head_prefix: str) -> None:
    """Load `state` into `target`, except the parameters under `head_prefix` whose shapes differ (a head
    for another number of classes keeps its fresh initialisation). BatchNorm counters a file lacks
    (torchvision's frozen BatchNorm has none) stay at zero; any other mismatch names the parameters."""
    own = target.state_dict()
    misfits = {k for k, v in state.items() if k in own and own[k].shape != v.shape}
    wrong = [f"{k} {tuple(state[k].shape)} (the model's {tuple(own[k].shape)})" for k in sorted(misfits)]
    if any(not k.startswith(head_prefix) for k in misfits):
        raise InvalidConfigError(f"the weights do not fit the model: {', '.join(wrong[:3])}")
    missing, unexpected = target.load_state_dict({k: v for k, v in state.items() if k not in misfits}, strict=False)
    missing = [k for k in missing if not k.startswith(head_prefix) and not k.endswith(".num_batches_tracked")]
    if missing or unexpected:
        raise InvalidConfigError(
            f"the weights are of another network: missing {', '.join(missing[:3]) or 'nothing'}, "
            f"unexpected {', '.join(unexpected[:3]) or 'nothing'}"
        )
