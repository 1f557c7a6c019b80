"""The guard around oneDNN's faulty 1x1 strided backward-by-weights kernel (plasticity/onednn.py).

Unguarded, that kernel corrupts memory: a step hangs, crashes or returns wrong gradients, by chance. So the
real training runs in a child process with a time limit, and a hang fails the test instead of the suite.
"""

import subprocess
import sys
import textwrap

import torch
from torch import nn

from plasticity.models import ModelSpec, create_model
from plasticity.onednn import at_risk, guarded_backward
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model

LIMIT_S = 120

# 40 steps of the conv oneDNN's issue 6035 names: 4 channels in, 1x1, stride 2, channels-last, batch 64 of
# 28x28; every step's weight gradient against the same gradient in float64 (which oneDNN does not compute)
SHORTCUT_STEPS = """
import torch
from torch import nn
from plasticity.onednn import guarded_backward

torch.manual_seed(0)
conv = nn.Conv2d(4, 8, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
reference = nn.Conv2d(4, 8, 1, stride=2, bias=False).double()
with guarded_backward(conv):
    for step in range(40):
        x = torch.randn(64, 4, 28, 28).contiguous(memory_format=torch.channels_last)
        conv.zero_grad()
        conv(x).square().sum().backward()
        reference.weight.data = conv.weight.data.double()
        reference.zero_grad()
        reference(x.double()).square().sum().backward()
        assert torch.allclose(conv.weight.grad.double(), reference.weight.grad, rtol=1e-3, atol=1e-2), step
print("ok")
"""

# a ResNet-20 at half width, pruned 50% at random (4 channels before its first shortcut), fine-tuned
FINE_TUNING = """
import dataclasses

import torch
from plasticity.data import load_dataset
from plasticity.models import ModelSpec, create_model
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model
from plasticity.train import Trainer, seed_everything

data = load_dataset("mnist-5k")
data = dataclasses.replace(data, train=data.train.subset(torch.arange(64 * 30)))
seed_everything(0)
base = create_model(ModelSpec("resnet20", data.channels, data.num_classes, data.image_size, width=0.5))
pruned = prune_model(base, create_criterion("random"), 0.5, data).model
trainer = Trainer(pruned, data, seed=0)
trainer.fit(1)
print("ok", trainer.step)
"""


def run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=LIMIT_S, check=False
    )


def test_the_faulty_kernels_conv_gives_the_right_weight_gradient_step_after_step():
    child = run_child(SHORTCUT_STEPS)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "ok"


def test_a_pruned_resnet_whose_shortcut_has_four_channels_fine_tunes():
    child = run_child(FINE_TUNING)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["ok", "30"]


def test_only_a_pruned_resnets_narrow_strided_1x1_convs_are_at_risk(mnist):
    base = create_model(ModelSpec("resnet20", mnist.channels, mnist.num_classes, mnist.image_size, width=0.5))
    pruned = prune_model(base, create_criterion("random"), 0.5, mnist).model
    names = {name for name, module in pruned.named_modules() if at_risk(module)}
    # the two downsampling shortcuts: 4 and 8 channels in, below the 16 of oneDNN's widest block
    assert names == {"layer2.0.shortcut.0", "layer3.0.shortcut.0"}
    full = create_model(ModelSpec("resnet20", mnist.channels, mnist.num_classes, mnist.image_size))
    assert not any(at_risk(module) for module in full.modules())  # 16 and 32 channels in


def test_the_guard_leaves_the_network_as_it_found_it_but_for_those_weights_strides():
    model = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    model = model.to(memory_format=torch.channels_last)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    expected = model(x)
    with guarded_backward(model):
        assert model[0].weight.stride() == (4, 1, 1, 1)  # NCHW, which a 1x1 weight's is_contiguous() cannot tell
        assert torch.allclose(model(x), expected, atol=1e-5)
    assert not model[0]._forward_pre_hooks
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())
    assert model[2].weight.is_contiguous(memory_format=torch.channels_last)
