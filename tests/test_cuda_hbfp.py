"""HBFP rounds on the GPU, where one is present (skipped on CPU-only machines)."""

import pytest
import torch

from plasticity.runs import TrainConfig, get_base
from plasticity.runs.hbfp import HbfpConfig, run_hbfp
from plasticity.store import RunStore

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_a_round_on_the_gpu(tmp_path):
    store = RunStore(tmp_path)
    base = get_base(TrainConfig(), store, "cuda")
    config = HbfpConfig(round_ratio=0.25, optimise_epochs=1, retrain_epochs=1, max_rounds=1, threshold=1.0)
    result = run_hbfp(config, store, "cuda", base=base)
    row = result["rounds"][0]
    assert result["device"].startswith("cuda") and result["channels"] == {"conv1": [15, 20], "conv2": [37, 50]}
    assert row["gap_curve"][-1] < row["gap_curve"][0] and row["acc_final"] > 0.9
