"""Runs of detection and segmentation, in the same store and lifecycle as classification's.

`SceneTrainConfig` is a base (a network trained on a scene data set); `ScenePruneConfig` prunes a
copy of it with a weight- or random-based criterion, evaluates it at once (mAP or mean IoU right
after pruning), fine-tunes it epoch by epoch, and measures both networks' frames per second
side by side at the end. Scores are on the test split.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
import torch_pruning as tp
from torch import nn

from plasticity.checkpoint import Checkpoint, load_checkpoint
from plasticity.errors import InvalidConfigError
from plasticity.limits import check_epochs, check_lr, check_seed
from plasticity.models import ModelSpec, hashed_path, read_weights, verified_file
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.groups import check_ratio, count_to_prune, dependency_graph, prunable_groups, pruning_group
from plasticity.pruning.prune import _group_scores
from plasticity.runs.lifecycle import RunConfig, failing, save, start
from plasticity.store import RunStore
from plasticity.tasks.networks import (
    NETWORKS,
    NetworkSpec,
    create_network,
    pretrained_state,
    start_from,
    with_pretrained,
)
from plasticity.tasks.scenes import DETECTION, SEGMENTATION, Scenes, load_scenes
from plasticity.tasks.training import detector_inputs, fit, frames_per_second, score
from plasticity.train import seed_everything

DEFAULTS = {  # task -> (network, shipped data set); the data sets are real, the networks sized for CPU
    DETECTION: ("fasterrcnn-tiny", "deepforest-trees"),
    SEGMENTATION: ("segnet", "stardist-nuclei"),
}
FPS_BATCH = 16
EXPORT_BATCH = 4  # test tiles an export is checked on
METRIC = {DETECTION: "map", SEGMENTATION: "miou"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # what torchvision's weights expect
_GETTING_BASE = threading.Lock()


@dataclass(frozen=True)
class SceneTrainConfig(RunConfig):
    """Everything that determines a detection or segmentation base."""

    kind: ClassVar[str] = "scene-train"

    task: str = DETECTION
    network: str = DEFAULTS[DETECTION][0]
    dataset: str = DEFAULTS[DETECTION][1]
    epochs: int = 12
    seed: int = 0
    lr: float = 0.01
    batch_size: int = 8
    pretrained: bool = False  # start from torchvision's weights (COCO's, for the MobileNet detector)
    weights: str = ""  # start from the weights in this file, as `/abs/path@<hash of its content>`
    # segmentation: weigh the loss's classes by median frequency, as SegNet's paper does (detection: unused)
    balance: bool = True

    def __post_init__(self):
        if self.task not in DEFAULTS:
            raise InvalidConfigError(f"unknown task {self.task!r}; tasks: {', '.join(DEFAULTS)}")
        if NETWORKS.get(self.network).task != self.task:
            raise InvalidConfigError(f"{self.network} is not a {self.task} network")
        check_epochs(self.epochs)
        check_seed(self.seed)
        check_lr(self.lr)
        if self.pretrained and self.weights:
            raise InvalidConfigError("start from one of: a weights file, torchvision's weights")
        if self.pretrained and self.network not in with_pretrained():
            raise InvalidConfigError(
                f"{self.network} has no pretrained weights; torchvision has them for {', '.join(with_pretrained())}"
            )
        if self.weights:
            object.__setattr__(self, "weights", hashed_path(self.weights, "weights"))

    def to_dict(self) -> dict:
        config = asdict(self)
        for name in ("pretrained", "weights"):  # added later: left out at their defaults, so keys stay
            if not config[name]:
                del config[name]
        if self.task == DETECTION or not self.balance:  # added later: runs made before keep their keys
            del config["balance"]
        return config

    @classmethod
    def from_dict(cls, config: dict) -> SceneTrainConfig:
        """The inverse of `to_dict` (a stored run's config); one without `balance` was made before it."""
        return cls(**{"balance": False, **config})

    @property
    def metric(self) -> str:
        return METRIC[self.task]


@dataclass(frozen=True)
class ScenePruneConfig(RunConfig):
    """A scene base, and how it is pruned and fine-tuned."""

    kind: ClassVar[str] = "scene-prune"

    base: SceneTrainConfig = field(default_factory=SceneTrainConfig)
    criterion: str = "random"
    ratio: float = 0.5
    seed: int = 0
    finetune_epochs: int = 3
    lr: float = 0.01

    def __post_init__(self):
        check_ratio(self.ratio)
        check_epochs(self.finetune_epochs, "finetune epochs")
        check_seed(self.seed)
        check_lr(self.lr)
        criterion = create_criterion(self.criterion)
        if criterion.needs_data or criterion.needs_history:
            raise InvalidConfigError(
                f"{self.criterion} needs class labels or a training history; detection and segmentation are "
                "pruned with random or a weight-based criterion (l1, l2, bn-scale)"
            )

    def to_dict(self) -> dict:
        return {**asdict(self), "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, config: dict) -> ScenePruneConfig:
        """The inverse of `to_dict` (a stored run's config)."""
        return cls(**{**config, "base": SceneTrainConfig.from_dict(config["base"])})


@dataclass
class SceneBase:
    config: SceneTrainConfig
    model: nn.Module
    scenes: Scenes
    result: dict


@functools.lru_cache(maxsize=8)
def scenes_for(name: str, task: str) -> Scenes:
    """The scene data set `name` for `task`, loaded once per process."""
    return load_scenes(name, task)


def network_spec(config: SceneTrainConfig, scenes: Scenes) -> NetworkSpec:
    """What the network is built for; one started from torchvision's weights normalises as they were trained."""
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if config.pretrained else (scenes.mean, scenes.std)
    return NetworkSpec(config.network, scenes.channels, len(scenes.classes), scenes.image_size, mean, std)


def get_scene_base(
    config: SceneTrainConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, int], None] | None = None,
) -> SceneBase:
    """The base for `config` from the store, else trained now (`on_epoch(done, of)` after each epoch)."""
    scenes = scenes_for(config.dataset, config.task)
    with _GETTING_BASE:
        run = store.done(config.key)
        if run and run.checkpoint and run.checkpoint.exists():
            model = create_network(network_spec(config, scenes))
            model.load_state_dict(load_checkpoint(run.checkpoint).state_dict)
            return SceneBase(config, model.to(device), scenes, run.result)
        return _train(config, scenes, store, device, on_epoch)


