"""The detector and the segmenter, by name, each with the part of it that is pruned.

- `fasterrcnn-tiny`: torchvision's Faster R-CNN (RPN, RoI-align, two-layer box head) on a four-conv
  backbone of stride 8, sized for CPU: a from-scratch `fasterrcnn_mobilenet_v3_large_320_fpn` does
  not learn the small shipped sets in minutes on two cores. Its backbone's filters are pruned; the
  backbone's last conv keeps its outputs, which the RPN and the box head read, so the heads stay as
  they are.
- `fasterrcnn-mobilenet-v3`: torchvision's `fasterrcnn_mobilenet_v3_large_320_fpn`, the paper's family
  at full size, from scratch or from torchvision's COCO weights (`pretrained`); its MobileNet body's
  filters are pruned, the FPN keeps its outputs.
- `segnet`: SegNet (Badrinarayanan et al.) at three stages of 16, 32 and 64 filters: the decoder
  upsamples with the encoder's max-pooling indices. Everything but the classifier conv is pruned.

A `Network` says what is pruned (`prunable`) and which of its convs keep their outputs (`kept`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from plasticity.errors import InvalidConfigError
from plasticity.models import fetched_weights, load_fitting
from plasticity.registry import Registry
from plasticity.tasks.scenes import DETECTION, SEGMENTATION


@dataclass(frozen=True)
class NetworkSpec:
    """What a network is built for; stored with its checkpoint."""

    name: str
    in_channels: int
    num_classes: int  # object classes, without the background
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Network:
    task: str
    build: Callable[[NetworkSpec], nn.Module]
    prunable: Callable[[nn.Module], nn.Module]  # the part whose filters are pruned
    kept: Callable[[nn.Module], list[nn.Module]]  # convs of that part whose outputs stay
    head: str  # the state_dict prefix of the layer sized by the classes, fresh when weights have other classes
    # torchvision's weights, where they exist: their URL and how they are read (from torch's hub cache)
    pretrained: Callable[[], tuple[str, Callable[[], dict[str, torch.Tensor]]]] | None = None


NETWORKS: Registry[Network] = Registry("network")


def list_networks(task: str) -> list[str]:
    return [name for name in NETWORKS.names() if NETWORKS.get(name).task == task]


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyBackbone(nn.Module):
    """Four 3x3 conv layers, stride 8: 16, 32, 64 filters, and 64 outputs for the heads."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, 16),
            nn.MaxPool2d(2),
            conv_bn_relu(16, 32),
            nn.MaxPool2d(2),
            conv_bn_relu(32, 64),
            nn.MaxPool2d(2),
            conv_bn_relu(64, 64),
        )
        self.out_channels = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _detector_transform_options(spec: NetworkSpec) -> dict:
    """No resizing (the tiles are of one size) and the data set's own normalisation, on 3 channels."""
    mean, std = list(spec.mean), list(spec.std)
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    return {"min_size": spec.image_size, "max_size": spec.image_size, "image_mean": mean, "image_std": std}


def _fasterrcnn_tiny(spec: NetworkSpec) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    backbone = TinyBackbone(3)
    return FasterRCNN(
        backbone,
        rpn_anchor_generator=AnchorGenerator(sizes=((16, 32, 64),), aspect_ratios=((0.5, 1.0, 2.0),)),
        # RoI-align's backward is the slowest step on a CPU: one sample per bin, 32 regions per image
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=1),
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, spec.num_classes + 1),
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=32,
        box_detections_per_img=100,
        **_detector_transform_options(spec),
    )


def _fasterrcnn_mobilenet(spec: NetworkSpec) -> nn.Module:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=spec.num_classes + 1, **_detector_transform_options(spec)
    )


def _fasterrcnn_mobilenet_coco() -> tuple[str, Callable[[], dict[str, torch.Tensor]]]:
    """Where torchvision's COCO weights of the whole detector come from, and how they are read."""
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_320_FPN_Weights

    weights = FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1
    return weights.url, lambda: weights.get_state_dict(progress=False, check_hash=True, weights_only=True)


class SegNet(nn.Module):
    """Encoder: three stages of conv-BN-ReLU and 2x2 max pooling that keeps its indices; decoder: the
    mirror, each stage unpooling with its encoder stage's indices, then a 1x1 classifier conv."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        ins = (in_channels, *widths[:-1])
        self.encoder = nn.ModuleList(nn.Sequential(conv_bn_relu(a, b), conv_bn_relu(b, b)) for a, b in zip(ins, widths))
        outs = (widths[0], *widths[:-1])  # each decoder stage ends with the channels of the stage above
        self.decoder = nn.ModuleList(
            nn.Sequential(conv_bn_relu(b, b), conv_bn_relu(b, a)) for a, b in zip(outs, widths)
        )
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape[-2:]
            x, index = nn.functional.max_pool2d(x, 2, return_indices=True)
            # The unpooling below reads this stage's channels by their positions: adding zero times
            # the pooled map to the decoder's input makes that coupling an edge of the traced graph,
            # so Torch-Pruning removes the same channels from both (tests/test_tasks.py checks it).
            indices.append((index, x, size))
        for stage, (index, pooled, size) in zip(reversed(self.decoder), reversed(indices)):
            # aten's unpooling, back to the size before pooling: F.max_unpool2d's own size check cannot
            # be traced (TorchScript export), and its default size is one short where that size was odd
            x = torch.ops.aten.max_unpool2d(x + 0 * pooled, index, size)
            x = stage(x)
        return self.classifier(x)


BOX_PREDICTOR = "roi_heads.box_predictor."
NETWORKS.register("fasterrcnn-tiny")(
    Network(DETECTION, _fasterrcnn_tiny, lambda m: m.backbone, lambda part: [part.features[-1][0]], BOX_PREDICTOR)
)
NETWORKS.register("fasterrcnn-mobilenet-v3")(
    Network(
        DETECTION,
        _fasterrcnn_mobilenet,
        lambda m: m.backbone,
        lambda part: [c for c in part.fpn.modules() if isinstance(c, nn.Conv2d)],
        BOX_PREDICTOR,
        pretrained=_fasterrcnn_mobilenet_coco,
    )
)
NETWORKS.register("segnet")(
    Network(
        SEGMENTATION,
        lambda s: SegNet(s.in_channels, s.num_classes + 1),
        lambda m: m,
        lambda m: [m.classifier],
        "classifier.",
    )
)


def create_network(spec: NetworkSpec) -> nn.Module:
    return NETWORKS.get(spec.name).build(spec)


def with_pretrained() -> list[str]:
    """The networks that torchvision has pretrained weights for."""
    return [name for name in NETWORKS.names() if NETWORKS.get(name).pretrained is not None]


def start_from(model: nn.Module, name: str, state: dict[str, torch.Tensor]) -> None:
    """Load `state` (torchvision's weights or a user's file) into network `name`; a head for another
    number of classes keeps its fresh initialisation, any other mismatch is an error naming it."""
    load_fitting(model, state, NETWORKS.get(name).head)


def pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """torchvision's pretrained weights of network `name`, from torch's hub cache or downloaded once."""
    network = NETWORKS.get(name)
    if network.pretrained is None:
        raise InvalidConfigError(
            f"{name} has no pretrained weights; torchvision has them for {', '.join(with_pretrained())}"
        )
    return fetched_weights(name, *network.pretrained())
