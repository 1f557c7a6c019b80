"""A guard around one oneDNN kernel that corrupts memory on the CPU.

oneDNN's 1x1 convolution backward-by-weights, with a stride above 1 and a channels-last (NHWC) input of
fewer channels than its block (8 on AVX2, 16 on AVX-512), writes past its workspace
(https://github.com/uxlfoundation/oneDNN/issues/6035): the step hangs with every core spinning, the weight
gradients come out wrong, or the process crashes. A ResNet's downsampling shortcut is such a conv once
pruning leaves fewer than 8 channels before it (ResNet-20 at half width, pruned 25% or more). With a
plain NCHW input and weight the same conv takes a correct path, so inside `guarded_backward` those convs,
and only those, see their input in NCHW and keep their weight in NCHW; the rest of the network keeps the
faster channels-last path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

# the largest channel block among oneDNN's x86 1x1 kernels (AVX-512); fewer input channels than this are unsafe
BLOCK = 16


def at_risk(module: nn.Module) -> bool:
    """Whether `module` is a conv that oneDNN's faulty kernel would take on the CPU in channels-last."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and max(module.stride) > 1
        and module.in_channels < BLOCK
        and module.weight.device.type == "cpu"
    )


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` with NCHW strides. `contiguous()` is not enough: a 1x1 weight, or an input of one channel,
    counts as contiguous in channels-last strides too, and PyTorch then still picks channels-last."""
    if tensor.stride() == torch.empty(tensor.shape, device="meta").stride():
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)


def _nchw_input(module: nn.Module, inputs: tuple) -> tuple:
    return tuple(_plain(x) if isinstance(x, torch.Tensor) else x for x in inputs)


@contextlib.contextmanager
def guarded_backward(model: nn.Module) -> Iterator[nn.Module]:
    """`model`, whose at-risk convs compute in NCHW until the block exits (the weights stay NCHW after)."""
    handles = []
    for module in model.modules():
        if at_risk(module):
            module.weight.data = _plain(module.weight.data)
            handles.append(module.register_forward_pre_hook(_nchw_input))
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