def _train(config: SceneTrainConfig, scenes: Scenes, store: RunStore, device, on_epoch) -> SceneBase:
    seed_everything(config.seed)
    model = create_network(network_spec(config, scenes))
    if config.pretrained:
        start_from(model, config.network, pretrained_state(config.network))
    if config.weights:
        start_from(model, config.network, read_weights(verified_file(config.weights, "weights")))
    model = model.to(device)
    start(config, store)
    began = time.perf_counter()
    with failing(config, store):
        fit(
            model,
            config.task,
            scenes,
            config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            seed=config.seed,
            balance=config.balance,
            on_epoch_end=on_epoch and (lambda epoch: on_epoch(epoch, config.epochs)),
        )
        result = {
            **score(model, config.task, scenes, scenes.test),
            "params": _params(model),
            "train_seconds": round(time.perf_counter() - began, 3),
        }
    spec = ModelSpec(config.network, scenes.channels, len(scenes.classes), scenes.image_size)
    save(config, store, result, Checkpoint(spec, config.to_dict(), model.state_dict()))
    return SceneBase(config, model, scenes, result)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class PrunedNetwork:
    model: nn.Module
    channels: dict[str, list[int]]  # conv -> [kept, original] filters
    macs_base: int  # of the pruned part, for one image
    macs_pruned: int


def prune_network(base: SceneBase, criterion_name: str, ratio: float, seed: int) -> PrunedNetwork:
    """A copy of the base with `ratio` of the filters of every conv group of its prunable part removed
    (the lowest-scoring ones); the convs the heads read keep their outputs."""
    network = NETWORKS.get(base.config.network)
    model = copy.deepcopy(base.model).eval()
    part = network.prunable(model)
    example = _example(base, model)
    macs_base = int(tp.utils.count_ops_and_params(part, example)[0])
    graph = dependency_graph(part, example)
    criterion = create_criterion(criterion_name, seed)
    channels = {}
    plan = []
    for group in prunable_groups(part, graph, network.kept(part)):
        count = count_to_prune(group.size, ratio, group.root)
        doomed = sorted(torch.argsort(_group_scores(criterion, group), stable=True)[:count].tolist())
        channels.update({layer.name: [group.size - count, group.size] for layer in group.layers})
        if count:
            plan.append((group, doomed))
    for group, doomed in plan:
        pruning_group(graph, group, doomed).prune()
    macs_pruned = int(tp.utils.count_ops_and_params(part, example)[0])
    return PrunedNetwork(model, channels, macs_base, macs_pruned)


def _example(base: SceneBase, model: nn.Module) -> torch.Tensor:
    """One input of the pruned part: the detector's backbone reads 3 channels, SegNet the data's own."""
    channels = 3 if base.config.task == DETECTION else base.scenes.channels
    size = base.scenes.image_size
    return torch.zeros(1, channels, size, size, device=next(model.parameters()).device)


