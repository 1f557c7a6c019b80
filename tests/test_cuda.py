"""The CUDA path: the same experiment on the GPU, where one is present (skipped on CPU-only machines)."""

import pytest
import torch

from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model
from plasticity.runs import PruneConfig, TrainConfig, get_base, run_prune
from plasticity.store import RunStore
from plasticity.train import accuracy, resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_default_device_is_cuda():
    assert resolve_device(None).type == "cuda"


def test_prune_and_recover_on_the_gpu(tmp_path, default_base):
    store = RunStore(tmp_path)
    base = get_base(TrainConfig(), store, "cuda")
    assert next(base.model.parameters()).is_cuda and base.data.device.type == "cuda"
    assert abs(base.result["acc"] - default_base.result["acc"]) < 0.005  # same weights, other arithmetic
    for name in ("random", "l1", "apoz", "taylor"):
        pruned = prune_model(base.model, create_criterion(name), 0.5, base.data)
        assert accuracy(pruned.model, base.data, base.data.test) > 0.1
    result = run_prune(PruneConfig(criterion="l1", finetune_epochs=2), store, "cuda", base=base)
    assert result["device"].startswith("cuda") and len(result["curve"]) == 2
    assert result["acc_final"] > 0.9