def run_scene_prune(
    config: ScenePruneConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    base: SceneBase | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> dict:
    """Prune, score at once, fine-tune (scoring after every epoch), measure fps; stored as a run.
    `on_progress` gets the partial result after pruning and after every epoch."""
    if done := store.done(config.key):
        return done.result
    base = base or get_scene_base(config.base, store, device)
    start(config, store)
    with failing(config, store):
        return _prune_and_recover(config, base, store, on_progress or (lambda result: None))


def _prune_and_recover(config: ScenePruneConfig, base: SceneBase, store: RunStore, on_progress) -> dict:
    began, task, scenes, metric = time.perf_counter(), config.base.task, base.scenes, config.base.metric
    seed_everything(config.seed)
    pruned = prune_network(base, config.criterion, config.ratio, config.seed)
    first = score(pruned.model, task, scenes, scenes.test)
    result = {
        "key": config.key,
        "task": task,
        "network": config.base.network,
        "dataset": config.base.dataset,
        "criterion": config.criterion,
        "ratio": config.ratio,
        "seed": config.seed,
        "base_seed": config.base.seed,
        "finetune_epochs": config.finetune_epochs,
        **{f"{name}_base": value for name, value in _scores(base.result, task).items()},
        **{f"{name}_pruned": value for name, value in _scores(first, task).items()},
        "curve": [],
        f"{metric}_final": None,
        "params_base": _params(base.model),
        "params_pruned": _params(pruned.model),
        "macs_base": pruned.macs_base,
        "macs_pruned": pruned.macs_pruned,
        "fps_base": None,
        "fps_pruned": None,
        "channels": pruned.channels,
        "device": str(next(pruned.model.parameters()).device),
    }

    def report() -> None:
        on_progress({**result, "curve": list(result["curve"])})

    def add_point(epoch: int) -> None:
        result["curve"].append({"epoch": epoch, **score(pruned.model, task, scenes, scenes.test)})
        report()

    report()

    fit(
        pruned.model,
        task,
        scenes,
        config.finetune_epochs,
        lr=config.lr,
        batch_size=config.base.batch_size,
        seed=config.seed,
        balance=config.base.balance,
        on_epoch_end=add_point,
    )
    final = result["curve"][-1] if result["curve"] else first
    result.update({f"{name}_final": value for name, value in _scores(final, task).items()})
    # measured one after the other in the same process, under the same load
    images = scenes.test.images[:FPS_BATCH]
    result["fps_base"] = round(frames_per_second(base.model, task, scenes, images), 2)
    result["fps_pruned"] = round(frames_per_second(pruned.model, task, scenes, images), 2)
    result["seconds"] = round(time.perf_counter() - began, 3)
    report()
    spec = ModelSpec(config.base.network, scenes.channels, len(scenes.classes), scenes.image_size)
    return save(config, store, result, Checkpoint(spec, config.to_dict(), pruned.model.state_dict()))


def _scores(scores: dict, task: str) -> dict:
    """The scores a result reports: map and map50 for detection, miou for segmentation."""
    if task == DETECTION:
        return {"map": scores["map"], "map50": scores["map_50"]}
    return {"miou": scores["miou"]}


def load_pruned(config: ScenePruneConfig, store: RunStore, base: SceneBase) -> nn.Module:
    """The stored, fine-tuned network of a done pruning run: the base's network cut to the run's filter
    counts (which filters does not matter: every weight is then read from the checkpoint)."""
    run = store.done(config.key)
    if run is None or run.checkpoint is None or not run.checkpoint.exists():
        raise InvalidConfigError(f"no finished run {config.key} with a checkpoint in the store")
    network = NETWORKS.get(config.base.network)
    model = copy.deepcopy(base.model).eval()
    part = network.prunable(model)
    graph = dependency_graph(part, _example(base, model))
    for group in prunable_groups(part, graph, network.kept(part)):
        kept = run.result["channels"][group.root][0]
        if kept < group.size:
            pruning_group(graph, group, list(range(kept, group.size))).prune()
    model.load_state_dict(load_checkpoint(run.checkpoint).state_dict)
    return model


def stored_network(store: RunStore, kind: str, config: dict) -> tuple[nn.Module, torch.Tensor, bool]:
    """The network of a finished scene run (a base, or a pruned and fine-tuned one) on the CPU, a batch
    of its data set's test tiles as it reads them (a detector: float RGB in [0, 1]; SegNet: normalised),
    and whether it is a detector. A pruned run needs no stored base: its checkpoint holds every weight."""
    if kind == SceneTrainConfig.kind:
        base = get_scene_base(SceneTrainConfig.from_dict(config), store)
        model = base.model
    else:
        prune = ScenePruneConfig.from_dict(config)
        scenes = scenes_for(prune.base.dataset, prune.base.task)
        fresh = create_network(network_spec(prune.base, scenes)).eval()
        base = SceneBase(prune.base, fresh, scenes, {})
        model = load_pruned(prune, store, base)
    images = base.scenes.test.images[:EXPORT_BATCH]
    detector = base.config.task == DETECTION
    batch = torch.stack(detector_inputs(images)) if detector else base.scenes.normalize(images)
    return model.cpu().eval(), batch, detector
